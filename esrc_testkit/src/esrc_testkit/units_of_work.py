"""Acceptance tests of atomic appends to several streams (capability
``"units-of-work"``, :class:`~esrc_core.atomic_appends.AtomicAppends`): all or none,
new and existing streams in one unit, races between units under contention, the
outbox order across units, and :class:`~esrc_core.unit_of_work.UnitOfWork` on top."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from esrc_core.atomic_appends import AtomicAppends, StreamAppend
from esrc_core.backoff import Backoff
from esrc_core.capabilities import Capability
from esrc_core.errors import (
    AggregateAlreadyExists,
    AggregateRequiresEvents,
    InvalidEventError,
    OptimisticConcurrencyError,
    OutOfRangeError,
)
from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId
from esrc_core.relay import EventStoreOutbox, RelayEvent, message_id
from esrc_core.repository import Repository
from esrc_core.store import EventStore
from esrc_core.unit_of_work import UnitOfWork

from esrc_testkit.capabilities import capable, requires
from esrc_testkit.checks import assert_events_equal, assert_order_consistent_with_versions
from esrc_testkit.fixtures import StoreSuite
from esrc_testkit.races import run_in_threads
from esrc_testkit.repository import Counter, registry
from esrc_testkit.samples import ORDER, SHIPMENT, events_for, malformed_events

__all__ = ["UnitOfWorkAcceptance"]

_Stream = tuple[str, AggregateId]


class UnitOfWorkAcceptance(StoreSuite):
    """Tests of :meth:`~esrc_core.atomic_appends.AtomicAppends.append_streams` and of
    :class:`~esrc_core.unit_of_work.UnitOfWork` on the store."""

    units = 16
    """How many threads run units of work at once in the races."""
    rounds = 6
    """How many units each thread of the contention race commits."""

    def atomic(self, store: EventStore) -> AtomicAppends:
        """``store`` as :class:`AtomicAppends`; fails the test (never skips) when the
        store declares the capability without implementing it."""
        return capable(self, store, Capability.UNITS_OF_WORK, AtomicAppends)

    def _snapshot(self, store: EventStore, streams: Sequence[_Stream]) -> dict[_Stream, Any]:
        """Each stream's events, or ``None`` when it does not exist."""
        return {s: store.events(*s) if store.contains_aggregate(*s) else None for s in streams}

    @requires(Capability.UNITS_OF_WORK)
    def test_store_implements_atomic_appends(self, store: EventStore) -> None:
        """A store declaring ``units-of-work`` implements
        :class:`~esrc_core.atomic_appends.AtomicAppends`, and an empty unit stores
        nothing."""
        self.atomic(store).append_streams([])
        assert self.unpublished_if_outbox(store) == []

    @requires(Capability.UNITS_OF_WORK)
    def test_unit_mixing_new_and_existing_streams_stores_every_part(
        self, store: EventStore
    ) -> None:
        """One unit appends to two existing streams (of two types) and creates two
        new ones (ids of several types): every part is stored at the right versions,
        exactly as given, and the outbox lists the unit's parts in the order given,
        each in version order."""
        atomic = self.atomic(store)
        store.add_aggregate(ORDER, "o-1", events_for("A", 2))
        store.add_aggregate(SHIPMENT, 7, events_for("B", 1))
        before = len(self.unpublished_if_outbox(store))
        new_id = uuid.UUID(int=99)
        parts = [
            StreamAppend(ORDER, "o-1", 2, events_for("A", 3, start=3)),
            StreamAppend(ORDER, new_id, 0, events_for("C", 2)),
            StreamAppend(SHIPMENT, 7, 1, events_for("B", 1, start=2)),
            StreamAppend(SHIPMENT, "o-1", 0, events_for("D", 1)),
        ]
        atomic.append_streams(parts)
        assert_events_equal(store.events(ORDER, "o-1"), events_for("A", 5), what="o-1")
        assert_events_equal(store.events(ORDER, new_id), events_for("C", 2), what="new stream")
        assert_events_equal(store.events(SHIPMENT, 7), events_for("B", 2), what="shipment 7")
        assert_events_equal(
            store.events(SHIPMENT, "o-1"), events_for("D", 1), what="shipment 'o-1'"
        )
        if self.has(Capability.OUTBOX):
            relayed = self.unpublished(store)[before:]
            want = [
                message_id(ORDER, "o-1", 3),
                message_id(ORDER, "o-1", 4),
                message_id(ORDER, "o-1", 5),
                message_id(ORDER, new_id, 1),
                message_id(ORDER, new_id, 2),
                message_id(SHIPMENT, 7, 2),
                message_id(SHIPMENT, "o-1", 1),
            ]
            assert [e.message_id for e in relayed] == want

    @requires(Capability.UNITS_OF_WORK)
    @pytest.mark.parametrize("failing", [0, 1, 2])
    @pytest.mark.parametrize("conflict", ["stale", "exists", "missing"])
    def test_one_conflicting_stream_fails_the_whole_unit(
        self, store: EventStore, failing: int, conflict: str
    ) -> None:
        """A unit of three parts whose part ``failing`` conflicts (a stale expected
        version, the creation of a stream that exists, an append to a stream that does
        not) raises OptimisticConcurrencyError or AggregateAlreadyExists naming that
        stream, and stores nothing of any part: every stream and the outbox are as
        they were."""
        atomic = self.atomic(store)
        store.add_aggregate(ORDER, "a", events_for("A", 2))
        store.add_aggregate(ORDER, "b", events_for("B", 1))
        store.add_aggregate(ORDER, "taken", events_for("T", 3))
        good = [
            StreamAppend(ORDER, "a", 2, events_for("A", 2, start=3)),
            StreamAppend(ORDER, "fresh", 0, events_for("F", 2)),
            StreamAppend(ORDER, "b", 1, events_for("B", 1, start=2)),
        ]
        bad, culprit, error = {
            "stale": (
                StreamAppend(ORDER, "taken", 2, events_for("X", 1)),
                "taken",
                OptimisticConcurrencyError,
            ),
            "exists": (
                StreamAppend(ORDER, "taken", 0, events_for("X", 1)),
                "taken",
                AggregateAlreadyExists,
            ),
            "missing": (
                StreamAppend(ORDER, "nowhere", 1, events_for("X", 1)),
                "nowhere",
                OptimisticConcurrencyError,
            ),
        }[conflict]
        parts = list(good)
        parts[failing] = bad
        streams: list[_Stream] = [(ORDER, s) for s in ("a", "b", "fresh", "taken", "nowhere")]
        before = self._snapshot(store, streams)
        outbox = self.unpublished_if_outbox(store)
        with pytest.raises(error) as raised:
            atomic.append_streams(parts)
        assert culprit in str(raised.value), (
            f"the error does not name the stream that failed ({culprit!r}): {raised.value}"
        )
        after = self._snapshot(store, streams)
        assert after == before, f"a failed unit changed streams:\nbefore: {before}\nafter:  {after}"
        assert self.unpublished_if_outbox(store) == outbox, "a failed unit reached the outbox"

    @requires(Capability.UNITS_OF_WORK)
    def test_invalid_unit_is_refused_before_anything_is_written(self, store: EventStore) -> None:
        """A unit naming one stream twice, a part without events, a malformed event in
        the last part, or a negative expected version raises before anything is
        written: the earlier, valid parts are not stored."""
        atomic = self.atomic(store)
        store.add_aggregate(ORDER, "a", events_for("A", 1))
        first = StreamAppend(ORDER, "a", 1, events_for("A", 1, start=2))
        created = StreamAppend(ORDER, "new", 0, events_for("N", 1))
        cases: list[tuple[list[StreamAppend], type[Exception]]] = [
            ([first, created, StreamAppend(ORDER, "a", 1, events_for("Z", 1))], ValueError),
            ([first, created, StreamAppend(ORDER, "b", 0, [])], AggregateRequiresEvents),
            (
                [first, created, StreamAppend(ORDER, "b", 0, malformed_events("data"))],
                InvalidEventError,
            ),
            ([first, created, StreamAppend(ORDER, "b", -1, events_for("Z", 1))], OutOfRangeError),
        ]
        outbox = self.unpublished_if_outbox(store)
        for parts, error in cases:
            with pytest.raises(error):
                atomic.append_streams(parts)
            assert_events_equal(store.events(ORDER, "a"), events_for("A", 1), what="stream a")
            assert not store.contains_aggregate(ORDER, "new"), "a refused unit created a stream"
        assert self.unpublished_if_outbox(store) == outbox, "a refused unit reached the outbox"

    @requires(Capability.UNITS_OF_WORK, Capability.THREADS)
    def test_concurrent_units_creating_one_stream_exactly_one_wins(self, store: EventStore) -> None:
        """16 units, each creating a stream of its own and then one shared stream, run
        at once: exactly one is stored; the losers raise AggregateAlreadyExists and
        their own streams do not exist."""
        atomic = self.atomic(store)
        barrier = threading.Barrier(self.units)

        def unit(index: int) -> bool:
            parts = [
                StreamAppend(SHIPMENT, f"own-{index}", 0, events_for(f"O{index}", 2)),
                StreamAppend(ORDER, "shared", 0, events_for(f"S{index}", 2)),
            ]
            barrier.wait()
            try:
                atomic.append_streams(parts)
            except AggregateAlreadyExists:
                return False
            return True

        won = run_in_threads(self.units, unit, barrier=barrier)
        winners = [i for i, w in enumerate(won) if w]
        assert len(winners) == 1, f"want exactly one winning unit, got {winners}"
        winner = winners[0]
        assert_events_equal(
            store.events(ORDER, "shared"), events_for(f"S{winner}", 2), what="shared stream"
        )
        for index in range(self.units):
            exists = store.contains_aggregate(SHIPMENT, f"own-{index}")
            assert exists == (index == winner), (
                f"unit {index} {'won' if index == winner else 'lost'}, yet its own stream "
                f"{'does not exist' if not exists else 'exists'}"
            )

    @requires(Capability.UNITS_OF_WORK, Capability.THREADS)
    def test_concurrent_conflicting_units_one_wins_per_stream_version(
        self, store: EventStore
    ) -> None:
        """16 threads, in 6 rounds, each read two of five shared streams (overlapping
        pairs) and, all at once, commit a unit over them. Afterwards each stream
        holds exactly the parts of the units that succeeded, chained version after
        version (exactly one unit won each stream version), every winner's events are
        all there, and no loser's event is anywhere."""
        atomic = self.atomic(store)
        names = [f"s{n}" for n in range(5)]
        for name in names:
            store.add_aggregate(ORDER, name, events_for(f"init-{name}-", 1))
        barrier = threading.Barrier(self.units)

        def worker(index: int) -> list[list[StreamAppend]]:
            pair = (names[index % 5], names[(index + 1 + index // 5) % 5])
            committed: list[list[StreamAppend]] = []
            for round_ in range(self.rounds):
                parts = [
                    StreamAppend(
                        ORDER,
                        name,
                        len(store.events(ORDER, name)),
                        events_for(f"u{index}r{round_}{name}-", 1 + (index + n) % 2),
                    )
                    for n, name in enumerate(pair)
                ]
                barrier.wait()
                try:
                    atomic.append_streams(parts)
                except OptimisticConcurrencyError:
                    continue
                committed.append(parts)
            return committed

        results = run_in_threads(self.units, worker, barrier=barrier)
        assert any(results), "no unit of work won a single round"
        by_stream: dict[str, dict[int, StreamAppend]] = {name: {} for name in names}
        for units in results:
            for parts in units:
                for part in parts:
                    seen = by_stream[str(part.aggregate_id)]
                    assert part.expected_version not in seen, (
                        f"two units both won {part.aggregate_id} at version {part.expected_version}"
                    )
                    seen[part.expected_version] = part
        for name in names:
            want: list[RawEvent] = list(events_for(f"init-{name}-", 1))
            for version in sorted(by_stream[name]):
                part = by_stream[name][version]
                assert version == len(want), (
                    f"{name}: a winner appended at version {version}, but the winners "
                    f"before it leave the stream at {len(want)}"
                )
                want.extend(part.events)
            assert_events_equal(store.events(ORDER, name), want, what=f"stream {name}")
        if self.has(Capability.OUTBOX):
            relayed = self.unpublished(store)
            assert_order_consistent_with_versions(relayed, what="outbox after racing units")
            total = sum(len(store.events(ORDER, name)) for name in names)
            assert len(relayed) == total

    @requires(Capability.UNITS_OF_WORK, Capability.OUTBOX, Capability.THREADS)
    def test_relay_during_concurrent_units_sees_every_event_once(self, store: EventStore) -> None:
        """While 8 threads commit units (each unit: the thread's own stream and one of
        two shared streams), a relay reads and marks in small batches. It gets every
        committed event exactly once, each stream in version order, and never an
        event of a unit without the unit's other events by the time it is done."""
        race = _UnitRelayRace(self.atomic(store), store, self.outbox(store, "units"))
        run_in_threads(race.writers + 1, race.role)
        relayed, committed = race.relayed, race.committed
        ids = [e.message_id for e in relayed]
        duplicates = sorted({m for m in ids if ids.count(m) > 1})
        assert not duplicates, f"the relay got these events more than once: {duplicates}"
        missing = sorted(committed - set(ids))
        assert not missing, f"the relay never got these committed events: {missing}"
        unknown = sorted(set(ids) - committed)
        assert not unknown, f"the relay got events no unit committed: {unknown}"
        assert_order_consistent_with_versions(relayed, what="relay order across units")

    @requires(Capability.UNITS_OF_WORK)
    def test_unit_of_work_saves_aggregates_of_two_repositories(self, store: EventStore) -> None:
        """A :class:`~esrc_core.unit_of_work.UnitOfWork` over two repositories (two
        stream types) adds one aggregate and updates another in one commit; a unit
        whose commit conflicts stores nothing and leaves the aggregates' changes; an
        exception in the ``with`` block stores nothing."""
        counters = Repository(store, Counter, registry, snapshot_every=0)
        tallies = Repository(store, Counter, registry, aggregate_type="Tally", snapshot_every=0)
        existing = Counter(uuid.UUID(int=1), "existing")
        tallies.add(existing)
        created = Counter(uuid.UUID(int=2), "created")
        with UnitOfWork(counters, tallies) as uow:
            uow.add(created, repository=counters)
            loaded = uow.load(tallies, existing.id)
            loaded.increment(5)
        assert counters.find_by_id(created.id).name == "created"
        assert tallies.find_by_id(existing.id).value == 5
        assert created.changes == ()
        assert loaded.changes == ()

        stale = tallies.find_by_id(existing.id)
        tallies.update_by_id(existing.id, lambda c: c.increment(1))
        other = Counter(uuid.UUID(int=3), "never")
        stale.increment(100)
        uow = UnitOfWork(counters, tallies)
        uow.add(other, repository=counters)
        uow.update(stale, repository=tallies)
        with pytest.raises(OptimisticConcurrencyError):
            uow.commit()
        assert not counters.contains(other.id), "a conflicting unit stored another aggregate"
        assert tallies.find_by_id(existing.id).value == 6
        assert stale.changes, "a failed commit marked the changes committed"

        def failing_block() -> None:
            with UnitOfWork(counters, tallies) as unit:
                unit.add(other, repository=counters)
                raise RuntimeError("the block failed")

        with pytest.raises(RuntimeError):
            failing_block()
        assert not counters.contains(other.id), "a unit stored after its block raised"

    @requires(Capability.UNITS_OF_WORK, Capability.THREADS)
    def test_unit_of_work_run_retries_under_contention(self, store: EventStore) -> None:
        """16 threads each move one unit from one of two counters to the other with
        :meth:`~esrc_core.unit_of_work.UnitOfWork.run` (retrying until it commits):
        the sum stays constant and every transfer counts exactly once."""
        counters = Repository(store, Counter, registry, snapshot_every=0)
        left_id, right_id = uuid.UUID(int=10), uuid.UUID(int=11)
        counters.add(Counter(left_id, "left"))
        counters.add(Counter(right_id, "right"))
        barrier = threading.Barrier(self.units)

        def transfer(index: int) -> None:
            uow = UnitOfWork(counters, retry=Backoff(base_delay=0.001, attempts=None))
            barrier.wait()

            def work(unit: UnitOfWork) -> None:
                unit.load(counters, left_id).increment(-1)
                unit.load(counters, right_id).increment(1)

            uow.run(work)

        run_in_threads(self.units, transfer, barrier=barrier)
        assert counters.find_by_id(left_id).value == -self.units
        assert counters.find_by_id(right_id).value == self.units
        assert len(store.events(counters.aggregate_type, left_id)) == self.units + 1


class _UnitRelayRace:
    """The threads of the relay race across units: ``writers`` threads committing
    units, then a relay marking small batches."""

    writers = 8
    units = 6

    def __init__(self, atomic: AtomicAppends, store: EventStore, outbox: EventStoreOutbox) -> None:
        self.atomic = atomic
        self.store = store
        self.outbox = outbox
        for n in range(2):
            store.add_aggregate(ORDER, f"shared-{n}", events_for(f"S{n}-", 1))
        self.committed: set[str] = {message_id(ORDER, f"shared-{n}", 1) for n in range(2)}
        self.relayed: list[RelayEvent] = []
        self._left = self.writers
        self._lock = threading.Lock()
        self._done = threading.Event()

    def role(self, index: int) -> None:
        """Thread ``index``'s job."""
        if index < self.writers:
            self.write(index)
        else:
            self.relay()

    def write(self, index: int) -> None:
        """Commit units of two events of the thread's own stream and one of a shared
        stream, retrying on conflicts."""
        own = f"own-{index}"
        mine: list[str] = []
        for n in range(self.units):
            shared = f"shared-{(index + n) % 2}"
            own_at = 2 * n
            while True:
                at = len(self.store.events(ORDER, shared))
                parts = [
                    StreamAppend(ORDER, own, own_at, events_for(f"O{index}-", 2, start=own_at + 1)),
                    StreamAppend(ORDER, shared, at, events_for(f"S{index}-{n}-", 1)),
                ]
                try:
                    self.atomic.append_streams(parts)
                except OptimisticConcurrencyError:
                    continue
                mine += [message_id(ORDER, own, own_at + v) for v in (1, 2)]
                mine.append(message_id(ORDER, shared, at + 1))
                break
        with self._lock:
            self.committed.update(mine)
            self._left -= 1
            if self._left == 0:
                self._done.set()

    def relay(self) -> None:
        """Read batches of 5 and mark them, until the writers are done and nothing is
        left."""
        while True:
            finished = self._done.is_set()
            batch = self.outbox.unpublished_events(5)
            if batch:
                self.relayed.extend(batch)
                self.outbox.mark_events_as_published(batch)
            elif finished:
                return
            else:
                time.sleep(0.001)
