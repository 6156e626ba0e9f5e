"""Repository: saving, loading, optimistic concurrency, retries, snapshots, metadata."""

from __future__ import annotations

import functools
import json
import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esrc_core import (
    AggregateAlreadyExists,
    AggregateId,
    AggregateNotFound,
    AggregateRequiresEvents,
    EventStore,
    InvalidAggregateIdError,
    OptimisticConcurrencyError,
    RawEvent,
    RawSnapshot,
    Repository,
    RetryPolicy,
    SerializationError,
    UnknownEventError,
)

from .domain import Counter, CounterCreated, Incremented, PlainCounter, registry

FAST = RetryPolicy(attempts=3, base_delay=0, max_delay=0)


def counters(store: EventStore, **options: Any) -> Repository[Counter]:
    """A repository of counters on ``store``."""
    options.setdefault("retry", FAST)
    return Repository(store, Counter, registry, **options)


def stored_names(store: EventStore, counter_id: AggregateId, kind: str = "Counter") -> list[str]:
    """The names of the events stored for one counter."""
    return [e.name for e in store.events(kind, counter_id)]


def test_add_then_find_by_id(store: EventStore) -> None:
    repo = counters(store)
    counter = Counter("c1")
    counter.increment(5)
    repo.add(counter)

    loaded = repo.find_by_id("c1")
    assert loaded.id == "c1"
    assert loaded.value == 5
    assert loaded.initial_version == 2
    assert not loaded.changes
    assert stored_names(store, "c1") == ["CounterCreated", "Incremented"]


def test_contains(store: EventStore) -> None:
    repo = counters(store)
    assert not repo.contains("c1")
    repo.add(Counter("c1"))
    assert repo.contains("c1")
    assert not repo.contains("c2")


def test_find_by_id_of_a_missing_aggregate_raises_aggregate_not_found(store: EventStore) -> None:
    with pytest.raises(AggregateNotFound, match="'missing'"):
        counters(store).find_by_id("missing")


def test_loading_a_stream_with_an_unregistered_event_names_it_and_the_type(
    store: EventStore,
) -> None:
    store.add_aggregate("Counter", "c1", [RawEvent("CounterCreated", b'{"counter_id":"c1"}')])
    store.append_events("Counter", "c1", 1, [RawEvent("CounterRenamed", b"{}")])
    with pytest.raises(UnknownEventError, match=r"'CounterRenamed' in a stream of 'Counter'"):
        counters(store).find_by_id("c1")


def test_loading_an_undecodable_event_names_it_and_the_type(store: EventStore) -> None:
    store.add_aggregate("Counter", "c1", [RawEvent("CounterCreated", b'{"counter":')])
    with pytest.raises(SerializationError, match=r"decode event CounterCreated of 'Counter'"):
        counters(store).find_by_id("c1")


def test_update_appends_the_changes(store: EventStore) -> None:
    repo = counters(store)
    repo.add(Counter("c1"))
    loaded = repo.find_by_id("c1")
    loaded.increment(2)
    loaded.increment(3)
    repo.update(loaded)
    assert repo.find_by_id("c1").value == 5
    assert stored_names(store, "c1") == ["CounterCreated", "Incremented", "Incremented"]


def test_update_by_id_loads_applies_saves_and_returns_the_saved_aggregate(
    store: EventStore,
) -> None:
    repo = counters(store)
    repo.add(Counter("c1"))
    saved = repo.update_by_id("c1", lambda c: c.increment(7))
    assert saved.value == 7
    assert saved.initial_version == 2
    assert not saved.changes
    assert repo.find_by_id("c1").value == 7


def test_update_by_id_of_a_missing_aggregate_raises_aggregate_not_found(
    store: EventStore,
) -> None:
    with pytest.raises(AggregateNotFound):
        counters(store).update_by_id("missing", lambda c: c.increment())


def test_aggregate_type_defaults_to_the_class_name(store: EventStore) -> None:
    repo = counters(store)
    assert repo.aggregate_type == "Counter"
    repo.add(Counter("c1"))
    assert store.contains_aggregate("Counter", "c1")


def test_aggregate_type_can_be_overridden(store: EventStore) -> None:
    tallies = counters(store, aggregate_type="tally")
    tallies.add(Counter("c1"))
    assert store.contains_aggregate("tally", "c1")
    assert not store.contains_aggregate("Counter", "c1")
    assert not counters(store).contains("c1"), "another type is another stream"
    assert tallies.find_by_id("c1").id == "c1"


