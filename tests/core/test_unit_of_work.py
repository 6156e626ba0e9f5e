"""UnitOfWork and AsyncUnitOfWork: which repository takes which aggregate, the checks
made when aggregates are registered, commit and discard, the retries of run(), the
snapshot policy after a commit, stores without the capability, and the async face
(on a bridged store and on a native async store)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from esrc_core import (
    AggregateAlreadyExists,
    AggregateId,
    AsyncRepository,
    AsyncUnitOfWork,
    Backoff,
    BridgedEventStore,
    EventStore,
    NotSupportedError,
    OptimisticConcurrencyError,
    RawEvent,
    RawSnapshot,
    Repository,
    StreamAppend,
    UnitOfWork,
    check_appends,
)
from esrc_memory import MemoryEventStore
from tests.core.domain import Counter, registry


class Gauge(Counter):
    """A second aggregate class (a Counter subclass, so Counter's repository takes it
    too)."""


class PlainStore(EventStore):
    """A memory store seen through the EventStore protocol alone: no atomic appends."""

    def __init__(self) -> None:
        self.inner = MemoryEventStore()

    def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        self.inner.add_aggregate(aggregate_type, aggregate_id, events)

    def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        self.inner.append_events(aggregate_type, aggregate_id, from_version, events)

    def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        return self.inner.events(aggregate_type, aggregate_id, from_version)

    def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        return self.inner.contains_aggregate(aggregate_type, aggregate_id)

    def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        self.inner.add_snapshot(aggregate_type, aggregate_id, snapshot)

    def latest_snapshot(self, aggregate_type: str, aggregate_id: AggregateId) -> RawSnapshot | None:
        return self.inner.latest_snapshot(aggregate_type, aggregate_id)

    def close(self) -> None:
        self.inner.close()


def repositories(store: EventStore) -> tuple[Repository[Counter], Repository[Gauge]]:
    return (
        Repository(store, Counter, registry, snapshot_every=0),
        Repository(store, Gauge, registry, snapshot_every=0),
    )


def test_aggregates_of_two_repositories_commit_together() -> None:
    """A new Gauge and a loaded Counter are saved by one commit, each to its own
    repository's streams (the Gauge goes to the Gauge repository, the most specific
    of the two that take it, when named), with the unit's metadata."""
    store = MemoryEventStore()
    counters, gauges = repositories(store)
    counters.add(Counter("c"))
    with UnitOfWork(counters, gauges) as uow:
        counter = uow.load(counters, "c")
        counter.increment(2)
        gauge = Gauge("g")
        uow.add(gauge, repository=gauges, metadata={"cause": "test"})
    assert counters.find_by_id("c").value == 2
    assert gauges.find_by_id("g").id == "g"
    gauge_meta = dict(store.events("Gauge", "g")[0].metadata)
    counter_meta = dict(store.events("Counter", "c")[1].metadata)
    # One command: the unit's events share one new correlation, not the earlier add's.
    shared = gauge_meta.pop("correlation_id")
    assert counter_meta == {"correlation_id": shared}
    assert store.events("Counter", "c")[0].metadata["correlation_id"] != shared
    assert gauge_meta == {"cause": "test"}
    assert counter.changes == ()
    assert counter.initial_version == 2
    outbox = [e.message_id for e in store.outbox().unpublished_events(10)]
    assert outbox == ["Counter/s:c/1", "Counter/s:c/2", "Gauge/s:g/1"]


def test_the_repository_is_found_by_the_aggregate_class() -> None:
    """An aggregate whose class only one repository takes needs no ``repository=``;
    a class no repository takes, or two do, is refused with a message saying what to
    pass; loading by class works the same way."""
    store = MemoryEventStore()
    counters, gauges = repositories(store)
    uow = UnitOfWork(gauges)
    uow.add(Gauge("g"))
    with pytest.raises(ValueError, match="no repository of this unit of work takes a Counter"):
        uow.add(Counter("c"))
    both = UnitOfWork(counters, gauges)
    with pytest.raises(ValueError, match=r"several repositories take a Gauge \(Counter, Gauge\)"):
        both.add(Gauge("g2"))
    uow.commit()
    assert UnitOfWork(gauges).load(Gauge, "g").id == "g"


