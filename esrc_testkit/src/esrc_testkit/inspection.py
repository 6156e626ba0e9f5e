"""Acceptance tests of the operator views (capability ``"inspect"``)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from esrc_core.capabilities import Capability
from esrc_core.errors import AggregateNotFound
from esrc_core.ids import AggregateId, encode_id
from esrc_core.inspection import Inspectable
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
