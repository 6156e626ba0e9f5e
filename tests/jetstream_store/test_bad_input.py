"""What the JetStream store does with input it must refuse or must not mangle: events
over the server's max payload, ids and aggregate types that are not subject tokens, a
stream that exists with a configuration the store cannot use, and bad URL options.

A refusal is the error a caller can act on (:class:`~esrc_core.errors.InvalidEventError`,
:class:`~esrc_core.errors.InvalidAggregateIdError`,
:class:`~esrc_core.errors.BackendConfigError`), raised before anything is stored."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import nats
import pytest
from esrc_core.atomic_appends import StreamAppend
from esrc_core.errors import (
    BackendConfigError,
    InvalidAggregateIdError,
    InvalidEventError,
    StoreUnavailableError,
)
from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId
from esrc_nats.store import NatsEventStore

from esrc_core import open_event_store

T = TypeVar("T")


def _unique() -> str:
    return uuid.uuid4().hex[:10]


def _with_js(url: str, work: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """``work(jetstream)`` on a client of its own, closed after."""

    async def run() -> T:
        client = await nats.connect(url)
        try:
            return await work(client.jetstream())
        finally:
            await client.close()

    return asyncio.run(run())


def _state(url: str, stream: str) -> tuple[int, list[str], bool] | None:
    """(messages, subjects, allow_direct) of ``stream``, ``None`` when it does not exist."""
    from nats.js.errors import NotFoundError

    async def ask(js: Any) -> tuple[int, list[str], bool] | None:
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return None
        return int(info.state.messages), list(info.config.subjects), bool(info.config.allow_direct)

    return _with_js(url, ask)


@pytest.fixture
def store(nats_url: str) -> Iterator[NatsEventStore]:
    """A store on a new stream of the session's single node."""
    name = _unique()
    opened = open_event_store(f"{nats_url}?stream=B{name}&prefix=b{name}")
    assert isinstance(opened, NatsEventStore)
    yield opened
    opened.close()


# -- events over the server's max payload --------------------------------------------


def _max_payload(url: str) -> int:
    async def ask() -> int:
        client = await nats.connect(url)
        try:
            return int(client.max_payload)
        finally:
            await client.close()

    return asyncio.run(ask())


def test_an_event_over_the_max_payload_is_refused_naming_it_and_nothing_is_stored(
    nats_url: str, store: NatsEventStore
) -> None:
    limit = _max_payload(nats_url)
    huge = RawEvent("Huge", b"x" * (limit + 1))
    small = RawEvent("Small", b"x")
    store.add_aggregate("Order", "kept", [small])
    with pytest.raises(InvalidEventError, match=r"event 0 \('Huge'\).*max_payload"):
        store.add_aggregate("Order", "o-1", [huge])
    with pytest.raises(InvalidEventError, match=r"event 1 \('Huge'\)"):
        store.add_aggregate("Order", "o-2", [small, huge])
    with pytest.raises(InvalidEventError, match=r"event 0 \('Fat'\)"):
        store.add_aggregate("Order", "o-3", [RawEvent("Fat", b"x", {"note": "y" * limit})])
    with pytest.raises(InvalidEventError, match=r"'Huge'"):
        store.append_events("Order", "kept", 1, [small, huge])
    with pytest.raises(InvalidEventError, match=r"'Huge'"):
        store.append_streams(
            [
                StreamAppend("Order", "kept", 1, (small,)),
                StreamAppend("Order", "o-4", 0, (huge,)),
            ]
        )
    assert [i.aggregate_id for i in store.streams()] == ["kept"]
    assert store.events("Order", "kept") == [small]
    assert _state(nats_url, store.stream) == (1, [f"{store.prefix}.>"], True)


def test_an_event_near_the_max_payload_is_stored_whole_or_refused_before_publishing(
    nats_url: str, store: NatsEventStore
) -> None:
    limit = _max_payload(nats_url)
    stored = 0
    for n, size in enumerate(range(limit - 2000, limit + 2, 100)):
        data = bytes([n % 256]) * size
        try:
            store.add_aggregate("Blob", n, [RawEvent("Blob", data)])
        except InvalidEventError:
            assert not store.contains_aggregate("Blob", n), f"{size} bytes refused, yet stored"
        else:
            stored += 1
            assert store.events("Blob", n)[0].data == data, f"{size} bytes read back differ"
    assert 0 < stored < len(range(limit - 2000, limit + 2, 100))
    assert _state(nats_url, store.stream) == (stored, [f"{store.prefix}.>"], True)


