"""EventRegistry (names <-> classes, RawEvent encoding) and check_events."""

from __future__ import annotations

import dataclasses
import pickle
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import pytest

from esrc_core import (
    EventMarshaler,
    EventRegistry,
    InvalidEventError,
    JsonMarshaler,
    RawEvent,
    RawSnapshot,
    RelayEvent,
    SerializationError,
    UnknownEventError,
    check_events,
)


@dataclass(frozen=True)
class Opened:
    account_id: uuid.UUID
    owner: str


@dataclass(frozen=True)
class Deposited:
    amount: Decimal


@dataclass(frozen=True)
class Closed:
    reason: str


def test_register_as_a_call_returns_the_class_and_uses_its_name() -> None:
    registry = EventRegistry()
    assert registry.register(Opened) is Opened
    assert registry.name_of(Opened) == "Opened"
    assert registry.class_for("Opened") is Opened


def test_register_as_a_decorator() -> None:
    registry = EventRegistry()

    @registry.register
    @dataclass(frozen=True)
    class Renamed:
        name: str

    assert registry.name_of(Renamed) == "Renamed"
    assert registry.class_for("Renamed") is Renamed


def test_register_as_a_decorator_with_a_name() -> None:
    registry = EventRegistry()

    @registry.register(name="account.closed.v1")
    @dataclass(frozen=True)
    class AccountClosed:
        reason: str

    assert registry.name_of(AccountClosed) == "account.closed.v1"
    assert registry.class_for("account.closed.v1") is AccountClosed
    assert registry.names == frozenset({"account.closed.v1"})


def test_register_all_uses_class_names() -> None:
    registry = EventRegistry()
    registry.register_all([Opened, Deposited])
    assert registry.names == frozenset({"Opened", "Deposited"})


def test_name_of_accepts_an_instance_or_the_class() -> None:
    registry = EventRegistry()
    registry.register(Deposited, name="money.in")
    assert registry.name_of(Deposited(Decimal(1))) == "money.in"
    assert registry.name_of(Deposited) == "money.in"


def test_a_name_taken_by_another_class_is_a_value_error_naming_the_owner() -> None:
    registry = EventRegistry()
    registry.register(Opened, name="shared")
    with pytest.raises(ValueError, match=r"'shared' is already registered for .*Opened"):
        registry.register(Closed, name="shared")
    assert registry.class_for("shared") is Opened


def test_a_class_registered_under_another_name_is_a_value_error() -> None:
    registry = EventRegistry()
    registry.register(Opened)
    with pytest.raises(ValueError, match=r"already registered as 'Opened'"):
        registry.register(Opened, name="other")
    assert registry.names == frozenset({"Opened"})


def test_registering_the_same_class_twice_is_a_no_op() -> None:
    registry = EventRegistry()
    registry.register(Opened)
    registry.register(Opened)
    registry.register(Opened, name="Opened")
    assert registry.names == frozenset({"Opened"})
    assert registry.name_of(Opened) == "Opened"


def test_registering_a_non_class_is_a_type_error() -> None:
    registry = EventRegistry()
    with pytest.raises(TypeError, match="register an event class"):
        registry.register(cast(Any, Opened(uuid.uuid4(), "x")))


def test_an_empty_name_is_a_value_error() -> None:
    registry = EventRegistry()
    with pytest.raises(ValueError, match="non-empty"):
        registry.register(Opened, name="")


def test_unregistered_name_names_the_event_and_the_aggregate_type() -> None:
    registry = EventRegistry()
    registry.register(Opened)
    with pytest.raises(UnknownEventError) as caught:
        registry.from_raw(RawEvent("Vanished", b"{}"), aggregate_type="Account")
    message = str(caught.value)
    assert "'Vanished'" in message
    assert "'Account'" in message
    assert "Opened" in message, "the message lists what is registered"


def test_unregistered_name_without_an_aggregate_type() -> None:
    with pytest.raises(
        UnknownEventError, match=r"'Vanished' is not registered \(registered: none\)"
    ):
        EventRegistry().class_for("Vanished")


def test_unregistered_class_is_an_unknown_event_error() -> None:
    registry = EventRegistry()
    with pytest.raises(UnknownEventError, match="Closed is not registered"):
        registry.name_of(Closed)
    with pytest.raises(UnknownEventError, match="Closed is not registered"):
        registry.to_raw(Closed("done"))


def test_to_raw_from_raw_round_trip_with_metadata() -> None:
    registry = EventRegistry()
    registry.register(Opened, name="opened")
    event = Opened(uuid.uuid4(), "Ada")
    metadata = {"correlation_id": "c-1", "user": "ada"}
    raw = registry.to_raw(event, metadata)
    assert raw.name == "opened"
    assert isinstance(raw.data, bytes)
    assert raw.metadata == metadata
    assert registry.from_raw(raw) == event


