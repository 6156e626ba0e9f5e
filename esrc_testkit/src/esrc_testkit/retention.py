"""Acceptance tests of stream deletion and retention (capability ``"delete-streams"``,
:class:`~esrc_core.retention.DeletesStreams`): the tombstone a deleted stream leaves,
truncation before the latest snapshot, and what relays see of both."""

from __future__ import annotations

import threading

import pytest
from esrc_core.atomic_appends import AtomicAppends, StreamAppend
from esrc_core.capabilities import Capability
from esrc_core.errors import (
    AggregateNotFound,
    EventsTruncatedError,
    OptimisticConcurrencyError,
    StreamDeletedError,
)
from esrc_core.events import RawSnapshot
from esrc_core.inspection import Inspectable
from esrc_core.relay import message_id
from esrc_core.retention import DeletesStreams
from esrc_core.store import EventStore, StreamingStore

from esrc_testkit.capabilities import capable, requires
from esrc_testkit.checks import assert_events_equal, assert_order_consistent_with_versions
from esrc_testkit.fixtures import StoreSuite
from esrc_testkit.races import run_in_threads
from esrc_testkit.samples import ORDER, SHIPMENT, events_for

__all__ = ["RetentionAcceptance"]


class RetentionAcceptance(StoreSuite):
    """Tests of :meth:`~esrc_core.retention.DeletesStreams.delete_stream` and
    :meth:`~esrc_core.retention.DeletesStreams.truncate_stream`."""

    def deleting(self, store: EventStore) -> DeletesStreams:
        """``store`` as :class:`DeletesStreams`; fails the test when it declares the
        capability without implementing it."""
        return capable(self, store, Capability.DELETE_STREAMS, DeletesStreams)

    @requires(Capability.DELETE_STREAMS)
    def test_deleted_stream_is_a_tombstone(self, store: EventStore) -> None:
        """After ``delete_stream``: the stream does not exist for reads (AggregateNotFound,
        no snapshot, ``contains_aggregate`` false), appends and re-creating it raise
        StreamDeletedError for good, deleting it again does nothing, and the stream of
        the same id in another type, and other streams, are untouched."""
        deleting = self.deleting(store)
        store.add_aggregate(ORDER, "o-1", events_for("A", 3))
        store.add_snapshot(ORDER, "o-1", RawSnapshot(2, b"two"))
        store.add_aggregate(SHIPMENT, "o-1", events_for("S", 1))
        store.add_aggregate(ORDER, "o-2", events_for("B", 1))
        deleting.delete_stream(ORDER, "o-1")
        assert not store.contains_aggregate(ORDER, "o-1")
        assert store.latest_snapshot(ORDER, "o-1") is None
        with pytest.raises(AggregateNotFound):
            store.events(ORDER, "o-1")
        with pytest.raises(AggregateNotFound):
            store.add_snapshot(ORDER, "o-1", RawSnapshot(1, b"one"))
        if self.has(Capability.STREAMING):
            streaming = capable(self, store, Capability.STREAMING, StreamingStore)
            with pytest.raises(AggregateNotFound):
                streaming.load_stream(ORDER, "o-1")
            with pytest.raises(AggregateNotFound):
                streaming.iter_events(ORDER, "o-1")
        for version in (0, 3):
            with pytest.raises(StreamDeletedError, match="'o-1'"):
                store.append_events(ORDER, "o-1", version, events_for("X", 1))
        with pytest.raises(StreamDeletedError, match="'o-1'"):
            store.add_aggregate(ORDER, "o-1", events_for("X", 1))
        if self.has(Capability.UNITS_OF_WORK):
            atomic = capable(self, store, Capability.UNITS_OF_WORK, AtomicAppends)
            with pytest.raises(StreamDeletedError, match="'o-1'"):
                atomic.append_streams(
                    [
                        StreamAppend(ORDER, "o-2", 1, events_for("B", 1, start=2)),
                        StreamAppend(ORDER, "o-1", 0, events_for("X", 1)),
                    ]
                )
        deleting.delete_stream(ORDER, "o-1")
        assert not store.contains_aggregate(ORDER, "o-1")
        with pytest.raises(AggregateNotFound):
            deleting.delete_stream(ORDER, "never")
        assert_events_equal(store.events(SHIPMENT, "o-1"), events_for("S", 1), what="shipment")
        assert_events_equal(store.events(ORDER, "o-2"), events_for("B", 1), what="o-2")
        if self.has(Capability.INSPECT):
            views = capable(self, store, Capability.INSPECT, Inspectable)
            listed = [(s.aggregate_type, s.aggregate_id) for s in views.streams()]
            assert (ORDER, "o-1") not in listed, f"streams() lists the deleted stream: {listed}"

    @requires(Capability.DELETE_STREAMS, Capability.OUTBOX)
    def test_relays_never_get_deleted_events_they_had_not_passed(self, store: EventStore) -> None:
        """A relay that passed a stream's first events, and a relay that read nothing,
        never get the events of the stream deleted afterwards that they had not passed;
        every event of the other streams, stored before or after the deletion, reaches
        both exactly once, each stream in version order."""
        deleting = self.deleting(store)
        early = self.outbox(store, "early")
        store.add_aggregate(ORDER, "kept", events_for("K", 2))
        store.add_aggregate(ORDER, "gone", events_for("G", 2))
        passed = early.unpublished_events(3)
        early.mark_events_as_published(passed)
        store.append_events(ORDER, "gone", 2, events_for("G", 2, start=3))
        store.append_events(ORDER, "kept", 2, events_for("K", 1, start=3))
        deleting.delete_stream(ORDER, "gone")
        store.add_aggregate(ORDER, "later", events_for("L", 1))
        kept = [message_id(ORDER, "kept", v) for v in (1, 2, 3)] + [message_id(ORDER, "later", 1)]
        rest = self.unpublished(store, "early")
        got_early = [e.message_id for e in passed + rest]
        assert [m for m in got_early if "gone" not in m] == kept, got_early
        passed_gone = [e.message_id for e in passed if e.aggregate_id == "gone"]
        assert [m for m in got_early if "gone" in m] == passed_gone, (
            f"relay 'early' got deleted events it had not passed: {got_early}"
        )
        fresh = self.unpublished(store, "fresh")
        assert [e.message_id for e in fresh] == kept, "a new relay got deleted events"
        assert_order_consistent_with_versions(fresh, what="outbox after a deletion")

    @requires(Capability.DELETE_STREAMS, Capability.SNAPSHOTS, Capability.OUTBOX)
    def test_removing_the_newest_events_hides_no_later_event(self, store: EventStore) -> None:
        """A relay that passed every event, the newest of which belong to a stream that
        is then truncated and another that is then deleted, still gets every event
        appended afterwards: removing the events at the end of the outbox's order never
        lets a later event take an order key the relay has passed."""
        deleting = self.deleting(store)
        relay = self.outbox(store, "relay")
        store.add_aggregate(ORDER, "kept", events_for("K", 1))
        store.add_aggregate(ORDER, "cut", events_for("C", 3))
        store.add_snapshot(ORDER, "cut", RawSnapshot(3, b"three"))
        store.add_aggregate(ORDER, "gone", events_for("G", 2))
        relay.mark_events_as_published(relay.unpublished_events(100))
        deleting.delete_stream(ORDER, "gone")
        assert deleting.truncate_stream(ORDER, "cut") == 3
        store.append_events(ORDER, "kept", 1, events_for("K", 2, start=2))
        store.add_aggregate(ORDER, "new", events_for("N", 1))
        got = [e.message_id for e in relay.unpublished_events(100)]
        want = [message_id(ORDER, "kept", 2), message_id(ORDER, "kept", 3)]
        assert got == [*want, message_id(ORDER, "new", 1)], (
            f"after events at the end of the order were removed, the relay got {got}"
        )

    @requires(Capability.DELETE_STREAMS, Capability.SNAPSHOTS)
    def test_truncation_removes_events_up_to_the_latest_snapshot(self, store: EventStore) -> None:
        """With snapshots at versions 3 and 6 of a 10-event stream (and no relay known),
        ``truncate_stream`` removes events 1..6 and says so; reads after version 6
        (and the snapshot) are unchanged, a read from before raises
        EventsTruncatedError, appends go on, and truncating again removes nothing. A
        stream without a snapshot loses nothing."""
        deleting = self.deleting(store)
        written = events_for("E", 10)
        store.add_aggregate(ORDER, "o-1", written)
        store.add_snapshot(ORDER, "o-1", RawSnapshot(3, b"three"))
        store.add_snapshot(ORDER, "o-1", RawSnapshot(6, b"six"))
        store.add_aggregate(ORDER, "plain", events_for("P", 4))
        if self.has(Capability.OUTBOX):
            outbox = self.outbox(store, "reader")
            outbox.mark_events_as_published(self.unpublished(store, "reader"))
        assert deleting.truncate_stream(ORDER, "o-1") == 6
        assert deleting.truncate_stream(ORDER, "plain") == 0
        assert store.latest_snapshot(ORDER, "o-1") == RawSnapshot(6, b"six")
        assert_events_equal(store.events(ORDER, "o-1", 6), written[6:], what="after truncation")
        assert_events_equal(store.events(ORDER, "o-1", 8), written[8:], what="from version 8")
        for start in (0, 3, 5):
            with pytest.raises(EventsTruncatedError) as raised:
                store.events(ORDER, "o-1", start)
            assert raised.value.truncated_to == 6
        if self.has(Capability.STREAMING):
            streaming = capable(self, store, Capability.STREAMING, StreamingStore)
            found, events = streaming.load_stream(ORDER, "o-1", page_size=2)
            assert found == RawSnapshot(6, b"six")
            assert_events_equal(list(events), written[6:], what="load_stream after truncation")
            with pytest.raises(EventsTruncatedError):
                list(streaming.iter_events(ORDER, "o-1", page_size=2))
        store.append_events(ORDER, "o-1", 10, events_for("E", 1, start=11))
        assert deleting.truncate_stream(ORDER, "o-1") == 0
        assert_events_equal(store.events(ORDER, "plain"), events_for("P", 4), what="plain")
        assert store.contains_aggregate(ORDER, "o-1")

    @requires(Capability.DELETE_STREAMS, Capability.SNAPSHOTS, Capability.OUTBOX)
    def test_truncation_keeps_events_a_relay_has_not_passed(self, store: EventStore) -> None:
        """A relay that passed versions 1..3 of a stream whose latest snapshot is at 6:
        truncation removes 1..3 only, the relay then gets 4..10 exactly once and in
        order, and a read after version 3 still works."""
        deleting = self.deleting(store)
        written = events_for("E", 10)
        store.add_aggregate(ORDER, "o-1", written)
        store.add_snapshot(ORDER, "o-1", RawSnapshot(6, b"six"))
        slow = self.outbox(store, "slow")
        slow.mark_events_as_published(slow.unpublished_events(3))
        assert deleting.truncate_stream(ORDER, "o-1") == 3
        rest = self.unpublished(store, "slow")
        assert [e.version for e in rest] == list(range(4, 11))
        assert_order_consistent_with_versions(rest, what="slow relay", complete=False)
        assert_events_equal(store.events(ORDER, "o-1", 3), written[3:], what="after version 3")
        with pytest.raises(EventsTruncatedError):
            store.events(ORDER, "o-1", 2)

    @requires(Capability.DELETE_STREAMS, Capability.THREADS)
    def test_deletion_during_concurrent_appends(self, store: EventStore) -> None:
        """8 threads append to a stream while it is deleted: every append either
        succeeded before the deletion or raised StreamDeletedError (or lost a race,
        OptimisticConcurrencyError); afterwards the stream stays deleted and nothing
        of it can be read."""
        deleting = self.deleting(store)
        store.add_aggregate(ORDER, "busy", events_for("B", 1))
        started = threading.Barrier(9)
        outcomes: list[str] = []
        lock = threading.Lock()

        def role(index: int) -> None:
            started.wait()
            if index == 8:
                deleting.delete_stream(ORDER, "busy")
                return
            for n in range(20):
                try:
                    version = len(store.events(ORDER, "busy"))
                    store.append_events(ORDER, "busy", version, events_for(f"T{index}-{n}", 1))
                except (OptimisticConcurrencyError, AggregateNotFound):
                    outcome = "lost"
                except StreamDeletedError:
                    outcome = "deleted"
                else:
                    outcome = "stored"
                with lock:
                    outcomes.append(outcome)

        run_in_threads(9, role, barrier=started)
        assert not store.contains_aggregate(ORDER, "busy")
        with pytest.raises(StreamDeletedError):
            store.append_events(ORDER, "busy", 0, events_for("X", 1))
        if self.has(Capability.OUTBOX):
            left = [
                e.message_id for e in self.unpublished(store, "after") if e.aggregate_id == "busy"
            ]
            assert not left, f"a new relay gets events of the deleted stream: {left}"