def test_events_under_the_max_payload_each_are_one_batch_even_over_it_together(
    nats_url: str, store: NatsEventStore
) -> None:
    half = _max_payload(nats_url) // 2
    events = [RawEvent("Half", bytes([n]) * half) for n in range(4)]
    store.add_aggregate("Blob", "big", events)
    assert store.events("Blob", "big") == events


# -- ids and aggregate types that are not subject tokens -----------------------------

IDS: list[AggregateId] = [
    "a.b",
    "a..b",
    ".",
    "*",
    ">",
    "a.*.>",
    "a b",
    " ",
    "\t",
    "\x00",
    "a\r\nb",
    "-",
    "~",
    "=",
    "/",
    "ü",
    "日本語",
    "🙂",
    "42",
    42,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**100,
    "s:42",
    "i:42",
    uuid.UUID(int=42),
    str(uuid.UUID(int=42)),
    "x" * 2000,
]
TYPES = [
    "Order",
    "order",
    "Order.Line",
    "Order Line",
    "*",
    ">",
    "Überweisung",
    "T3JkZXI",
    "~T3JkZXI",
    "~",
    " ",
    "a.b.c",
]
"""``T3JkZXI`` is ``Order`` in base64url, the token a type that is not a subject token
would get behind a ``~``: all must stay apart."""


def test_ids_and_types_that_are_not_subject_tokens_work_and_stay_distinct(
    store: NatsEventStore,
) -> None:
    written: dict[tuple[str, AggregateId], bytes] = {}
    for kind in TYPES:
        for aggregate_id in IDS:
            payload = f"{kind!r}/{aggregate_id!r}".encode()
            store.add_aggregate(kind, aggregate_id, [RawEvent("Made", payload)])
            written[kind, aggregate_id] = payload
    assert len(written) == len(TYPES) * len(IDS)
    for (kind, aggregate_id), payload in written.items():
        got = [event.data for event in store.events(kind, aggregate_id)]
        assert got == [payload], f"{kind!r} {aggregate_id!r}: got {got}"
        assert store.contains_aggregate(kind, aggregate_id)
    listed = [(info.aggregate_type, info.aggregate_id) for info in store.streams()]
    assert sorted(map(repr, listed)) == sorted(map(repr, written)), "streams() differs"
    assert {type(i) for _, i in listed} == {str, int, uuid.UUID}
    relayed = store.outbox("ids").unpublished_events(10_000)
    assert {(e.aggregate_type, e.aggregate_id, type(e.aggregate_id)) for e in relayed} == {
        (kind, i, type(i)) for kind, i in written
    }
    assert {e.event.data for e in relayed} == set(written.values())
    for kind in TYPES:
        assert len(store.streams(kind)) == len(IDS), f"streams({kind!r})"


@pytest.mark.parametrize("aggregate_id", ["", True, 1.5, None, b"bytes"])
def test_an_id_that_is_no_id_is_refused_and_nothing_is_stored(
    nats_url: str, store: NatsEventStore, aggregate_id: Any
) -> None:
    with pytest.raises(InvalidAggregateIdError):
        store.add_aggregate("Order", aggregate_id, [RawEvent("Made", b"x")])
    assert store.streams() == []
    assert _state(nats_url, store.stream) == (0, [f"{store.prefix}.>"], True)


def test_an_empty_aggregate_type_is_refused_and_nothing_is_stored(
    nats_url: str, store: NatsEventStore
) -> None:
    with pytest.raises(ValueError, match="aggregate type"):
        store.add_aggregate("", "o-1", [RawEvent("Made", b"x")])
    assert _state(nats_url, store.stream) == (0, [f"{store.prefix}.>"], True)