class _CounterFactory:
    """A factory object (not a class), so the repository cannot guess a type name."""

    def from_events(self, aggregate_id: AggregateId, events: Sequence[object]) -> Counter:
        return Counter.from_events(aggregate_id, events)

    def from_snapshot(
        self, aggregate_id: AggregateId, snapshot: RawSnapshot, events: Sequence[object]
    ) -> Counter:
        return Counter.from_snapshot(aggregate_id, snapshot, events)


def test_a_factory_object_needs_an_aggregate_type(store: EventStore) -> None:
    with pytest.raises(ValueError, match="aggregate_type="):
        Repository(store, _CounterFactory(), registry)
    repo = Repository(store, _CounterFactory(), registry, aggregate_type="counter")
    repo.add(Counter("c1"))
    assert repo.find_by_id("c1").initial_version == 1


@pytest.mark.parametrize("bad", ["", 5])
def test_invalid_aggregate_type_is_rejected(store: EventStore, bad: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="create Repository"):
        counters(store, aggregate_type=bad)


def test_negative_snapshot_every_is_rejected(store: EventStore) -> None:
    with pytest.raises(ValueError, match="snapshot_every"):
        counters(store, snapshot_every=-1)


def test_add_with_no_changes_raises_aggregate_requires_events(store: EventStore) -> None:
    repo = counters(store)
    empty = Counter.from_events("c1", [CounterCreated("c1")])
    with pytest.raises(AggregateRequiresEvents, match="add Counter c1"):
        repo.add(empty)
    assert not repo.contains("c1")


def test_adding_an_existing_id_raises_aggregate_already_exists(store: EventStore) -> None:
    repo = counters(store)
    repo.add(Counter("c1"))
    second = Counter("c1")
    second.increment()
    with pytest.raises(AggregateAlreadyExists):
        repo.add(second)
    assert stored_names(store, "c1") == ["CounterCreated"]
    assert len(second.changes) == 2, "a failed save commits nothing"


def test_adding_the_same_instance_again_does_not_duplicate_its_events(store: EventStore) -> None:
    repo = counters(store)
    counter = Counter("c1")
    repo.add(counter)
    with pytest.raises(AggregateRequiresEvents):
        repo.add(counter)
    assert stored_names(store, "c1") == ["CounterCreated"]


def test_update_with_no_changes_is_a_no_op(store: EventStore) -> None:
    repo = counters(store)
    repo.add(Counter("c1"))
    loaded = repo.find_by_id("c1")
    repo.update(loaded)
    assert loaded.initial_version == 1
    assert stored_names(store, "c1") == ["CounterCreated"]
    # Not even the store is asked: an unsaved aggregate without changes is fine too.
    repo.update(Counter.from_events("never-added", []))
    assert not repo.contains("never-added")


def test_a_stale_update_raises_and_stores_nothing(store: EventStore) -> None:
    repo = counters(store)
    repo.add(Counter("c1"))
    first = repo.find_by_id("c1")
    second = repo.find_by_id("c1")
    first.increment(1)
    repo.update(first)

    second.increment(100)
    with pytest.raises(OptimisticConcurrencyError, match="at version 1"):
        repo.update(second)
    assert repo.find_by_id("c1").value == 1
    assert len(store.events("Counter", "c1")) == 2
    assert second.changes == (Incremented(100),), "the stale changes are not committed"
    assert second.initial_version == 1


def test_after_add_and_update_a_reused_aggregate_saves_only_new_changes(
    store: EventStore,
) -> None:
    repo = counters(store)
    counter = Counter("c1")
    counter.increment()
    repo.add(counter)
    assert not counter.changes
    assert counter.initial_version == 2

    counter.increment(10)
    repo.update(counter)
    assert not counter.changes
    assert counter.initial_version == 3

    repo.update(counter)  # nothing new: nothing appended
    counter.increment(100)
    repo.update(counter)
    assert counter.initial_version == 4
    assert [e.name for e in store.events("Counter", "c1")].count("Incremented") == 3
    assert repo.find_by_id("c1").value == 111


