"""Acceptance tests with real threads (capability ``"threads"``): optimistic
concurrency under contention, and an outbox read while writers commit
(see "What the testkit proves" in docs/internals.md)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest
from esrc_core.capabilities import Capability
from esrc_core.errors import AggregateAlreadyExists, OptimisticConcurrencyError
from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId
from esrc_core.relay import EventStoreOutbox, RelayEvent, message_id
from esrc_core.store import EventStore

from esrc_testkit.capabilities import requires
from esrc_testkit.checks import (
    assert_events_equal,
    assert_order_consistent_with_versions,
    comparable,
)
from esrc_testkit.fixtures import EVERYTHING, StoreSuite
from esrc_testkit.samples import ORDER, events_for

__all__ = ["ConcurrencyAcceptance", "run_in_threads"]

T = TypeVar("T")

JOIN_TIMEOUT = 300.0
"""How long :func:`run_in_threads` waits for its threads before it reports a hang.
A guard against deadlocks, not a performance limit."""


def run_in_threads(
    count: int,
    target: Callable[[int], T],
    *,
    barrier: threading.Barrier | None = None,
) -> list[T]:
    """Run ``target(0)`` ... ``target(count - 1)`` in ``count`` threads and return their
    results in that order.

    If a thread raises, ``barrier`` (when given) is aborted so the others stop waiting,
    and the first error is raised here with the others attached as notes. A thread still
    running after :data:`JOIN_TIMEOUT` seconds fails the test as a hang.
    """
    results: dict[int, T] = {}
    errors: list[tuple[int, BaseException]] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            result = target(index)
        except BaseException as err:
            with lock:
                errors.append((index, err))
            if barrier is not None:
                barrier.abort()
        else:
            with lock:
                results[index] = result

    threads = [
        threading.Thread(target=run, args=(i,), name=f"esrc-testkit-{i}", daemon=True)
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [t.name for t in threads if t.is_alive()]
    if errors:
        real = [e for e in errors if not isinstance(e[1], threading.BrokenBarrierError)]
        index, first = (real or errors)[0]
        for other_index, other in errors:
            if other is not first:
                first.add_note(f"thread {other_index} also failed: {other!r}")
        first.add_note(f"raised in thread {index} of {count}")
        raise first
    if hung:
        pytest.fail(f"threads {hung} did not finish within {JOIN_TIMEOUT:.0f}s: a deadlock?")
    return [results[i] for i in range(count)]


def _writer_id(writer: int) -> AggregateId:
    """An id of a different type for each writer: UUID, str, int in turn."""
    if writer % 3 == 0:
        return uuid.UUID(int=writer + 1)
    if writer % 3 == 1:
        return f"writer-{writer}"
    return writer


class ConcurrencyAcceptance(StoreSuite):
    """Races between real threads. The store must declare ``"threads"``."""

    writers = 16
    """How many threads race for one version."""
    rounds = 5
    """How many times they race."""

    @requires(Capability.THREADS)
    def test_concurrent_appends_at_one_version_exactly_one_wins(self, store: EventStore) -> None:
        """Writers that all append at one expected version: exactly one succeeds each
        round, the others get OptimisticConcurrencyError, and the stream holds exactly
        the winners' events, contiguous, none lost or duplicated."""
        store.add_aggregate(ORDER, "contended", events_for("Start", 1))
        barrier = threading.Barrier(self.writers, timeout=120)

        def write(writer: int) -> list[bool]:
            won: list[bool] = []
            for race in range(self.rounds):
                barrier.wait()
                try:
                    store.append_events(
                        ORDER, "contended", 1 + 2 * race, events_for(f"W{writer}R{race}", 2)
                    )
                except OptimisticConcurrencyError:
                    won.append(False)
                else:
                    won.append(True)
                barrier.wait()
            return won

        outcomes = run_in_threads(self.writers, write, barrier=barrier)
        expected = events_for("Start", 1)
        for race in range(self.rounds):
            winners = [w for w in range(self.writers) if outcomes[w][race]]
            assert len(winners) == 1, (
                f"round {race}: writers {winners} succeeded appending at version "
                f"{1 + 2 * race}; want exactly one"
            )
            expected += events_for(f"W{winners[0]}R{race}", 2)
        assert_events_equal(store.events(ORDER, "contended"), expected, what="contended stream")
        if self.has(Capability.OUTBOX):
            relayed = self.unpublished(store)
            assert [e.message_id for e in relayed] == [
                message_id(ORDER, "contended", v) for v in range(1, len(expected) + 1)
            ]
            assert comparable([e.event for e in relayed], what="outbox") == comparable(
                expected, what="written"
            )

    @requires(Capability.THREADS)
    def test_concurrent_adds_of_one_id_exactly_one_wins(self, store: EventStore) -> None:
        """Writers that all add the same new aggregate: exactly one succeeds, the others
        get AggregateAlreadyExists, and the stream holds the winner's events."""
        barrier = threading.Barrier(self.writers, timeout=120)

        def add(writer: int) -> list[bool]:
            won: list[bool] = []
            for race in range(self.rounds):
                barrier.wait()
                try:
                    store.add_aggregate(ORDER, f"new-{race}", events_for(f"W{writer}", 2))
                except AggregateAlreadyExists:
                    won.append(False)
                else:
                    won.append(True)
            return won

        outcomes = run_in_threads(self.writers, add, barrier=barrier)
        for race in range(self.rounds):
            winners = [w for w in range(self.writers) if outcomes[w][race]]
            assert len(winners) == 1, f"new-{race}: writers {winners} all added it; want one"
            assert_events_equal(
                store.events(ORDER, f"new-{race}"),
                events_for(f"W{winners[0]}", 2),
                what=f"new-{race}",
            )
        if self.has(Capability.OUTBOX):
            assert len(self.unpublished(store)) == 2 * self.rounds

    @requires(Capability.THREADS)
    def test_concurrent_writers_on_different_aggregates_all_succeed(
        self, store: EventStore
    ) -> None:
        """Writers on their own aggregates never conflict; every stream is complete."""
        appends = 20
        barrier = threading.Barrier(self.writers // 2, timeout=120)

        def write(writer: int) -> None:
            aggregate_id = _writer_id(writer)
            barrier.wait()
            store.add_aggregate(ORDER, aggregate_id, events_for(f"W{writer}", 1))
            for n in range(2, appends + 2):
                store.append_events(
                    ORDER, aggregate_id, n - 1, events_for(f"W{writer}", 1, start=n)
                )

        run_in_threads(self.writers // 2, write, barrier=barrier)
        for writer in range(self.writers // 2):
            assert_events_equal(
                store.events(ORDER, _writer_id(writer)),
                events_for(f"W{writer}", appends + 1),
                what=f"stream of writer {writer}",
            )
        if self.has(Capability.OUTBOX):
            relayed = self.unpublished(store)
            assert_order_consistent_with_versions(relayed, what="outbox after concurrent writes")
            assert len(relayed) == (self.writers // 2) * (appends + 1)

    @requires(Capability.THREADS, Capability.OUTBOX)
    def test_relay_during_concurrent_writes_sees_every_event_once(self, store: EventStore) -> None:
        """While writers commit (to their own aggregates and to one shared one), a relay
        reads and marks in small batches and an observer re-reads the whole outbox.

        The observer never sees the order change (each read extends the previous one),
        and the relay sees exactly the set of committed events, each once, each stream
        in version order: nothing is skipped by committing late.
        """
        race = _RelayRace(self.outbox(store, "relay"), self.outbox(store, "observer"), store)
        run_in_threads(race.writer_count + 2, race.role)
        relayed_ids = [e.message_id for e in race.relayed]
        duplicates = sorted({m for m in relayed_ids if relayed_ids.count(m) > 1})
        assert not duplicates, f"the relay got these events more than once: {duplicates}"
        missing = sorted(set(race.committed) - set(relayed_ids))
        assert not missing, f"the relay never got these committed events: {missing}"
        unknown = sorted(set(relayed_ids) - set(race.committed))
        assert not unknown, f"the relay got events nobody committed: {unknown}"
        assert_order_consistent_with_versions(race.relayed, what="relay order")
        assert race.observed == relayed_ids
        assert [e.message_id for e in self.unpublished(store, "fresh")] == relayed_ids


class _RelayRace:
    """The threads of the relay race: ``writer_count`` writers, then a relay that marks
    what it reads, then an observer that only reads."""

    writer_count = 6
    appends = 15

    def __init__(
        self, relay: EventStoreOutbox, observer: EventStoreOutbox, store: EventStore
    ) -> None:
        self.store = store
        self.relay_outbox = relay
        self.observer_outbox = observer
        store.add_aggregate(ORDER, "shared", events_for("Shared", 1))
        self.committed = [message_id(ORDER, "shared", 1)]
        self.relayed: list[RelayEvent] = []
        self.observed: list[str] = []
        self._lock = threading.Lock()
        self._writers_left = self.writer_count
        self._done = threading.Event()

    def role(self, index: int) -> None:
        """Thread ``index``'s job."""
        if index < self.writer_count:
            self.write(index)
        elif index == self.writer_count:
            self.relay()
        else:
            self.observe()

    def write(self, index: int) -> None:
        """Append to the writer's own aggregate and, in between, to the shared one."""
        aggregate_id = _writer_id(index)
        mine = [message_id(ORDER, aggregate_id, 1)]
        self.store.add_aggregate(ORDER, aggregate_id, events_for(f"W{index}", 1))
        for n in range(2, self.appends + 2):
            self.store.append_events(
                ORDER, aggregate_id, n - 1, events_for(f"W{index}", 1, start=n)
            )
            mine.append(message_id(ORDER, aggregate_id, n))
            mine.append(_append_with_retry(self.store, "shared", events_for(f"S{index}", 1)))
        with self._lock:
            self.committed.extend(mine)
            self._writers_left -= 1
            if self._writers_left == 0:
                self._done.set()

    def relay(self) -> None:
        """Read small batches and mark them, until the writers are done and nothing is left."""
        while True:
            finished = self._done.is_set()
            batch = self.relay_outbox.unpublished_events(5)
            if batch:
                self.relayed.extend(batch)
                self.relay_outbox.mark_events_as_published(batch)
            elif finished:
                return
            else:
                time.sleep(0.001)

    def observe(self) -> None:
        """Re-read the whole outbox; each read must extend the previous one."""
        previous: list[str] = []
        while True:
            finished = self._done.is_set()
            events = self.observer_outbox.unpublished_events(EVERYTHING)
            current = [e.message_id for e in events]
            assert current[: len(previous)] == previous, (
                "the outbox order changed between two reads:\n"
                f"before: {previous}\nafter:  {current}"
            )
            previous = current
            if finished:
                self.observed = current
                return
            time.sleep(0.001)


def _append_with_retry(store: EventStore, aggregate_id: str, events: list[RawEvent]) -> str:
    """Append to ``aggregate_id`` at its current version, retrying on conflicts; return
    the message id of the (single) event appended."""
    while True:
        version = len(store.events(ORDER, aggregate_id))
        try:
            store.append_events(ORDER, aggregate_id, version, events)
        except OptimisticConcurrencyError:
            continue
        return message_id(ORDER, aggregate_id, version + 1)