def test_to_raw_copies_the_metadata() -> None:
    registry = EventRegistry()
    registry.register(Closed)
    metadata = {"a": "1"}
    raw = registry.to_raw(Closed("x"), metadata)
    metadata["a"] = "changed"
    assert raw.metadata == {"a": "1"}


def test_to_raw_without_metadata_gives_empty_metadata() -> None:
    registry = EventRegistry()
    registry.register(Closed)
    assert registry.to_raw(Closed("x")).metadata == {}


def test_undecodable_data_is_a_serialization_error_naming_the_event() -> None:
    registry = EventRegistry()
    registry.register(Deposited, name="money.in")
    with pytest.raises(
        SerializationError, match=r"^decode event money\.in of 'Account': cannot decode Deposited"
    ) as caught:
        registry.from_raw(RawEvent("money.in", b"{broken"), aggregate_type="Account")
    assert isinstance(caught.value.__cause__, SerializationError)


@dataclass(frozen=True)
class Measured:
    value: float


def test_unencodable_value_is_a_serialization_error_naming_the_event() -> None:
    registry = EventRegistry()
    registry.register(Measured, name="measured")
    with pytest.raises(
        SerializationError, match=r"^encode event measured: cannot encode Measured: .*nan"
    ):
        registry.to_raw(Measured(float("nan")))


class _FailingMarshaler(JsonMarshaler):
    """A marshaler that fails with a plain exception, to check the registry wraps it."""

    def marshal(self, event: object) -> bytes:
        raise RuntimeError("disk full")

    def unmarshal(self, data: bytes, cls: type[Any]) -> Any:
        raise RuntimeError("bad magic")


def test_marshaler_exceptions_become_serialization_errors_naming_the_event() -> None:
    registry = EventRegistry(_FailingMarshaler())
    registry.register(Closed, name="closed")
    with pytest.raises(SerializationError, match="encode event closed: disk full") as enc:
        registry.to_raw(Closed("x"))
    assert isinstance(enc.value.__cause__, RuntimeError)
    with pytest.raises(SerializationError, match="decode event closed of 'Acc': bad magic"):
        registry.from_raw(RawEvent("closed", b"{}"), aggregate_type="Acc")


def test_unencodable_event_is_a_serialization_error() -> None:
    registry = EventRegistry()

    @registry.register
    class NotADataclass:
        pass

    with pytest.raises(SerializationError, match="NotADataclass"):
        registry.to_raw(NotADataclass())


def test_raw_event_defaults_and_raw_snapshot() -> None:
    raw = RawEvent("x", b"")
    assert raw.metadata == {}
    assert RawEvent("x", b"").metadata is not raw.metadata
    assert RawSnapshot(3, b"s") == RawSnapshot(3, b"s")


def test_check_events_accepts_well_formed_events() -> None:
    check_events([], doing="add")
    check_events([RawEvent("a", b""), RawEvent("b", b"\x00", {"k": "v"})], doing="add")
    check_events((RawEvent("a", b"x"),), doing="add")


def _event(name: object = "ok", data: object = b"", metadata: object = None) -> RawEvent:
    """A RawEvent with possibly wrongly typed fields (RawEvent does not check them)."""
    return RawEvent(cast(str, name), cast(bytes, data), cast(Mapping[str, str], metadata or {}))


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("not a RawEvent", "is a str, not a RawEvent"),
        (("ok", b""), "is a tuple, not a RawEvent"),
        (_event(name=""), "name must be a non-empty str"),
        (_event(name=5), "name must be a non-empty str"),
        (_event(data="text"), "data must be bytes, got str"),
        (_event(data=bytearray(b"x")), "data must be bytes, got bytearray"),
        (_event(metadata=[("k", "v")]), "metadata must be a mapping"),
        (_event(metadata={"k": 1}), "metadata must map str to str"),
        (_event(metadata={1: "v"}), "metadata must map str to str"),
    ],
    ids=lambda v: v if isinstance(v, str) else repr(v)[:40],
)
@pytest.mark.parametrize("index", [0, 2])
def test_check_events_names_the_index_of_a_malformed_event(
    bad: object, fragment: str, index: int
) -> None:
    events = [RawEvent("fine", b"")] * index + [cast(RawEvent, bad), RawEvent("after", b"")]
    with pytest.raises(InvalidEventError) as caught:
        check_events(events, doing="append to Order 7")
    message = str(caught.value)
    assert message.startswith(f"append to Order 7: event {index}"), message
    assert fragment in message


@pytest.mark.parametrize(
    "events", [RawEvent("a", b""), "ab", b"ab", iter([RawEvent("a", b"")]), None], ids=repr
)
def test_check_events_requires_a_sequence(events: object) -> None:
    with pytest.raises(InvalidEventError, match="add: events must be a sequence of RawEvent"):
        check_events(cast(Any, events), doing="add")