def test_update_by_id_retries_real_threads_racing_on_one_aggregate(store: EventStore) -> None:
    threads_count, per_thread = 8, 5
    repo = counters(store, retry=RetryPolicy(attempts=10_000, base_delay=0.0005, max_delay=0.005))
    repo.add(Counter("shared"))
    start = threading.Barrier(threads_count)
    lock = threading.Lock()
    runs = successes = 0
    errors: list[BaseException] = []

    def increment(counter: Counter) -> None:
        nonlocal runs
        with lock:
            runs += 1
        counter.increment()
        threading.Event().wait(0.001)  # widen the read-modify-write window

    def worker() -> None:
        nonlocal successes
        start.wait()
        for _ in range(per_thread):
            try:
                repo.update_by_id("shared", increment)
            except BaseException as err:
                errors.append(err)
                return
            with lock:
                successes += 1

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert successes == threads_count * per_thread
    assert repo.find_by_id("shared").value == successes
    assert len(store.events("Counter", "shared")) == 1 + successes
    assert runs > successes, "the writers never conflicted, so no retry was exercised"


def test_update_by_id_gives_up_after_attempts(store: EventStore) -> None:
    repo = counters(store, retry=RetryPolicy(attempts=3, base_delay=0, max_delay=0))
    rival = counters(store)
    repo.add(Counter("c1"))
    calls = 0

    def conflicting_update(counter: Counter) -> None:
        # A rival writer commits between our read and our write, every time.
        nonlocal calls
        calls += 1
        rival.update_by_id("c1", lambda c: c.increment(1))
        counter.increment(1000)

    with pytest.raises(OptimisticConcurrencyError) as raised:
        repo.update_by_id("c1", conflicting_update)
    assert calls == 3
    assert repo.find_by_id("c1").value == 3, "only the rival's increments were stored"
    err = raised.value
    assert err.attempts == 3
    assert str(err).startswith(
        "update Counter 'c1': gave up after 3 attempts, each lost to a concurrent writer; "
        "the last conflict: append to Counter 'c1' at version 3: stream is at version 4"
    ), str(err)
    assert isinstance(err.__cause__, OptimisticConcurrencyError)
    assert err.__cause__.attempts == 1


def test_attempts_1_disables_retries(store: EventStore) -> None:
    repo = counters(store, retry=RetryPolicy(attempts=1))
    repo.add(Counter("c1"))
    calls = 0

    def conflicting_update(counter: Counter) -> None:
        nonlocal calls
        calls += 1
        counters(store).update_by_id("c1", lambda c: c.increment())
        counter.increment()

    with pytest.raises(OptimisticConcurrencyError, match="gave up after 1 attempt ") as raised:
        repo.update_by_id("c1", conflicting_update)
    assert calls == 1
    assert raised.value.attempts == 1


def test_update_by_id_succeeds_after_a_conflict(store: EventStore) -> None:
    repo = counters(store)
    repo.add(Counter("c1"))
    calls = 0

    def conflict_once(counter: Counter) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            counters(store).update_by_id("c1", lambda c: c.increment(10))
        counter.increment(1)

    saved = repo.update_by_id("c1", conflict_once)
    assert calls == 2
    assert saved.value == 11
    assert repo.find_by_id("c1").value == 11


def test_an_exception_from_the_update_function_propagates_and_saves_nothing(
    store: EventStore,
) -> None:
    repo = counters(store)
    repo.add(Counter("c1"))

    def failing(counter: Counter) -> None:
        counter.increment(5)
        raise RuntimeError("business rule violated")

    with pytest.raises(RuntimeError, match="business rule violated"):
        repo.update_by_id("c1", failing)
    assert stored_names(store, "c1") == ["CounterCreated"]


def _snapshot_version(store: EventStore, counter_id: str = "c1") -> int | None:
    snapshot = store.latest_snapshot("Counter", counter_id)
    return None if snapshot is None else snapshot.version


def test_snapshots_are_taken_when_a_save_crosses_a_multiple(store: EventStore) -> None:
    repo = counters(store, snapshot_every=3)
    repo.add(Counter("c1"))
    seen = []
    for _ in range(7):  # versions 2..8, one event per save
        saved = repo.update_by_id("c1", lambda c: c.increment())
        seen.append((saved.initial_version, _snapshot_version(store)))
    assert seen == [(2, None), (3, 3), (4, 3), (5, 3), (6, 6), (7, 6), (8, 6)]
    snapshot = store.latest_snapshot("Counter", "c1")
    assert snapshot is not None
    assert json.loads(snapshot.data) == {"value": 5}, "state at version 6: five increments"


