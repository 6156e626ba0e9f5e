"""Acceptance tests of the operator views (capability ``"inspect"``)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from esrc_core.capabilities import Capability
from esrc_core.errors import AggregateNotFound
from esrc_core.ids import AggregateId, encode_id
from esrc_core.inspection import (
    Inspectable,
    aggregate_types,
    count_streams,
    event_at,
    events_after,
    events_page,
    stream_page,
)
from esrc_core.retention import DeletesStreams
from esrc_core.store import EventStore

from esrc_testkit.capabilities import capable, requires
from esrc_testkit.fixtures import EVERYTHING, StoreSuite
from esrc_testkit.samples import ORDER, SHIPMENT, VALID_IDS, events_for

__all__ = ["InspectionAcceptance"]


def _check_time(value: dt.datetime | None, what: str) -> None:
    if value is not None:
        assert value.tzinfo is not None, f"{what}: {value!r} has no timezone"


class InspectionAcceptance(StoreSuite):
    """Tests of :class:`esrc_core.inspection.Inspectable`."""

    def inspect(self, store: EventStore) -> Inspectable:
        """``store`` as an :class:`Inspectable`; fails the test if it is not one."""
        return capable(self, store, Capability.INSPECT, Inspectable)

    @requires(Capability.INSPECT)
    def test_streams_lists_every_stream_with_its_version(self, store: EventStore) -> None:
        """``streams()`` lists each stream once with its version and id in its type;
        a type filter and a limit narrow it."""
        view = self.inspect(store)
        assert view.streams() == []
        for index, aggregate_id in enumerate(VALID_IDS):
            store.add_aggregate(ORDER, aggregate_id, events_for("E", index + 1))
        store.add_aggregate(SHIPMENT, "s-1", events_for("S", 2))

        listed = view.streams()
        got = {(s.aggregate_type, s.aggregate_id, type(s.aggregate_id), s.version) for s in listed}
        want = {(ORDER, i, type(i), n + 1) for n, i in enumerate(VALID_IDS)}
        want.add((SHIPMENT, "s-1", str, 2))
        assert got == want
        assert len(listed) == len(want), "a stream was listed twice"
        for info in listed:
            _check_time(info.last_recorded_at, f"stream {info.aggregate_id!r}")

        orders = view.streams(ORDER)
        assert {s.aggregate_type for s in orders} == {ORDER}
        assert len(orders) == len(VALID_IDS)
        assert len(view.streams(limit=3)) == 3

    @requires(Capability.INSPECT)
    def test_streams_are_ordered_by_type_then_encoded_id(self, store: EventStore) -> None:
        """``streams()`` orders by type, then by the ids' ``encode_id`` text by code
        point: ints before strs before UUIDs, ints as text; ``limit`` takes the first."""
        ids: list[AggregateId] = [uuid.UUID(int=7), "b", "B", 10, 9, -1, "10"]
        for aggregate_id in ids:
            store.add_aggregate(ORDER, aggregate_id, events_for("E", 1))
        store.add_aggregate(SHIPMENT, 1, events_for("S", 1))
        store.add_aggregate("Invoice", "z", events_for("I", 1))

        listed = [(s.aggregate_type, s.aggregate_id) for s in self.inspect(store).streams()]
        want = sorted(
            [(ORDER, i) for i in ids] + [(SHIPMENT, 1), ("Invoice", "z")],
            key=lambda key: (key[0], encode_id(key[1])),
        )
        assert listed == want, f"got {listed}, want {want}"
        first = [s.aggregate_id for s in self.inspect(store).streams(ORDER, limit=3)]
        assert first == [i for kind, i in want if kind == ORDER][:3]

    @requires(Capability.INSPECT)
    def test_recorded_events_match_the_stream(self, store: EventStore) -> None:
        """``recorded_events`` returns the stream's events with versions, unique
        positions and times, from a version on; a missing stream raises."""
        view = self.inspect(store)
        store.add_aggregate(ORDER, "o-1", events_for("A", 2))
        store.add_aggregate(ORDER, "o-2", events_for("B", 1))
        store.append_events(ORDER, "o-1", 2, events_for("A", 2, start=3))

        recorded = view.recorded_events(ORDER, "o-1")
        assert [r.version for r in recorded] == [1, 2, 3, 4]
        assert [r.event for r in recorded] == store.events(ORDER, "o-1")
        assert {(r.aggregate_type, r.aggregate_id) for r in recorded} == {(ORDER, "o-1")}
        positions = [r.position for r in recorded]
        assert len(set(positions)) == 4, f"positions are not unique: {positions}"
        for r in recorded:
            _check_time(r.recorded_at, f"event version {r.version}")
        assert [r.version for r in view.recorded_events(ORDER, "o-1", 2)] == [3, 4]
        with pytest.raises(AggregateNotFound):
            view.recorded_events(ORDER, "missing")

    @requires(Capability.INSPECT, Capability.OUTBOX)
    def test_recorded_positions_are_the_outbox_positions(self, store: EventStore) -> None:
        """The positions ``recorded_events`` shows are those the outbox relays."""
        view = self.inspect(store)
        store.add_aggregate(ORDER, "o-1", events_for("A", 3))
        relayed = {(e.version, e.position) for e in self.unpublished(store)}
        assert {(r.version, r.position) for r in view.recorded_events(ORDER, "o-1")} == relayed

    @requires(Capability.INSPECT, Capability.OUTBOX)
    def test_relays_show_published_and_pending(self, store: EventStore) -> None:
        """``relays()`` lists each relay that marked progress with its counts."""
        view = self.inspect(store)
        store.add_aggregate(ORDER, "o-1", events_for("A", 5))
        outbox = self.outbox(store, "projections")
        outbox.mark_events_as_published(outbox.unpublished_events(2))

        progress = {p.name: p for p in view.relays()}
        assert set(progress) == {"projections"}
        assert (progress["projections"].published, progress["projections"].pending) == (2, 3)
        _check_time(progress["projections"].oldest_pending_at, "oldest pending")

        outbox.mark_events_as_published(outbox.unpublished_events(EVERYTHING))
        done = {p.name: p for p in view.relays()}["projections"]
        assert (done.published, done.pending, done.oldest_pending_at) == (5, 0, None)

    @requires(Capability.INSPECT, Capability.OUTBOX)
    def test_copy_and_forget_relay(self, store: EventStore) -> None:
        """``copy_relay`` starts a name where another stands; ``forget_relay`` sends a
        name back to the first event and removes it from ``relays()``."""
        view = self.inspect(store)
        store.add_aggregate(ORDER, "o-1", events_for("A", 4))
        source = self.outbox(store, "source")
        source.mark_events_as_published(source.unpublished_events(3))

        view.copy_relay("source", "reader")
        assert self.unpublished(store, "reader") == self.unpublished(store, "source")

        view.copy_relay("never-marked", "reader")
        assert len(self.unpublished(store, "reader")) == 4

        view.forget_relay("source")
        view.forget_relay("unknown-name")
        assert "source" not in {p.name for p in view.relays()}
        assert len(self.unpublished(store, "source")) == 4

    def _mixed_streams(self, store: EventStore) -> None:
        ids: list[AggregateId] = [uuid.UUID(int=7), "b1", "B", 10, 9, -1, "10", "a/b c"]
        for n, aggregate_id in enumerate(ids):
            store.add_aggregate(ORDER, aggregate_id, events_for("E", 1 + n % 3))
        store.add_aggregate(SHIPMENT, 1, events_for("S", 2))
        store.add_aggregate("Invoice", "z1", events_for("I", 1))

    @requires(Capability.INSPECT)
    def test_stream_pages_follow_the_streams_order(self, store: EventStore) -> None:
        """Pages of streams (:func:`~esrc_core.inspection.stream_page`, a store's
        ``PagedInspectable.stream_page`` when it offers one) walked with the last
        key as cursor give exactly ``streams()``, filtered by type and by id text,
        and :func:`~esrc_core.inspection.count_streams` counts them."""
        view = self.inspect(store)
        assert stream_page(view) == []
        assert count_streams(view) == 0
        assert aggregate_types(view) == []
        self._mixed_streams(store)
        every = view.streams()
        assert aggregate_types(view) == sorted({s.aggregate_type for s in every})
        for of_type in (None, ORDER, "Nothing"):
            for search in (None, "1", "u:", "b", "/b c", "no such id"):
                want = [
                    s
                    for s in every
                    if of_type in (None, s.aggregate_type)
                    and (search is None or search in encode_id(s.aggregate_id))
                ]
                got = []
                after = None
                while True:
                    page = stream_page(view, of_type, search, after, 2)
                    assert len(page) <= 2
                    got += page
                    if len(page) < 2:
                        break
                    after = (page[-1].aggregate_type, encode_id(page[-1].aggregate_id))
                shown = [(s.aggregate_type, s.aggregate_id) for s in got]
                assert got == want, f"type {of_type!r}, search {search!r}: got {shown}"
                assert count_streams(view, of_type, search) == len(want), (of_type, search)

    @requires(Capability.INSPECT)
    def test_events_by_position_and_by_page(self, store: EventStore) -> None:
        """:func:`~esrc_core.inspection.event_at` finds each event by its position,
        :func:`~esrc_core.inspection.events_page` pages a stream by version and
        :func:`~esrc_core.inspection.events_after` reads on from a position, all
        equal to what ``recorded_events`` shows; a missing position is ``None`` and a
        missing stream raises."""
        view = self.inspect(store)
        self._mixed_streams(store)
        store.append_events(ORDER, 10, 1, events_for("E", 4, start=2))
        every = sorted(
            (
                e
                for s in view.streams()
                for e in view.recorded_events(s.aggregate_type, s.aggregate_id)
            ),
            key=lambda e: e.position,
        )
        for event in every:
            assert event_at(view, event.position) == event
        assert event_at(view, every[-1].position + 1000) is None
        stream = view.recorded_events(ORDER, 10)
        assert events_page(view, ORDER, 10, 0, 2) == stream[:2]
        assert events_page(view, ORDER, 10, 2, 2) == stream[2:4]
        assert events_page(view, ORDER, 10, 4, 100) == stream[4:]
        assert events_page(view, ORDER, 10, len(stream), 10) == []
        with pytest.raises(AggregateNotFound):
            events_page(view, ORDER, "missing", 0, 10)
        start = every[2].position
        assert events_after(view, start, 3) == every[3:6]
        assert events_after(view, every[-1].position, 3) == []

    @requires(Capability.INSPECT, Capability.DELETE_STREAMS)
    def test_deleted_streams_are_not_paged_counted_or_read(self, store: EventStore) -> None:
        """A deleted stream is in no page of streams, no count and no type list, and
        its events are found neither by position nor by page."""
        view = self.inspect(store)
        store.add_aggregate(ORDER, "kept", events_for("K", 1))
        store.add_aggregate(SHIPMENT, "gone", events_for("G", 2))
        gone = view.recorded_events(SHIPMENT, "gone")
        capable(self, store, Capability.DELETE_STREAMS, DeletesStreams).delete_stream(
            SHIPMENT, "gone"
        )
        assert [s.aggregate_id for s in stream_page(view)] == ["kept"]
        assert stream_page(view, SHIPMENT) == []
        assert count_streams(view) == 1
        assert count_streams(view, SHIPMENT) == 0
        assert aggregate_types(view) == [ORDER]
        assert [event_at(view, e.position) for e in gone] == [None, None]
        with pytest.raises(AggregateNotFound):
            events_page(view, SHIPMENT, "gone", 0, 10)