def test_registration_is_checked() -> None:
    """One stream is registered once (the same object again is harmless, another
    object is refused), an aggregate never saved cannot be updated, and a unit's
    repositories must share one store."""
    store = MemoryEventStore()
    counters, _ = repositories(store)
    counters.add(Counter("c"))
    uow = UnitOfWork(counters)
    loaded = uow.load(counters, "c")
    assert uow.load(Counter, "c") is loaded
    uow.update(loaded)
    with pytest.raises(ValueError, match="registered already"):
        uow.update(counters.find_by_id("c"))
    with pytest.raises(ValueError, match="never saved"):
        uow.update(Counter("new"))
    with pytest.raises(ValueError, match="must share one store"):
        UnitOfWork(counters, Repository(MemoryEventStore(), Gauge, registry))
    with pytest.raises(ValueError, match="needs the repositories"):
        UnitOfWork()


def test_a_store_without_the_capability_is_refused() -> None:
    """A unit of work over a store that does not append atomically raises
    NotSupportedError naming the capability, before anything is registered."""
    counters = Repository(PlainStore(), Counter, registry)
    with pytest.raises(NotSupportedError, match="'units-of-work'"):
        UnitOfWork(counters)


def test_a_conflict_stores_nothing_and_empties_the_unit() -> None:
    """A commit that conflicts on one stream stores nothing of the others, names the
    stream, leaves the aggregates' changes, and empties the unit; an exception inside
    ``with`` stores nothing; a unit with nothing changed stores nothing."""
    store = MemoryEventStore()
    counters, _ = repositories(store)
    counters.add(Counter("c"))
    counters.add(Counter("taken"))
    stale = counters.find_by_id("c")
    counters.update_by_id("c", lambda c: c.increment())
    stale.increment(10)
    uow = UnitOfWork(counters)
    uow.update(stale)
    fresh = Counter("fresh")
    uow.add(fresh)
    with pytest.raises(
        OptimisticConcurrencyError, match="'c' at version 1: stream is at version 2"
    ):
        uow.commit()
    assert not store.contains_aggregate("Counter", "fresh")
    assert stale.changes
    uow.commit()  # empty now: nothing happens
    assert not store.contains_aggregate("Counter", "fresh")

    def adding(*aggregates: Counter, fail: bool = False) -> None:
        with UnitOfWork(counters) as unit:
            for aggregate in aggregates:
                unit.add(aggregate)
            if fail:
                raise RuntimeError("stop")

    with pytest.raises(AggregateAlreadyExists, match="'taken'"):
        adding(fresh, Counter("taken"))
    assert not store.contains_aggregate("Counter", "fresh")
    with pytest.raises(RuntimeError):
        adding(fresh, fail=True)
    assert not store.contains_aggregate("Counter", "fresh")
    unchanged = UnitOfWork(counters)
    unchanged.load(counters, "c")
    unchanged.commit()
    assert len(store.events("Counter", "c")) == 2


def test_run_retries_conflicts_then_gives_up() -> None:
    """``run`` starts again from an empty unit after a conflict; when its policy
    allows no more tries it raises OptimisticConcurrencyError with ``attempts`` and
    the last conflict chained. An exception from the work is raised as it is."""
    store = MemoryEventStore()
    counters, _ = repositories(store)
    counters.add(Counter("c"))
    calls = []

    def interfering(unit: UnitOfWork) -> int:
        counter = unit.load(counters, "c")
        calls.append(counter.initial_version)
        if len(calls) < 3:  # another writer gets in first, twice
            counters.update_by_id("c", lambda c: c.increment())
        counter.increment(5)
        return len(calls)

    uow = UnitOfWork(counters, retry=Backoff(base_delay=0.0, attempts=5))
    assert uow.run(interfering) == 3
    assert calls == [1, 2, 3]
    assert counters.find_by_id("c").value == 7

    def always_losing(unit: UnitOfWork) -> None:
        unit.load(counters, "c").increment()
        counters.update_by_id("c", lambda c: c.increment())

    limited = UnitOfWork(counters, retry=Backoff(base_delay=0.0, attempts=2))
    with pytest.raises(OptimisticConcurrencyError, match="gave up after 2") as raised:
        limited.run(always_losing)
    assert raised.value.attempts == 2
    assert isinstance(raised.value.__cause__, OptimisticConcurrencyError)

    def failing(unit: UnitOfWork) -> None:
        unit.add(Counter("never"))
        raise KeyError("no")

    with pytest.raises(KeyError):
        uow.run(failing)
    assert not store.contains_aggregate("Counter", "never")