@pytest.fixture
def quick_store(nats_url: str) -> Iterator[NatsEventStore]:
    """A store on a new stream of the session's single node that gives up after 1 s."""
    name = _unique()
    opened = open_event_store(f"{nats_url}?stream=B{name}&prefix=b{name}&timeout=1")
    assert isinstance(opened, NatsEventStore)
    yield opened
    opened.close()


TOO_LONG = "x" * 5000
"""An id whose subject is over the server's max control line (4,096 bytes)."""


def test_an_id_too_long_for_a_subject_is_refused_as_an_invalid_id(
    quick_store: NatsEventStore,
) -> None:
    with pytest.raises((InvalidAggregateIdError, InvalidEventError)):
        quick_store.add_aggregate("Order", TOO_LONG, [RawEvent("Made", b"x")])
    assert quick_store.streams() == []


def test_a_store_keeps_working_after_an_id_too_long_for_a_subject(
    quick_store: NatsEventStore,
) -> None:
    with pytest.raises(InvalidAggregateIdError):
        quick_store.add_aggregate("Order", TOO_LONG, [RawEvent("Made", b"x")])
    quick_store.add_aggregate("Order", "short", [RawEvent("Made", b"x")])
    assert [i.aggregate_id for i in quick_store.streams()] == ["short"]


def test_an_id_with_a_lone_surrogate_is_stored_or_refused_as_an_invalid_id(
    store: NatsEventStore,
) -> None:
    try:
        store.add_aggregate("Order", "\ud800", [RawEvent("Made", b"x")])
    except InvalidAggregateIdError:
        assert store.streams() == []
    else:
        assert store.events("Order", "\ud800") == [RawEvent("Made", b"x")]


# -- a stream that exists with a configuration the store cannot use ------------------


def _make_stream(url: str, **config: Any) -> None:
    from nats.js.api import StreamConfig

    async def make(js: Any) -> None:
        await js.add_stream(StreamConfig(**config))

    _with_js(url, make)


INCOMPATIBLE: dict[str, tuple[dict[str, Any], str]] = {
    "another subject": ({"subjects": ["other{n}.>"], "allow_direct": True}, ""),
    "a narrower subject": ({"subjects": ["p{n}.*.*"], "allow_direct": True}, ""),
    "no direct gets": ({"subjects": ["p{n}.>"], "allow_direct": False}, ""),
    "another replica count": ({"subjects": ["p{n}.>"], "allow_direct": True}, "&replicas=3"),
}


@pytest.mark.parametrize("case", list(INCOMPATIBLE))
def test_a_stream_with_an_incompatible_configuration_is_a_config_error_naming_it(
    nats_url: str, case: str
) -> None:
    n = _unique()
    config, options = INCOMPATIBLE[case]
    config = {k: [s.format(n=n) for s in v] if k == "subjects" else v for k, v in config.items()}
    _make_stream(nats_url, name=f"S{n}", **config)
    before = _state(nats_url, f"S{n}")
    with pytest.raises(BackendConfigError, match=f"stream 'S{n}'"):
        open_event_store(f"{nats_url}?stream=S{n}&prefix=p{n}{options}")
    assert _state(nats_url, f"S{n}") == before
    assert _state(nats_url, f"KV_S{n}_snapshots") is None, "a bucket was made"


def test_a_stream_with_more_subjects_and_replicas_not_asked_for_is_used(nats_url: str) -> None:
    n = _unique()
    _make_stream(nats_url, name=f"S{n}", subjects=[f"p{n}.>", f"q{n}.>"], allow_direct=True)
    with open_event_store(f"{nats_url}?stream=S{n}&prefix=p{n}") as used:
        used.add_aggregate("Order", "o-1", [RawEvent("Made", b"x")])
        assert used.events("Order", "o-1") == [RawEvent("Made", b"x")]


def test_a_prefix_taken_by_another_stream_is_a_config_error(nats_url: str) -> None:
    n = _unique()
    _make_stream(nats_url, name=f"O{n}", subjects=[f"p{n}.>"], allow_direct=True)
    with pytest.raises(BackendConfigError, match=f"p{n}"):
        open_event_store(f"{nats_url}?stream=S{n}&prefix=p{n}")