def test_a_save_of_several_events_snapshots_at_its_own_version(store: EventStore) -> None:
    repo = counters(store, snapshot_every=3)
    counter = Counter("c1")
    counter.increment()
    repo.add(counter)  # version 2
    assert _snapshot_version(store) is None
    counter.increment()
    counter.increment()
    repo.update(counter)  # 2 -> 4 crosses 3
    assert _snapshot_version(store) == 4
    for _ in range(4):
        counter.increment()
    repo.update(counter)  # 4 -> 8 crosses 6
    assert _snapshot_version(store) == 8


def test_add_that_crosses_the_policy_takes_a_snapshot(store: EventStore) -> None:
    repo = counters(store, snapshot_every=3)
    counter = Counter("c1")
    counter.increment(4)
    counter.increment(4)
    repo.add(counter)
    assert _snapshot_version(store) == 3


def test_loading_uses_the_snapshot_and_only_later_events(store: EventStore) -> None:
    repo = counters(store, snapshot_every=3)
    repo.add(Counter("c1"))
    for by in (1, 2, 4, 8):  # versions 2..5; snapshot at 3 (value 3)
        repo.update_by_id("c1", functools.partial(Counter.increment, by=by))
    loaded = repo.find_by_id("c1")
    assert loaded.restored_from == 3
    assert loaded.value == 15
    assert loaded.initial_version == 5

    # Replace the snapshot with a different value: if loading replayed the events up to
    # version 3 instead of using the snapshot, the value would not change.
    store.add_snapshot("Counter", "c1", RawSnapshot(3, b'{"value": 1000}'))
    reloaded = repo.find_by_id("c1")
    assert reloaded.restored_from == 1000
    assert reloaded.value == 1000 + 4 + 8
    assert reloaded.initial_version == 5


def test_an_aggregate_loaded_from_a_snapshot_saves_at_the_right_version(
    store: EventStore,
) -> None:
    repo = counters(store, snapshot_every=2)
    repo.add(Counter("c1"))
    repo.update_by_id("c1", lambda c: c.increment())  # version 2, snapshot
    loaded = repo.find_by_id("c1")
    assert loaded.restored_from is not None
    loaded.increment()
    repo.update(loaded)
    assert len(store.events("Counter", "c1")) == 3


class BrokenSnapshotCounter(Counter):
    """A counter whose snapshot() fails."""

    def snapshot(self) -> bytes:
        raise RuntimeError("cannot serialise state")


