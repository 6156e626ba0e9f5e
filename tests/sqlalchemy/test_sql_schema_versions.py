"""The SQL store keeps each event's and snapshot's schema version (a column since
schema version 4 of the tables), so the registry upcasts what was stored at an older
version, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from esrc_core.atomic_appends import StreamAppend
from esrc_core.events import EventRegistry
from esrc_sqlalchemy.testing import PrefixPool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esrc_core import InvalidEventError, RawEvent, RawSnapshot, Repository
from tests.core.domain import Counter


@dataclass(frozen=True)
class Counted:
    """Current form (version n): ``value`` is the sum of everything the old forms held."""

    value: int


def _chain_registry(steps: int) -> EventRegistry:
    """``Counted`` at version ``steps + 1``; version k stored ``{"v<k>": x}`` meaning
    x + (steps + 1 - k) in the current form."""
    registry = EventRegistry()
    registry.register(Counted, version=steps + 1)
    for k in range(1, steps + 1):

        def step(payload: dict[str, Any], k: int = k) -> dict[str, Any]:
            value = payload.pop(f"v{k}") + 1
            key = "value" if k == steps else f"v{k + 1}"
            return {**payload, key: value}

        registry.upcaster("Counted", k)(step)
    return registry


def _stored_at(version: int, steps: int, value: int) -> RawEvent:
    key = "value" if version == steps + 1 else f"v{version}"
    return RawEvent("Counted", json.dumps({key: value}).encode(), {}, version)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    steps=st.integers(0, 5),
    stored=st.lists(st.tuples(st.integers(1, 6), st.integers(-1000, 1000)), min_size=1, max_size=6),
)
def test_stored_old_versions_upcast_to_what_the_current_version_decodes(
    any_pool: PrefixPool, steps: int, stored: list[tuple[int, int]]
) -> None:
    """A stream mixing schema versions is stored and read back with each event's
    version, and every event upcast through the chain decodes to what its current
    form decodes to."""
    registry = _chain_registry(steps)
    raws = [_stored_at(min(version, steps + 1), steps, value) for version, value in stored]
    store = any_pool.open()
    name = f"h-{uuid.uuid4()}"
    store.add_aggregate("Counted", name, raws[:1])
    if raws[1:]:
        store.append_events("Counted", name, 1, raws[1:])
    read = store.events("Counted", name)
    assert read == raws, f"got {read!r}, want {raws!r}"
    want = [
        Counted(value + steps + 1 - raw.schema_version)
        for raw, (_, value) in zip(raws, stored, strict=True)
    ]
    current = [registry.to_raw(event) for event in want]
    assert registry.from_raws(read) == registry.from_raws(current) == want


def _counter_registry() -> EventRegistry:
    from tests.core.domain import CounterCreated, Incremented

    counters = EventRegistry()
    counters.register(CounterCreated)
    counters.register(Incremented, version=2)
    counters.upcaster("Incremented", 1)(lambda old: {"by": old["step"]})
    return counters


def test_a_stream_mixing_versions_loads_through_the_repository(any_pool: PrefixPool) -> None:
    """An event stored at version 1 and one written now at version 2 load into the
    aggregate; the stored versions and the snapshot's schema version come back."""
    store = any_pool.open()
    name = f"c-{uuid.uuid4()}"
    store.add_aggregate(
        "Counter",
        name,
        [
            RawEvent("CounterCreated", json.dumps({"counter_id": name}).encode()),
            RawEvent("Incremented", b'{"step": 2}', {}, 1),
        ],
    )
    counters = _counter_registry()
    repository = Repository(store, Counter, counters, snapshot_every=3, snapshot_schema=2)
    repository.update_by_id(name, lambda counter: counter.increment(5))
    assert [e.schema_version for e in store.events("Counter", name)] == [1, 1, 2]
    assert [e.event.schema_version for e in store.recorded_events("Counter", name)] == [1, 1, 2]
    snapshot = store.latest_snapshot("Counter", name)
    assert snapshot is not None
    assert snapshot.schema_version == 2
    loaded = repository.find_by_id(name)
    assert (loaded.value, loaded.restored_from) == (7, 7)


def test_the_relay_hands_out_stored_versions_and_units_of_work_keep_them(
    any_pool: PrefixPool,
) -> None:
    """Events appended in a unit of work keep their schema versions, and the outbox
    hands every event out with the version it was stored at."""
    store = any_pool.open()
    a, b = f"a-{uuid.uuid4()}", f"b-{uuid.uuid4()}"
    store.add_aggregate("T", a, [RawEvent("E", b"1", {}, 3)])
    store.append_streams(
        [
            StreamAppend("T", a, 1, (RawEvent("E", b"2"), RawEvent("E", b"3", {}, 2))),
            StreamAppend("T", b, 0, (RawEvent("E", b"4", {}, 4),)),
        ]
    )
    assert [e.schema_version for e in store.events("T", a)] == [3, 1, 2]
    assert [e.schema_version for e in store.events("T", b)] == [4]
    relayed = store.outbox(f"r{uuid.uuid4().hex[:8]}").unpublished_events(100)
    mine = [(e.aggregate_id, e.event.schema_version) for e in relayed if e.aggregate_id in (a, b)]
    assert mine == [(a, 3), (a, 1), (a, 2), (b, 4)]


def test_a_schema_version_over_the_column_is_refused(any_pool: PrefixPool) -> None:
    """Schema versions are kept in a SMALLINT: a larger one is refused, nothing written."""
    store = any_pool.open()
    name = f"s-{uuid.uuid4()}"
    with pytest.raises(InvalidEventError, match=r"event 0 \(a\) has schema version 32768"):
        store.add_aggregate("t", name, [RawEvent("a", b"1", {}, 32768)])
    assert not store.contains_aggregate("t", name)
    store.add_aggregate("t", name, [RawEvent("a", b"1", {}, 32767)])
    with pytest.raises(InvalidEventError, match="schema version"):
        store.add_snapshot("t", name, RawSnapshot(1, b"s", 32768))
    assert store.latest_snapshot("t", name) is None


def test_the_async_store_keeps_schema_versions(any_pool: PrefixPool) -> None:
    """The asyncio store writes and reads the versions of events and snapshots."""

    async def run() -> None:
        store = any_pool.open_async()
        try:
            name = f"a-{uuid.uuid4()}"
            events = [RawEvent("a", b"1", {}, 2), RawEvent("b", b"2")]
            await store.add_aggregate("t", name, events)
            await store.append_events("t", name, 2, [RawEvent("c", b"3", {}, 5)])
            await store.add_snapshot("t", name, RawSnapshot(3, b"s", 4))
            assert await store.events("t", name) == [*events, RawEvent("c", b"3", {}, 5)]
            assert await store.latest_snapshot("t", name) == RawSnapshot(3, b"s", 4)
        finally:
            await store.close()

    asyncio.run(run())
