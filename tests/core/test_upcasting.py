"""Upcasting: stored schema versions, upcaster chains, renames and the missing-step error."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from esrc_core.events import EventRegistry, RawEvent, RawSnapshot, check_events
from esrc_core.marshaling import JsonMarshaler
from hypothesis import given
from hypothesis import strategies as st

from esrc_core import MissingUpcasterError, SerializationError


@dataclass(frozen=True)
class Counted:
    """Current form (version n): ``value`` is the sum of everything the old forms held."""

    value: int


def _chain_registry(steps: int) -> EventRegistry:
    """``Counted`` at version ``steps + 1``; version k stored ``{"v<k>": x}`` meaning x + k - 1."""
    registry = EventRegistry()
    registry.register(Counted, version=steps + 1)
    for k in range(1, steps + 1):

        def step(payload: dict[str, Any], k: int = k) -> dict[str, Any]:
            value = payload.pop(f"v{k}") + 1
            key = "value" if k == steps else f"v{k + 1}"
            return {**payload, key: value}

        registry.upcaster("Counted", k)(step)
    return registry


@given(steps=st.integers(0, 6), stored=st.integers(1, 7), value=st.integers(-1000, 1000))
def test_chain_of_upcasters_equals_decoding_the_current_version(
    steps: int, stored: int, value: int
) -> None:
    stored = min(stored, steps + 1)
    registry = _chain_registry(steps)
    key = "value" if stored == steps + 1 else f"v{stored}"
    # A value stored at version ``stored`` gains one per step up to the current version.
    old = RawEvent("Counted", json.dumps({key: value}).encode(), {}, stored)
    current = registry.to_raw(Counted(value + steps + 1 - stored))
    assert current.schema_version == steps + 1
    assert registry.from_raw(old) == registry.from_raw(current)


def test_mixed_versions_decode_in_order() -> None:
    registry = _chain_registry(2)
    raws = [
        RawEvent("Counted", b'{"v1": 1}', {}, 1),
        RawEvent("Counted", b'{"v2": 1}', {}, 2),
        registry.to_raw(Counted(1)),
    ]
    assert registry.from_raws(raws) == [Counted(3), Counted(2), Counted(1)]


def test_a_missing_step_names_event_and_versions() -> None:
    registry = EventRegistry()
    registry.register(Counted, version=3)
    registry.upcaster("Counted", 2)(lambda payload: payload)
    with pytest.raises(MissingUpcasterError) as caught:
        registry.from_raw(RawEvent("Counted", b'{"value": 1}', {}, 1), aggregate_type="counter")
    message = str(caught.value)
    assert "Counted" in message
    assert "'counter'" in message
    assert "schema version 1" in message
    assert "current version is 3" in message
    with pytest.raises(MissingUpcasterError, match="newer than the current version 3"):
        registry.from_raw(RawEvent("Counted", b'{"value": 1}', {}, 4))


def test_no_upcaster_needed_for_current_events() -> None:
    registry = EventRegistry()
    registry.register(Counted)
    raw = registry.to_raw(Counted(5))
    assert raw.schema_version == 1
    assert registry.from_raw(raw) == Counted(5)
    with pytest.raises(MissingUpcasterError):
        registry.from_raw(RawEvent("Counted", b'{"value": 1}', {}, 2))


@dataclass(frozen=True)
class FundsReserved:
    amount_cents: int
    currency: str


def test_rename_with_upcaster() -> None:
    registry = EventRegistry()
    registry.register(FundsReserved, version=2)
    registry.rename("MoneyHeld", "FundsReserved")

    @registry.upcaster("FundsReserved", 1)
    def split_currency(payload: dict[str, Any]) -> dict[str, Any]:
        return {"amount_cents": payload["amount"], "currency": "EUR"}

    old = RawEvent("MoneyHeld", b'{"amount": 250}', {}, 1)
    assert registry.from_raw(old) == FundsReserved(250, "EUR")
    assert registry.class_for("MoneyHeld") is FundsReserved
    assert registry.to_raw(FundsReserved(1, "USD")).name == "FundsReserved"
    with pytest.raises(ValueError, match="it cannot be an old name"):
        registry.rename("FundsReserved", "Other")
    with pytest.raises(ValueError, match="is an old name of"):
        registry.register(Counted, name="MoneyHeld")


class _Bytes:
    """A custom marshaler: payloads are ``<int>`` in ASCII."""

    def marshal(self, event: object) -> bytes:
        assert isinstance(event, Counted)
        return str(event.value).encode()

    def unmarshal(self, data: bytes, cls: type[Any]) -> Any:
        return cls(int(data))


def test_custom_marshalers_upcast_bytes() -> None:
    registry = EventRegistry(_Bytes())
    registry.register(Counted, version=2)
    registry.upcaster("Counted", 1)(lambda data: str(int(data) * 100).encode())
    assert registry.from_raw(RawEvent("Counted", b"3", {}, 1)) == Counted(300)
    registry.marshaler = JsonMarshaler()
    assert registry.from_raw(RawEvent("Counted", b'{"value": 4}', {}, 2)) == Counted(4)


def test_a_failing_step_is_a_serialization_error() -> None:
    registry = EventRegistry()
    registry.register(Counted, version=2)
    registry.upcaster("Counted", 1)(lambda payload: payload["missing"])
    with pytest.raises(SerializationError, match="upcast event Counted from schema version 1"):
        registry.from_raw(RawEvent("Counted", b"{}", {}, 1))


def test_registration_checks() -> None:
    registry = EventRegistry()
    with pytest.raises(ValueError, match="1 or more"):
        registry.register(Counted, version=0)
    registry.register(Counted, version=2)
    registry.register(Counted, version=2)
    with pytest.raises(ValueError, match="at schema version 2"):
        registry.register(Counted, version=3)
    registry.upcaster("Counted", 1)(lambda payload: payload)
    with pytest.raises(ValueError, match="already has an upcaster"):
        registry.upcaster("Counted", 1)(lambda payload: payload)


def test_raw_forms_carry_a_schema_version() -> None:
    assert RawEvent("a", b"").schema_version == 1
    assert RawSnapshot(1, b"").schema_version == 1
    assert RawEvent("a", b"", None, 3) != RawEvent("a", b"", None, 1)
    with pytest.raises(Exception, match="schema_version"):
        check_events([RawEvent("a", b"", None, 0)], doing="append")


def test_memory_store_keeps_schema_versions() -> None:
    from esrc_memory import MemoryEventStore

    store = MemoryEventStore()
    key = uuid.uuid4()
    store.add_aggregate("t", key, [RawEvent("a", b"1", {}, 1), RawEvent("a", b"2", {}, 4)])
    store.add_snapshot("t", key, RawSnapshot(2, b"s", 3))
    assert [e.schema_version for e in store.events("t", key)] == [1, 4]
    snapshot = store.latest_snapshot("t", key)
    assert snapshot is not None
    assert snapshot.schema_version == 3


def _counter_registry() -> EventRegistry:
    """The counter's events with ``Incremented`` at version 2: version 1 stored
    ``{"step": n}``."""
    from tests.core.domain import CounterCreated, Incremented

    counters = EventRegistry()
    counters.register(CounterCreated)
    counters.register(Incremented, version=2)
    counters.upcaster("Incremented", 1)(lambda old: {"by": old["step"]})
    return counters


def test_a_stream_mixing_versions_loads_through_the_repository() -> None:
    from esrc_core import Repository
    from esrc_memory import MemoryEventStore
    from tests.core.domain import Counter

    store = MemoryEventStore()
    counters = _counter_registry()
    name = f"c-{uuid.uuid4()}"
    store.add_aggregate(
        "Counter",
        name,
        [
            RawEvent("CounterCreated", json.dumps({"counter_id": name}).encode()),
            RawEvent("Incremented", b'{"step": 2}', {}, 1),
        ],
    )
    repository = Repository(store, Counter, counters, snapshot_every=0)
    repository.update_by_id(name, lambda counter: counter.increment(5))
    assert [e.schema_version for e in store.events("Counter", name)] == [1, 1, 2]
    assert repository.find_by_id(name).value == 7


def test_a_snapshot_of_another_schema_version_is_passed_over() -> None:
    from esrc_core import Repository
    from esrc_memory import MemoryEventStore
    from tests.core.domain import Counter

    store = MemoryEventStore()
    counters = _counter_registry()
    old = Repository(store, Counter, counters, snapshot_every=2)
    counter = Counter("c-1")
    counter.increment(3)
    old.add(counter)
    snapshot = store.latest_snapshot("Counter", "c-1")
    assert snapshot is not None
    assert snapshot.schema_version == 1
    assert old.find_by_id("c-1").restored_from == 3
    new = Repository(store, Counter, counters, snapshot_every=2, snapshot_schema=2)
    loaded = new.find_by_id("c-1")
    assert loaded.value == 3
    assert loaded.restored_from is None
    new.update(_incremented(loaded))
    taken = store.latest_snapshot("Counter", "c-1")
    assert taken is not None
    assert taken.schema_version == 2
    assert new.find_by_id("c-1").restored_from == 5


def _incremented(counter: Any) -> Any:
    counter.increment(1)
    counter.increment(1)
    return counter