def test_snapshots_follow_each_repositorys_policy() -> None:
    """After a commit, each repository takes a snapshot when the save crosses a
    multiple of its ``snapshot_every``, as its own saves do."""
    store = MemoryEventStore()
    counters = Repository(store, Counter, registry, snapshot_every=3)
    with UnitOfWork(counters) as uow:
        counter = Counter("c")
        counter.increment()
        counter.increment()
        uow.add(counter)
    snapshot = store.latest_snapshot("Counter", "c")
    assert snapshot is not None
    assert snapshot.version == 3


def test_check_appends_refuses_bad_input() -> None:
    """Not a sequence, not StreamAppend parts, and a stream named twice (42 and "42"
    are two streams) are refused before anything is written."""
    with pytest.raises(TypeError):
        check_appends(StreamAppend("T", 1, 0, [RawEvent("E", b"")]))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="part 0 is a tuple"):
        check_appends([("T", 1, 0, [])])  # type: ignore[list-item]
    ok = check_appends(
        [
            StreamAppend("T", 42, 0, [RawEvent("E", b"")]),
            StreamAppend("T", "42", 0, [RawEvent("E", b"")]),
        ]
    )
    assert len(ok) == 2
    with pytest.raises(ValueError, match=r"part 1 .* is part 0 already"):
        check_appends(
            [
                StreamAppend("T", 42, 0, [RawEvent("E", b"")]),
                StreamAppend("T", 42, 1, [RawEvent("E", b"")]),
            ]
        )


class NativeStore:
    """A native async store (not bridged) with atomic appends: every method awaits the
    bridged memory store."""

    def __init__(self) -> None:
        self.inner = BridgedEventStore(MemoryEventStore())

    def __getattr__(self, name: str) -> Any:
        if name in {"bridge", "sync_store", "closed"}:
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def add_aggregate(self, *args: Any) -> None:
        await self.inner.add_aggregate(*args)

    async def append_events(self, *args: Any) -> None:
        await self.inner.append_events(*args)

    async def events(self, *args: Any) -> list[RawEvent]:
        return await self.inner.events(*args)

    async def contains_aggregate(self, *args: Any) -> bool:
        return await self.inner.contains_aggregate(*args)

    async def add_snapshot(self, *args: Any) -> None:
        await self.inner.add_snapshot(*args)

    async def latest_snapshot(self, *args: Any) -> RawSnapshot | None:
        return await self.inner.latest_snapshot(*args)

    async def append_streams(self, appends: Sequence[StreamAppend]) -> None:
        await self.inner.append_streams(appends)

    async def close(self) -> None:
        await self.inner.close()

    async def __aenter__(self) -> NativeStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@pytest.mark.parametrize("kind", ["bridged", "native"])
def test_async_unit_of_work(kind: str) -> None:
    """The async face: ``async with`` commits two repositories' aggregates together,
    ``run`` takes a coroutine function and retries, on a bridged store and on a
    native async store (whose sync face appends through it)."""

    async def scenario() -> None:
        store: Any = BridgedEventStore(MemoryEventStore()) if kind == "bridged" else NativeStore()
        counters = AsyncRepository(store, Counter, registry, snapshot_every=0)
        gauges = AsyncRepository(store, Gauge, registry, snapshot_every=0)
        await counters.add(Counter("c"))
        async with AsyncUnitOfWork(counters, gauges) as uow:
            counter = await uow.load(counters, "c")
            counter.increment(3)
            uow.add(Gauge("g"), repository=gauges)
        assert (await counters.find_by_id("c")).value == 3
        assert await gauges.contains("g")

        tries = []

        async def work(unit: AsyncUnitOfWork) -> str:
            loaded = await unit.load(counters, "c")
            tries.append(loaded.initial_version)
            if len(tries) == 1:
                await counters.update_by_id("c", lambda c: c.increment())
            await asyncio.sleep(0)
            loaded.increment()
            return "done"

        unit = AsyncUnitOfWork(counters, retry=Backoff(base_delay=0.0, attempts=3))
        assert await unit.run(work) == "done"
        assert tries == [2, 3]
        assert (await counters.find_by_id("c")).value == 5
        await store.close()

    asyncio.run(scenario())


def test_async_unit_of_work_needs_the_capability() -> None:
    """On a bridged store whose sync store lacks atomic appends, creating the unit
    raises NotSupportedError naming the capability."""

    async def scenario() -> None:
        store = BridgedEventStore(PlainStore())
        counters = AsyncRepository(store, Counter, registry)
        with pytest.raises(NotSupportedError, match="'units-of-work'"):
            AsyncUnitOfWork(counters)
        with pytest.raises(NotSupportedError, match="'units-of-work'"):
            await store.append_streams([])

    asyncio.run(scenario())