def test_a_failing_snapshot_is_logged_and_the_save_succeeds(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    repo = Repository(store, BrokenSnapshotCounter, registry, snapshot_every=1, retry=FAST)
    counter = BrokenSnapshotCounter("b1")
    with caplog.at_level(logging.WARNING, logger="esrc.repository"):
        repo.add(counter)
    assert store.contains_aggregate("BrokenSnapshotCounter", "b1")
    assert not counter.changes
    assert store.latest_snapshot("BrokenSnapshotCounter", "b1") is None
    [record] = [r for r in caplog.records if r.name == "esrc.repository"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "BrokenSnapshotCounter" in message
    assert "b1" in message
    assert "version 1" in message
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_snapshot_not_supported_is_skipped_quietly(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    repo = Repository(store, PlainCounter, registry, snapshot_every=1, retry=FAST)
    with caplog.at_level(logging.WARNING, logger="esrc.repository"):
        repo.add(PlainCounter("p1"))
    assert store.latest_snapshot("PlainCounter", "p1") is None
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_snapshot_every_0_takes_no_snapshots(store: EventStore) -> None:
    repo = counters(store, snapshot_every=0)
    counter = Counter("c1")
    for _ in range(10):
        counter.increment()
    repo.add(counter)
    for _ in range(5):
        repo.update_by_id("c1", lambda c: c.increment())
    assert _snapshot_version(store) is None
    assert repo.find_by_id("c1").restored_from is None


def test_metadata_reaches_the_stored_events(store: EventStore) -> None:
    repo = counters(store, metadata={"app": "tests", "user": "default"})
    counter = Counter("c1")
    counter.increment()
    repo.add(counter, metadata={"user": "ada", "correlation_id": "k1"})
    repo.update_by_id("c1", lambda c: c.increment(), metadata={"causation_id": "k2"})
    loaded = repo.find_by_id("c1")
    loaded.increment()
    repo.update(loaded)

    metadata = [dict(e.metadata) for e in store.events("Counter", "c1")]
    # Outside any correlation context each save starts a correlation of its own; a
    # correlation_id given explicitly wins.
    third, fourth = metadata[2].pop("correlation_id"), metadata[3].pop("correlation_id")
    assert len({third, fourth, "k1"}) == 3
    assert metadata == [
        {"app": "tests", "user": "ada", "correlation_id": "k1"},
        {"app": "tests", "user": "ada", "correlation_id": "k1"},
        {"app": "tests", "user": "default", "causation_id": "k2"},
        {"app": "tests", "user": "default"},
    ]


def test_default_metadata_is_copied(store: EventStore) -> None:
    defaults = {"app": "tests"}
    repo = counters(store, metadata=defaults)
    defaults["app"] = "changed"
    repo.add(Counter("c1"))
    stored = dict(store.events("Counter", "c1")[0].metadata)
    assert stored.pop("correlation_id")
    assert stored == {"app": "tests"}


def test_without_metadata_an_event_carries_its_correlation_alone(store: EventStore) -> None:
    counters(store).add(Counter("c1"))
    [stored] = store.events("Counter", "c1")
    assert list(stored.metadata) == ["correlation_id"]
    assert str(uuid.UUID(stored.metadata["correlation_id"])) == stored.metadata["correlation_id"]


@pytest.mark.parametrize("bad", [1.5, None, True, b"c1", ""], ids=repr)
def test_wrong_id_type_raises_invalid_aggregate_id_error(store: EventStore, bad: Any) -> None:
    repo = counters(store)
    with pytest.raises(InvalidAggregateIdError, match="find Counter"):
        repo.find_by_id(bad)
    with pytest.raises(InvalidAggregateIdError, match="check Counter"):
        repo.contains(bad)
    with pytest.raises(InvalidAggregateIdError):
        repo.update_by_id(bad, Counter.increment)
    counter = Counter("ignored")
    counter.id = bad
    with pytest.raises(InvalidAggregateIdError, match="add Counter"):
        repo.add(counter)
    counter.id = bad
    with pytest.raises(InvalidAggregateIdError, match="update Counter"):
        repo.update(counter)


@pytest.mark.parametrize(
    "aggregate_id", [uuid.UUID(int=42), 42, "42", -1, 0], ids=lambda v: f"{type(v).__name__}:{v}"
)
def test_every_id_type_round_trips_through_the_repository(
    store: EventStore, aggregate_id: AggregateId
) -> None:
    repo = Repository(store, PlainCounter, registry, retry=FAST)
    counter = PlainCounter(aggregate_id)
    counter.raise_event(Incremented(3))
    repo.add(counter)
    assert repo.contains(aggregate_id)
    assert repo.find_by_id(aggregate_id).value == 3


def test_int_and_str_ids_are_different_aggregates(store: EventStore) -> None:
    repo = Repository(store, PlainCounter, registry, retry=FAST)
    repo.add(PlainCounter(42))
    assert not repo.contains("42")
    repo.add(PlainCounter("42"))
    assert repo.contains("42")


def test_retry_policy_defaults() -> None:
    policy = RetryPolicy()
    assert policy.attempts == 3
    assert 0 <= policy.base_delay <= policy.max_delay


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"attempts": -1},
        {"base_delay": -0.1},
        {"max_delay": -1.0},
    ],
    ids=repr,
)
def test_retry_policy_rejects_invalid_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)


@given(
    retry=st.integers(min_value=1, max_value=5000),
    base=st.floats(min_value=0, max_value=1),
    cap=st.floats(min_value=0, max_value=10),
)
def test_retry_delay_is_within_full_jitter_bounds(retry: int, base: float, cap: float) -> None:
    policy = RetryPolicy(attempts=retry + 1, base_delay=base, max_delay=cap)
    delay = policy.delay(retry)
    assert 0 <= delay <= cap
    if retry <= 60:
        assert delay <= base * 2 ** (retry - 1)


def test_retry_delay_with_zero_base_is_zero() -> None:
    assert RetryPolicy(base_delay=0).delay(1) == 0
    assert RetryPolicy(base_delay=0).delay(2000) == 0