def test_a_stream_whose_limits_discard_events_is_a_config_error(nats_url: str) -> None:
    n = _unique()
    _make_stream(
        nats_url, name=f"S{n}", subjects=[f"p{n}.>"], allow_direct=True, max_msgs_per_subject=1
    )
    with pytest.raises(BackendConfigError, match=f"stream 'S{n}'"):
        open_event_store(f"{nats_url}?stream=S{n}&prefix=p{n}").close()


# -- bad options -------------------------------------------------------------------


@pytest.mark.parametrize(
    "option",
    [
        "replicas=0",
        "replicas=-1",
        "replicas=1.5",
        "replicas=three",
        "timeout=abc",
        "timeout=0",
        "timeout=-1",
        "max_batch=0",
        "max_batch=x",
        "lock_ttl=0",
        "lock_ttl=-2",
        "storage=disk",
        "colour=blue",
    ],
)
def test_a_bad_option_is_a_config_error_and_nothing_is_made(nats_url: str, option: str) -> None:
    n = _unique()
    with pytest.raises(BackendConfigError, match=re.escape(option)):
        open_event_store(f"{nats_url}?stream=S{n}&prefix=p{n}&{option}")
    assert _state(nats_url, f"S{n}") is None


SERVER_OR_CLIENT_REFUSES = [
    "timeout=nan",
    "timeout=inf",
    "lock_ttl=nan",
    "replicas=6",  # the server's most is 5
    "replicas=3",  # one server, not a cluster
    "stream=a.b",
    "stream=a*b",
    "prefix=a b",
    "prefix=a.>",
    "prefix=a.*",  # a wildcard would be accepted as a subject to publish to
    "bucket=a.b",
    "bucket=",  # an empty value, not the default
]
"""Options that pass a plain type check but that the server or the client cannot take:
each must be refused before anything is made."""


@pytest.mark.parametrize(
    "option",
    [pytest.param(option, id=option) for option in SERVER_OR_CLIENT_REFUSES],
)
def test_an_option_the_server_or_client_cannot_take_is_a_config_error(
    nats_url: str, option: str
) -> None:
    n = _unique()
    try:
        opened = open_event_store(f"{nats_url}?stream=S{n}&prefix=p{n}&{option}")
    except BackendConfigError:
        return
    except (StoreUnavailableError, ValueError, OverflowError) as error:
        pytest.fail(f"{option}: {type(error).__name__}: {error}")
    finally:
        _delete_streams(nats_url, f"S{n}", f"KV_S{n}_snapshots", f"KV_S{n}_relays")
    opened.close()
    pytest.fail(f"{option} was accepted")


def _delete_streams(url: str, *names: str) -> None:
    """Delete the streams ``names`` that exist (what a refused open left behind)."""
    from nats.js.errors import NotFoundError

    async def delete(js: Any) -> None:
        for name in names:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)

    _with_js(url, delete)


def test_create_false_opens_what_exists_and_makes_nothing(nats_url: str) -> None:
    """With ``create=false`` (what the inspection commands pass) a missing stream is a
    BackendConfigError and nothing is made; an existing one opens."""
    n = _unique()
    with pytest.raises(BackendConfigError, match=f"stream 'S{n}' does not exist"):
        open_event_store(f"{nats_url}?stream=S{n}&prefix=p{n}&create=false")
    assert _state(nats_url, f"S{n}") is None
    assert _state(nats_url, f"KV_S{n}_snapshots") is None
    with open_event_store(f"{nats_url}?stream=S{n}&prefix=p{n}") as made:
        made.add_aggregate("Order", "o-1", [RawEvent("Made", b"x")])
    with open_event_store(f"{nats_url}?stream=S{n}&prefix=p{n}&create=false") as opened:
        assert opened.events("Order", "o-1") == [RawEvent("Made", b"x")]


def test_the_inspection_commands_create_no_stream(
    nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``esrc streams`` on a stream name that does not exist says so and exits non-zero,
    leaving the server as it was."""
    from esrc_core.cli import main

    n = _unique()
    assert main(["streams", f"{nats_url}?stream=S{n}&prefix=p{n}"]) != 0
    assert f"stream 'S{n}' does not exist" in capsys.readouterr().err
    assert _state(nats_url, f"S{n}") is None
