"""EventRaiserAggregate: raising events, tracking changes and versions, rebuilding."""

from __future__ import annotations

import pytest

from esrc_core import Aggregate, EventRaiserAggregate, RawSnapshot, SnapshotNotSupported

from .domain import Counter, CounterCreated, Incremented, Refused


def test_raise_event_applies_the_event_and_records_it() -> None:
    counter = Counter("c1")
    counter.increment(2)
    counter.increment(3)
    assert counter.id == "c1"
    assert counter.value == 5
    assert counter.changes == (CounterCreated("c1"), Incremented(2), Incremented(3))


def test_a_handler_that_raises_records_nothing() -> None:
    counter = Counter("c1")
    with pytest.raises(ValueError, match="refused"):
        counter.raise_event(Refused())
    assert counter.changes == (CounterCreated("c1"),)
    assert counter.version == 1


def test_versions_of_a_new_aggregate() -> None:
    counter = Counter("c1")
    assert counter.initial_version == 0
    assert counter.version == 1
    counter.increment()
    assert counter.initial_version == 0
    assert counter.version == 2


def test_changes_is_a_snapshot_not_a_live_view() -> None:
    counter = Counter("c1")
    changes = counter.changes
    counter.increment()
    assert changes == (CounterCreated("c1"),)
    assert len(counter.changes) == 2


def test_mark_changes_committed_empties_changes_and_advances_initial_version() -> None:
    counter = Counter("c1")
    counter.increment()
    counter.mark_changes_committed()
    assert not counter.changes
    assert counter.initial_version == 2
    assert counter.version == 2
    counter.increment()
    assert counter.changes == (Incremented(1),)
    assert counter.version == 3
    counter.mark_changes_committed()
    assert counter.initial_version == 3


def test_mark_changes_committed_with_no_changes_keeps_the_version() -> None:
    counter = Counter.from_events("c1", [CounterCreated("c1")])
    counter.mark_changes_committed()
    assert counter.initial_version == 1


def test_from_events_replays_without_calling_init() -> None:
    events = [CounterCreated("c9"), Incremented(4), Incremented(6)]
    counter = Counter.from_events("c9", events)
    assert counter.id == "c9"
    assert counter.value == 10
    assert counter.initial_version == 3
    assert counter.version == 3
    assert counter.changes == (), "replayed events are history, not changes"
    assert counter.restored_from is None


def test_from_events_with_no_events_is_a_blank_aggregate_at_version_0() -> None:
    counter = Counter.from_events("c1", [])
    assert counter.initial_version == 0
    assert counter.value == 0
    assert not counter.changes


def test_from_snapshot_restores_then_replays_later_events() -> None:
    counter = Counter.from_snapshot(
        "c1", RawSnapshot(5, b'{"value": 100}'), [Incremented(1), Incremented(2)]
    )
    assert counter.restored_from == 100
    assert counter.value == 103
    assert counter.initial_version == 7
    assert not counter.changes


def test_from_snapshot_without_later_events_is_at_the_snapshot_version() -> None:
    counter = Counter.from_snapshot("c1", RawSnapshot(4, b'{"value": 9}'), [])
    assert counter.initial_version == 4
    assert counter.value == 9


def test_snapshot_and_restore_round_trip() -> None:
    counter = Counter("c1")
    counter.increment(41)
    restored = Counter.restore("c1", counter.snapshot())
    assert restored.value == 41
    assert restored.id == "c1"


class Forgetful(EventRaiserAggregate):
    """Its __init__ does not call super().__init__()."""

    total = 0

    def __init__(self, start: int) -> None:
        self.id = "f"
        self.raise_event(Incremented(start))

    def on_event(self, event: object) -> None:
        if isinstance(event, Incremented):
            self.total += event.by


def test_a_subclass_that_forgets_super_init_still_tracks_changes() -> None:
    aggregate = Forgetful(3)
    assert aggregate.total == 3
    assert aggregate.changes == (Incremented(3),)
    assert aggregate.initial_version == 0
    assert aggregate.version == 1
    aggregate.mark_changes_committed()
    assert aggregate.initial_version == 1
    assert not aggregate.changes


def test_forgetful_subclass_reading_versions_first() -> None:
    aggregate = Forgetful.__new__(Forgetful)
    assert aggregate.initial_version == 0
    assert aggregate.version == 0
    assert not aggregate.changes


class NoSnapshots(EventRaiserAggregate):
    def on_event(self, event: object) -> None:
        pass


def test_snapshot_and_restore_are_not_supported_by_default() -> None:
    aggregate = NoSnapshots()
    with pytest.raises(SnapshotNotSupported, match="NoSnapshots does not implement snapshot"):
        aggregate.snapshot()
    with pytest.raises(SnapshotNotSupported, match="NoSnapshots does not implement restore"):
        NoSnapshots.restore("x", b"")
    with pytest.raises(SnapshotNotSupported):
        NoSnapshots.from_snapshot("x", RawSnapshot(1, b""), [])


class NoHandler(EventRaiserAggregate):
    pass


def test_on_event_must_be_implemented() -> None:
    aggregate = NoHandler()
    with pytest.raises(NotImplementedError, match="NoHandler must implement on_event"):
        aggregate.raise_event(Incremented())
    assert not aggregate.changes
    with pytest.raises(NotImplementedError):
        NoHandler.from_events("x", [Incremented()])


def test_blank_has_no_state_and_no_changes() -> None:
    counter = Counter.blank()
    assert not counter.changes
    assert counter.initial_version == 0
    assert counter.value == 0


def test_an_event_raiser_aggregate_is_an_aggregate() -> None:
    assert isinstance(Counter("c1"), Aggregate)


def test_from_events_sets_the_id_before_replay() -> None:
    class Anonymous(EventRaiserAggregate):
        seen_id: object = None

        def on_event(self, event: object) -> None:
            self.seen_id = self.id

    loaded = Anonymous.from_events("a-7", [Incremented(1)])

    assert loaded.id == "a-7"
    assert loaded.seen_id == "a-7"
