"""Acceptance tests of :class:`esrc_core.repository.Repository` on the store: a
round trip, ``update_by_id`` under contention, and the snapshot policy."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Self

import pytest
from esrc_core.aggregate import EventRaiserAggregate
from esrc_core.capabilities import Capability
from esrc_core.errors import AggregateNotFound, OptimisticConcurrencyError
from esrc_core.events import EventRegistry
from esrc_core.ids import AggregateId
from esrc_core.repository import Repository, RetryPolicy
from esrc_core.store import EventStore

from esrc_testkit.capabilities import requires
from esrc_testkit.fixtures import StoreSuite
from esrc_testkit.races import run_in_threads

__all__ = ["Counter", "CounterCreated", "CounterIncremented", "RepositoryAcceptance", "registry"]

registry = EventRegistry()
"""The registry of the :class:`Counter` events."""


@registry.register
@dataclass(frozen=True)
class CounterCreated:
    """A counter called ``name`` was created."""

    counter_id: uuid.UUID
    name: str


@registry.register
@dataclass(frozen=True)
class CounterIncremented:
    """The counter went up by ``by``."""

    by: int


class Counter(EventRaiserAggregate):
    """A small aggregate with snapshots, used by the repository tests.

    ``restored`` tells whether it was loaded from a snapshot.
    """

    id: uuid.UUID
    name = ""
    value = 0
    restored = False

    def __init__(self, counter_id: uuid.UUID, name: str) -> None:
        super().__init__()
        self.raise_event(CounterCreated(counter_id, name))

    def increment(self, by: int = 1) -> None:
        """Raise the counter by ``by``."""
        self.raise_event(CounterIncremented(by))

    def on_event(self, event: object) -> None:
        """Apply one event."""
        match event:
            case CounterCreated(counter_id=counter_id, name=name):
                self.id, self.name = counter_id, name
            case CounterIncremented(by=by):
                self.value += by
            case _:
                raise TypeError(f"Counter cannot apply {event!r}")

    def snapshot(self) -> bytes:
        """The state as JSON bytes."""
        return json.dumps({"id": str(self.id), "name": self.name, "value": self.value}).encode()

    @classmethod
    def restore(cls, aggregate_id: AggregateId, data: bytes) -> Self:
        """Rebuild from :meth:`snapshot` bytes."""
        state = json.loads(data)
        counter = cls.blank()
        counter.id = uuid.UUID(state["id"])
        counter.name = state["name"]
        counter.value = state["value"]
        counter.restored = True
        return counter


class RepositoryAcceptance(StoreSuite):
    """A :class:`~esrc_core.repository.Repository` of :class:`Counter` on the store."""

    def repository(self, store: EventStore, *args: Any, **options: Any) -> Repository[Any]:
        """The repository the tests use on ``store``: ``Repository(store, *args,
        **options)``. The async suite gives the same cases an
        :class:`~esrc_core.async_repository.AsyncRepository` behind a sync face."""
        return Repository(store, *args, **options)

    def test_repository_round_trip(self, store: EventStore) -> None:
        """add, find_by_id, contains and update keep the aggregate and its version;
        a stale aggregate's update raises OptimisticConcurrencyError."""
        counters = self.repository(store, Counter, registry, snapshot_every=0)
        counter = Counter(uuid.uuid4(), "visits")
        counter.increment()
        counter.increment(5)
        counters.add(counter)
        assert (counter.changes, counter.initial_version) == ((), 3)
        assert counters.contains(counter.id) is True
        assert counters.contains(uuid.uuid4()) is False
        with pytest.raises(AggregateNotFound):
            counters.find_by_id(uuid.uuid4())

        loaded = counters.find_by_id(counter.id)
        assert (loaded.id, loaded.name, loaded.value, loaded.initial_version) == (
            counter.id,
            "visits",
            6,
            3,
        )
        assert loaded.changes == ()
        loaded.increment(10)
        counters.update(loaded)
        assert counters.find_by_id(counter.id).value == 16
        names = [e.name for e in store.events("Counter", counter.id)]
        assert names == ["CounterCreated"] + ["CounterIncremented"] * 3

        counter.increment()
        with pytest.raises(OptimisticConcurrencyError):
            counters.update(counter)
        assert counters.find_by_id(counter.id).value == 16

    @requires(Capability.THREADS)
    def test_repository_update_by_id_under_contention(self, store: EventStore) -> None:
        """Threads that all ``update_by_id`` one aggregate lose no update: retries on
        OptimisticConcurrencyError make every increment land exactly once."""
        threads, increments = 8, 5
        counters = self.repository(
            store,
            Counter,
            registry,
            snapshot_every=0,
            retry=RetryPolicy(attempts=10_000, base_delay=0.0005, max_delay=0.01),
        )
        counter = Counter(uuid.uuid4(), "contended")
        counters.add(counter)
        barrier = threading.Barrier(threads, timeout=120)

        def work(_: int) -> None:
            barrier.wait()
            for _n in range(increments):
                counters.update_by_id(counter.id, lambda c: c.increment())

        run_in_threads(threads, work, barrier=barrier)
        loaded = counters.find_by_id(counter.id)
        assert loaded.value == threads * increments
        assert loaded.initial_version == 1 + threads * increments
        assert len(store.events("Counter", counter.id)) == 1 + threads * increments

    @requires(Capability.SNAPSHOTS)
    def test_repository_snapshot_policy(self, store: EventStore) -> None:
        """With ``snapshot_every=3`` saves that cross versions 3 and 6 take snapshots,
        and loading starts from the latest one plus the events after it."""
        counters = self.repository(store, Counter, registry, snapshot_every=3)
        counter = Counter(uuid.uuid4(), "snapshotted")
        counters.add(counter)
        for _ in range(6):
            counters.update_by_id(counter.id, lambda c: c.increment(2))
        snapshot = store.latest_snapshot("Counter", counter.id)
        assert snapshot is not None
        assert snapshot.version == 6
        assert json.loads(snapshot.data)["value"] == 10

        loaded = counters.find_by_id(counter.id)
        assert loaded.restored is True
        assert (loaded.value, loaded.initial_version, loaded.name) == (12, 7, "snapshotted")
        loaded.increment()
        counters.update(loaded)
        assert counters.find_by_id(counter.id).value == 13

    def test_repository_loads_a_stream_of_several_pages(self, store: EventStore) -> None:
        """An aggregate of 3,500 events (several pages of a streaming store's default
        size) loads with every event applied once, in order, at version 3,500."""
        counters = self.repository(store, Counter, registry, snapshot_every=0)
        counter_id = uuid.uuid4()
        history = [registry.to_raw(CounterCreated(counter_id, "long"))]
        history += [registry.to_raw(CounterIncremented(n)) for n in range(1, 3500)]
        store.add_aggregate("Counter", counter_id, history)
        loaded = counters.find_by_id(counter_id)
        assert (loaded.id, loaded.name) == (counter_id, "long")
        assert loaded.value == sum(range(1, 3500)), f"got {loaded.value}"
        assert (loaded.initial_version, loaded.changes, loaded.restored) == (3500, (), False)

    @requires(Capability.SNAPSHOTS)
    def test_repository_without_load_snapshots_replays_every_event(self, store: EventStore) -> None:
        """``load_snapshots=False`` ignores snapshots others took (even with
        ``snapshot_every`` on) and replays from the first event; the default uses them,
        also where ``snapshot_every=0``."""
        writer = self.repository(store, Counter, registry, snapshot_every=2)
        counter = Counter(uuid.uuid4(), "both")
        counter.increment(3)
        counter.increment(4)
        writer.add(counter)
        snapshot = store.latest_snapshot("Counter", counter.id)
        assert snapshot is not None
        assert snapshot.version == 3, f"got {snapshot!r}"
        for snapshot_every in (0, 2):
            replaying = self.repository(
                store, Counter, registry, snapshot_every=snapshot_every, load_snapshots=False
            )
            loaded = replaying.find_by_id(counter.id)
            assert (loaded.restored, loaded.value, loaded.initial_version) == (False, 7, 3)
        loaded = self.repository(store, Counter, registry, snapshot_every=0).find_by_id(counter.id)
        assert (loaded.restored, loaded.value, loaded.initial_version) == (True, 7, 3)
