"""Acceptance tests of reading streams page by page (capability ``"streaming"``,
:class:`~esrc_core.store.StreamingStore`): ``iter_events`` and ``load_stream``."""

from __future__ import annotations

from typing import Any

import pytest
from esrc_core.capabilities import Capability
from esrc_core.errors import AggregateNotFound, OutOfRangeError
from esrc_core.events import RawSnapshot
from esrc_core.store import INT64_MAX, INT64_MIN, EventStore, StreamingStore

from esrc_testkit.capabilities import capable, requires
from esrc_testkit.checks import assert_events_equal
from esrc_testkit.fixtures import StoreSuite
from esrc_testkit.samples import AWKWARD_EVENTS, ORDER, SHIPMENT, VALID_IDS, events_for

__all__ = ["StreamingAcceptance"]


class StreamingAcceptance(StoreSuite):
    """Tests of :meth:`~esrc_core.store.StreamingStore.iter_events` and
    :meth:`~esrc_core.store.StreamingStore.load_stream`: the same events as
    ``events()``, in order, across page boundaries, from any version, with errors
    raised when called."""

    def streaming(self, store: EventStore) -> StreamingStore:
        """``store`` as a :class:`StreamingStore`; fails the test if it is not one."""
        return capable(self, store, Capability.STREAMING, StreamingStore)

    @requires(Capability.STREAMING)
    def test_iter_events_reads_every_event_in_order_across_pages(self, store: EventStore) -> None:
        """For streams of 1, 3, 6 and 7 events read with pages of 1, 3, 4 and the
        default size, ``iter_events`` yields exactly what ``events()`` returns: pages
        that end on the last event, one short of it and past it lose and repeat
        nothing."""
        streaming = self.streaming(store)
        for length in (1, 3, 6, 7):
            aggregate_id = f"order-{length}"
            written = events_for(f"L{length}", length)
            store.add_aggregate(ORDER, aggregate_id, written)
            for page_size in (1, 3, 4, None):
                assert_events_equal(
                    list(streaming.iter_events(ORDER, aggregate_id, page_size=page_size)),
                    written,
                    what=f"iter_events of {length} events with pages of {page_size}",
                )

    @requires(Capability.STREAMING)
    def test_iter_events_starts_after_from_version(self, store: EventStore) -> None:
        """``iter_events(..., from_version=k)`` yields the events after version k, as
        ``events(..., k)`` does; at or past the stream's version it yields nothing."""
        streaming = self.streaming(store)
        written = events_for("E", 10)
        store.add_aggregate(ORDER, "order-1", written)
        for from_version in (0, 1, 3, 6, 9, 10, 12):
            assert_events_equal(
                list(streaming.iter_events(ORDER, "order-1", from_version, page_size=3)),
                written[from_version:],
                what=f"iter_events from version {from_version}",
            )

    @requires(Capability.STREAMING)
    def test_iter_events_returns_exactly_what_was_appended(self, store: EventStore) -> None:
        """Names, bytes and metadata come back unchanged through pages of 2, for ids of
        every type, and streams of another type stay apart."""
        streaming = self.streaming(store)
        for aggregate_id in VALID_IDS:
            store.add_aggregate(ORDER, aggregate_id, AWKWARD_EVENTS)
            store.add_aggregate(SHIPMENT, aggregate_id, events_for("Shipped", 3))
        for aggregate_id in VALID_IDS:
            assert_events_equal(
                list(streaming.iter_events(ORDER, aggregate_id, page_size=2)),
                AWKWARD_EVENTS,
                what=f"iter_events {ORDER} {aggregate_id!r}",
            )

    @requires(Capability.STREAMING)
    def test_missing_stream_raises_when_called(self, store: EventStore) -> None:
        """``iter_events`` and ``load_stream`` of a stream that does not exist raise
        AggregateNotFound from the call itself, before any iterator is returned."""
        streaming = self.streaming(store)
        store.add_aggregate(SHIPMENT, "order-1", events_for("Other", 2))
        for aggregate_id in VALID_IDS:
            with pytest.raises(AggregateNotFound):
                streaming.iter_events(ORDER, aggregate_id)
            with pytest.raises(AggregateNotFound):
                streaming.iter_events(ORDER, aggregate_id, 3, page_size=1)
            for snapshot in (True, False):
                with pytest.raises(AggregateNotFound):
                    streaming.load_stream(ORDER, aggregate_id, snapshot=snapshot)

    @requires(Capability.STREAMING)
    def test_invalid_page_size_is_refused(self, store: EventStore) -> None:
        """A page size that is not a positive int raises TypeError or ValueError."""
        streaming = self.streaming(store)
        store.add_aggregate(ORDER, "order-1", events_for("E", 2))
        bad: list[Any] = [0, -1, True, "3", 2.0]
        for page_size in bad:
            with pytest.raises((TypeError, ValueError)):
                streaming.iter_events(ORDER, "order-1", page_size=page_size)
            with pytest.raises((TypeError, ValueError)):
                streaming.load_stream(ORDER, "order-1", page_size=page_size)

    @requires(Capability.STREAMING)
    def test_out_of_range_page_size_or_start_is_refused(self, store: EventStore) -> None:
        """A page size or start version beyond a signed 64-bit integer raises
        OutOfRangeError when called, as ``events`` does; the largest page size reads
        the stream in one page."""
        streaming = self.streaming(store)
        store.add_aggregate(ORDER, "order-1", events_for("E", 2))
        for page_size in (INT64_MAX + 1, 2**64):
            with pytest.raises(OutOfRangeError):
                streaming.iter_events(ORDER, "order-1", page_size=page_size)
            with pytest.raises(OutOfRangeError):
                streaming.load_stream(ORDER, "order-1", page_size=page_size)
        for start in (INT64_MAX + 1, INT64_MIN - 1):
            with pytest.raises(OutOfRangeError):
                streaming.iter_events(ORDER, "order-1", start)
        assert_events_equal(
            list(streaming.iter_events(ORDER, "order-1", page_size=INT64_MAX)),
            events_for("E", 2),
            what="one page of the largest size",
        )

    @requires(Capability.STREAMING)
    def test_appends_during_iteration_do_not_disturb_it(self, store: EventStore) -> None:
        """Events appended while a stream is being read with pages of 3 are not
        yielded by that read, which yields the stream as it was when called, each
        event once; a read begun afterwards sees them."""
        streaming = self.streaming(store)
        written = events_for("Early", 7)
        store.add_aggregate(ORDER, "order-1", written)
        reading = streaming.iter_events(ORDER, "order-1", page_size=3)
        got = [next(reading) for _ in range(4)]
        late = events_for("Late", 3)
        store.append_events(ORDER, "order-1", 7, late)
        got.extend(reading)
        assert_events_equal(got, written, what="read while appending")
        assert_events_equal(
            list(streaming.iter_events(ORDER, "order-1", page_size=3)),
            written + late,
            what="read after the append",
        )

    @requires(Capability.STREAMING)
    def test_load_stream_without_snapshots_reads_every_event(self, store: EventStore) -> None:
        """Without a snapshot (none taken, or ``snapshot=False``) ``load_stream`` gives
        ``None`` and every event, across pages."""
        streaming = self.streaming(store)
        written = events_for("E", 7)
        store.add_aggregate(ORDER, "order-1", written)
        for snapshot in (True, False):
            for page_size in (3, None):
                found, events = streaming.load_stream(
                    ORDER, "order-1", snapshot=snapshot, page_size=page_size
                )
                what = f"load_stream(snapshot={snapshot}, page_size={page_size})"
                assert found is None, f"{what}: got snapshot {found!r}, want None"
                assert_events_equal(list(events), written, what=what)

    @requires(Capability.STREAMING, Capability.SNAPSHOTS)
    def test_load_stream_gives_the_latest_snapshot_and_the_events_after_it(
        self, store: EventStore
    ) -> None:
        """With snapshots at versions 3 and 5 of a 9-event stream, ``load_stream``
        gives the one at 5 and events 6..9 (through pages of 1, 2 and the default);
        with one at the last version, no events; with ``snapshot=False``, no snapshot
        and every event."""
        streaming = self.streaming(store)
        written = events_for("E", 9)
        store.add_aggregate(ORDER, "order-1", written)
        store.add_snapshot(ORDER, "order-1", RawSnapshot(5, b"five"))
        store.add_snapshot(ORDER, "order-1", RawSnapshot(3, b"three"))
        for page_size in (1, 2, None):
            found, events = streaming.load_stream(ORDER, "order-1", page_size=page_size)
            what = f"load_stream with pages of {page_size}"
            assert found == RawSnapshot(5, b"five"), f"{what}: got {found!r}, want version 5"
            assert type(found.data) is bytes, f"{what}: data is {type(found.data).__name__}"
            assert_events_equal(list(events), written[5:], what=what)
        found, events = streaming.load_stream(ORDER, "order-1", snapshot=False, page_size=4)
        assert found is None, f"snapshot=False: got {found!r}, want None"
        assert_events_equal(list(events), written, what="load_stream(snapshot=False)")

        store.add_snapshot(ORDER, "order-1", RawSnapshot(9, b"nine"))
        found, events = streaming.load_stream(ORDER, "order-1", page_size=2)
        assert found == RawSnapshot(9, b"nine"), f"at the last version: got {found!r}"
        assert_events_equal(list(events), [], what="events after a snapshot at the end")