def test_an_unreadable_snapshot_is_logged_and_loading_replays_every_event(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    repo = counters(store, snapshot_every=0)
    counter = Counter("c1")
    counter.increment(4)
    repo.add(counter)
    store.add_snapshot("Counter", "c1", RawSnapshot(2, b"not json"))

    with caplog.at_level(logging.WARNING, logger="esrc.repository"):
        loaded = repo.find_by_id("c1")

    assert loaded.value == 4
    assert loaded.restored_from is None
    assert loaded.initial_version == 2
    assert "snapshot at version 2 failed" in caplog.text


class _RecordingFactory:
    """A factory written for the Sequence contract: it records what it was given."""

    def __init__(self) -> None:
        self.given: list[object] = []

    def from_events(self, aggregate_id: AggregateId, events: Sequence[object]) -> Counter:
        self.given.append(events)
        assert len(events) == len(list(events)), "a sequence has a length"
        return Counter.from_events(aggregate_id, events)

    def from_snapshot(
        self, aggregate_id: AggregateId, snapshot: RawSnapshot, events: Sequence[object]
    ) -> Counter:
        self.given.append(events)
        return Counter.from_snapshot(aggregate_id, snapshot, events)


def test_a_factory_that_does_not_replay_iterables_gets_lists(store: EventStore) -> None:
    """A factory without ``replays_iterables`` is given lists, with and without a
    snapshot."""
    factory = _RecordingFactory()
    repo = Repository(store, factory, registry, aggregate_type="Counter", snapshot_every=0)
    counter = Counter("c1")
    counter.increment(3)
    counters(store).add(counter)
    assert repo.find_by_id("c1").value == 3
    store.add_snapshot(
        "Counter",
        "c1",
        RawSnapshot(1, Counter.from_events("c1", [CounterCreated("c1")]).snapshot()),
    )
    assert repo.find_by_id("c1").value == 3
    assert [type(g) for g in factory.given] == [list, list]


def test_event_raiser_aggregates_are_given_iterators(store: EventStore) -> None:
    """An EventRaiserAggregate subclass replays iterables: the repository hands it an
    iterator, not a list."""
    seen: list[object] = []

    class Spying(Counter):
        @classmethod
        def from_events(cls, aggregate_id: AggregateId, events: Any) -> Spying:
            seen.append(events)
            return super().from_events(aggregate_id, events)

        replays_iterables = True

    Repository(store, Counter, registry).add(Counter("c1"))
    assert Spying.replays_iterables is True
    assert Repository(store, Spying, registry, aggregate_type="Counter").find_by_id("c1").id == "c1"
    assert len(seen) == 1
    assert not isinstance(seen[0], list), f"got {type(seen[0]).__name__}, want an iterator"


def test_a_subclass_overriding_from_events_gets_lists(store: EventStore) -> None:
    """A subclass that overrides from_events (written for the Sequence contract) stops
    replaying iterables unless it says otherwise, and is given a list."""
    seen: list[object] = []

    class Indexing(Counter):
        # Written before from_events took any iterable: mypy flags the narrower type.
        @classmethod
        def from_events(  # type: ignore[override]
            cls, aggregate_id: AggregateId, events: Sequence[object]
        ) -> Indexing:
            seen.append(events)
            assert events[0] is not None
            return super().from_events(aggregate_id, events)

    assert Counter.replays_iterables is True
    assert Indexing.replays_iterables is False
    Repository(store, Counter, registry).add(Counter("c1"))
    assert (
        Repository(store, Indexing, registry, aggregate_type="Counter").find_by_id("c1").id == "c1"
    )
    assert [type(s) for s in seen] == [list]


def test_a_bad_event_after_a_snapshot_is_raised_not_taken_for_a_bad_snapshot(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    """An event after the snapshot that does not decode raises SerializationError from
    the load; the snapshot is not blamed (no warning, no second replay)."""
    repo = counters(store, snapshot_every=0)
    counter = Counter("c1")
    counter.increment(2)
    repo.add(counter)
    store.add_snapshot("Counter", "c1", RawSnapshot(2, counter.snapshot()))
    store.append_events("Counter", "c1", 2, [RawEvent("Incremented", b"not json")])
    with (
        caplog.at_level(logging.WARNING, logger="esrc.repository"),
        pytest.raises(SerializationError, match="Incremented"),
    ):
        repo.find_by_id("c1")
    assert "snapshot" not in caplog.text