def _account_registry(marshaler: EventMarshaler | None = None) -> EventRegistry:
    registry = EventRegistry(marshaler)
    registry.register_all([Opened, Deposited, Closed])
    return registry


def _account_stream(registry: EventRegistry) -> list[RawEvent]:
    return [
        registry.to_raw(Opened(uuid.UUID(int=7), "ada"), {"user": "u1"}),
        registry.to_raw(Deposited(Decimal("10.50"))),
        registry.to_raw(Deposited(Decimal("0.01"))),
        registry.to_raw(Closed("done")),
    ]


def test_from_raws_decodes_a_stream_as_from_raw_does_each_event() -> None:
    registry = _account_registry()
    stream = _account_stream(registry)
    decoded = registry.from_raws(stream, aggregate_type="Account")
    assert decoded == [registry.from_raw(raw) for raw in stream]
    assert decoded[0] == Opened(uuid.UUID(int=7), "ada")
    assert registry.from_raws([]) == []


def test_iter_from_raws_decodes_one_event_at_a_time() -> None:
    """The iterator decodes each event when it reaches it: a bad event at the end
    raises only once the events before it were yielded, and the source is read as
    the iterator advances."""
    registry = _account_registry()
    stream = [*_account_stream(registry), RawEvent("Deposited", b"not json")]
    read: list[RawEvent] = []

    def source() -> Any:
        for raw in stream:
            read.append(raw)
            yield raw

    decoding = registry.iter_from_raws(source(), aggregate_type="Account")
    assert read == []
    assert next(decoding) == Opened(uuid.UUID(int=7), "ada")
    assert len(read) == 1
    assert [next(decoding) for _ in range(3)] == registry.from_raws(stream[1:4])
    with pytest.raises(SerializationError, match="decode event Deposited of 'Account'"):
        next(decoding)


def test_from_raws_names_an_unregistered_event_and_the_aggregate_type() -> None:
    registry = _account_registry()
    stream = [*_account_stream(registry), RawEvent("Reopened", b"{}")]
    with pytest.raises(UnknownEventError, match=r"'Reopened' in a stream of 'Account'"):
        registry.from_raws(stream, aggregate_type="Account")


def test_from_raws_names_the_event_it_could_not_decode() -> None:
    registry = _account_registry()
    stream = [*_account_stream(registry), RawEvent("Deposited", b'{"amount": [1]}')]
    with pytest.raises(
        SerializationError, match=r"^decode event Deposited of 'Account': cannot decode Deposited"
    ) as caught:
        registry.from_raws(stream, aggregate_type="Account")
    assert isinstance(caught.value.__cause__, SerializationError)


class _ReversingMarshaler:
    """An EventMarshaler without compiled decoders: JSON written backwards."""

    def marshal(self, event: object) -> bytes:
        return JsonMarshaler().marshal(event)[::-1]

    def unmarshal(self, data: bytes, cls: type[Any]) -> Any:
        return JsonMarshaler().unmarshal(data[::-1], cls)


def test_from_raws_uses_a_marshaler_without_compiled_decoders_through_unmarshal() -> None:
    registry = _account_registry(_ReversingMarshaler())
    stream = _account_stream(registry)
    assert registry.from_raws(stream) == [registry.from_raw(raw) for raw in stream]


def test_replacing_the_marshaler_replaces_the_decoders_from_raws_uses() -> None:
    registry = _account_registry()
    plain = _account_stream(registry)
    assert registry.from_raws(plain)[3] == Closed("done")
    registry.marshaler = _ReversingMarshaler()
    reversed_stream = _account_stream(registry)
    assert reversed_stream[3].data == plain[3].data[::-1]
    assert registry.from_raws(reversed_stream)[3] == Closed("done")


def test_from_raws_honours_a_json_marshaler_subclass_unmarshal() -> None:
    registry = _account_registry(_FailingMarshaler())
    with pytest.raises(SerializationError, match="decode event Closed of 'Acc': bad magic"):
        registry.from_raws([RawEvent("Closed", b"{}")], aggregate_type="Acc")


def test_raw_event_and_relay_event_are_frozen_and_compare_by_value() -> None:
    raw = RawEvent("x", b"d", {"k": "v"})
    assert raw == RawEvent(name="x", data=b"d", metadata={"k": "v"})
    assert RawEvent("x", b"d", None).metadata == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        raw.name = "y"  # type: ignore[misc]
    relay_event = RelayEvent("Account", 42, 3, 9, raw)
    assert dataclasses.replace(relay_event, version=4) == RelayEvent("Account", 42, 4, 9, raw)
    assert pickle.loads(pickle.dumps(relay_event)) == relay_event
    with pytest.raises(dataclasses.FrozenInstanceError):
        relay_event.position = 1  # type: ignore[misc]
    assert [f.name for f in dataclasses.fields(RelayEvent)] == [
        "aggregate_type",
        "aggregate_id",
        "version",
        "position",
        "event",
    ]
