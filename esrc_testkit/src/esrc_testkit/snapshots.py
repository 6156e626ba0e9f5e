"""Acceptance tests of snapshots (capability ``"snapshots"``)."""

from __future__ import annotations

import pytest
from esrc_core.capabilities import Capability
from esrc_core.errors import AggregateNotFound, NotSupportedError, SnapshotVersionError
from esrc_core.events import RawSnapshot
from esrc_core.ids import AggregateId
from esrc_core.store import EventStore, StreamingStore

from esrc_testkit.capabilities import requires
from esrc_testkit.fixtures import StoreSuite
from esrc_testkit.samples import ORDER, SHIPMENT, VALID_IDS, events_for

__all__ = ["SnapshotAcceptance"]


def _assert_snapshot(got: RawSnapshot | None, want: RawSnapshot | None, *, what: str) -> None:
    if want is None:
        assert got is None, f"{what}: got {got!r}, want None"
        return
    assert isinstance(got, RawSnapshot), f"{what}: got {got!r}, want {want!r}"
    assert type(got.data) is bytes, f"{what}: data has type {type(got.data).__name__}"
    assert (got.version, got.data, got.schema_version) == (
        want.version,
        want.data,
        want.schema_version,
    ), f"{what}: got {got!r}, want {want!r}"


class SnapshotAcceptance(StoreSuite):
    """Tests of ``add_snapshot`` and ``latest_snapshot``."""

    @requires(Capability.SNAPSHOTS)
    def test_snapshot_of_missing_aggregate_raises_not_found(self, store: EventStore) -> None:
        """Adding a snapshot to a stream that does not exist raises AggregateNotFound."""
        with pytest.raises(AggregateNotFound):
            store.add_snapshot(ORDER, "order-1", RawSnapshot(1, b"state"))
        assert store.contains_aggregate(ORDER, "order-1") is False

    @requires(Capability.SNAPSHOTS)
    def test_snapshot_version_outside_the_stream_raises(self, store: EventStore) -> None:
        """A snapshot version above the stream's version, or below 1, raises
        SnapshotVersionError and stores nothing."""
        store.add_aggregate(ORDER, "order-1", events_for("E", 3))
        for version in (4, 10, 0, -1):
            with pytest.raises(SnapshotVersionError):
                store.add_snapshot(ORDER, "order-1", RawSnapshot(version, b"state"))
        _assert_snapshot(store.latest_snapshot(ORDER, "order-1"), None, what="after bad versions")

    @requires(Capability.SNAPSHOTS)
    def test_latest_snapshot_is_none_without_snapshots(self, store: EventStore) -> None:
        """``latest_snapshot`` is None for a missing stream and for one without snapshots."""
        _assert_snapshot(store.latest_snapshot(ORDER, "order-1"), None, what="missing stream")
        store.add_aggregate(ORDER, "order-1", events_for("E", 2))
        _assert_snapshot(store.latest_snapshot(ORDER, "order-1"), None, what="no snapshots")

    @requires(Capability.SNAPSHOTS)
    def test_latest_snapshot_has_the_highest_version(self, store: EventStore) -> None:
        """The latest snapshot is the one with the highest version, whatever the order
        they were added in (2 then 1: still 2)."""
        store.add_aggregate(ORDER, "order-1", events_for("E", 3))
        store.add_snapshot(ORDER, "order-1", RawSnapshot(2, b"two"))
        store.add_snapshot(ORDER, "order-1", RawSnapshot(1, b"one"))
        _assert_snapshot(
            store.latest_snapshot(ORDER, "order-1"), RawSnapshot(2, b"two"), what="2 then 1"
        )
        store.add_snapshot(ORDER, "order-1", RawSnapshot(3, b"three"))
        _assert_snapshot(
            store.latest_snapshot(ORDER, "order-1"), RawSnapshot(3, b"three"), what="then 3"
        )

    @requires(Capability.SNAPSHOTS)
    def test_snapshot_at_the_same_version_replaces(self, store: EventStore) -> None:
        """A second snapshot at the same version replaces the first."""
        store.add_aggregate(ORDER, "order-1", events_for("E", 2))
        store.add_snapshot(ORDER, "order-1", RawSnapshot(2, b"first"))
        store.add_snapshot(ORDER, "order-1", RawSnapshot(2, b"second"))
        _assert_snapshot(
            store.latest_snapshot(ORDER, "order-1"), RawSnapshot(2, b"second"), what="replaced"
        )

    @requires(Capability.SNAPSHOTS)
    def test_snapshot_data_round_trips(self, store: EventStore) -> None:
        """Snapshot bytes come back unchanged (non-UTF-8, NUL, empty), for every id type."""
        payloads = [b"\xff\x00\xfe binary \x00", b"", bytes(range(256)) * 256]
        for index, aggregate_id in enumerate(VALID_IDS):
            data = payloads[index % len(payloads)]
            store.add_aggregate(ORDER, aggregate_id, events_for("E", 1))
            store.add_snapshot(ORDER, aggregate_id, RawSnapshot(1, data))
            _assert_snapshot(
                store.latest_snapshot(ORDER, aggregate_id),
                RawSnapshot(1, data),
                what=f"snapshot of {aggregate_id!r}",
            )

    @requires(Capability.SNAPSHOTS)
    def test_snapshot_schema_versions_round_trip(self, store: EventStore) -> None:
        """A snapshot's schema version comes back as it was added, also when a snapshot
        at the same version is replaced by one of another schema version, and through
        ``load_stream`` on a streaming store. A store that keeps version 1 only must
        refuse any other with :class:`~esrc_core.errors.NotSupportedError`, never
        return it as version 1 (the repository would take it for the current form)."""
        store.add_aggregate(ORDER, "schemas", events_for("E", 3))
        try:
            store.add_snapshot(ORDER, "schemas", RawSnapshot(2, b"two", 3))
        except NotSupportedError:
            assert store.latest_snapshot(ORDER, "schemas") is None, (
                "a snapshot refused for its schema version was stored"
            )
            return
        _assert_snapshot(
            store.latest_snapshot(ORDER, "schemas"), RawSnapshot(2, b"two", 3), what="added"
        )
        store.add_snapshot(ORDER, "schemas", RawSnapshot(2, b"again", 2))
        want = RawSnapshot(2, b"again", 2)
        _assert_snapshot(store.latest_snapshot(ORDER, "schemas"), want, what="replaced")
        if isinstance(store, StreamingStore):
            found, events = store.load_stream(ORDER, "schemas")
            _assert_snapshot(found, want, what="load_stream")
            assert [e.data for e in events] == [b"E:3"], "load_stream's events after the snapshot"

    @requires(Capability.SNAPSHOTS)
    def test_snapshots_belong_to_one_stream(self, store: EventStore) -> None:
        """A snapshot belongs to its (type, id): other types and ``"42"`` vs ``42`` do
        not see it."""
        streams: list[tuple[str, AggregateId]] = [(ORDER, 42), (ORDER, "42"), (SHIPMENT, 42)]
        for aggregate_type, aggregate_id in streams:
            store.add_aggregate(aggregate_type, aggregate_id, events_for("E", 2))
        store.add_snapshot(ORDER, 42, RawSnapshot(2, b"int"))
        _assert_snapshot(store.latest_snapshot(ORDER, 42), RawSnapshot(2, b"int"), what="42")
        _assert_snapshot(store.latest_snapshot(ORDER, "42"), None, what='"42"')
        _assert_snapshot(store.latest_snapshot(SHIPMENT, 42), None, what="Shipment 42")

    @requires(Capability.SNAPSHOTS)
    def test_snapshots_of_42_and_str_42_stay_apart(self, store: EventStore) -> None:
        """The streams ``42`` and ``"42"`` of one type each keep their own latest
        snapshot while both are snapshotted, in turn, at versions higher and lower than
        the other's (a store keying snapshots by ``str(id)`` mixes them up)."""
        store.add_aggregate(ORDER, 42, events_for("E", 3))
        store.add_aggregate(ORDER, "42", events_for("E", 3))
        steps: list[tuple[AggregateId, RawSnapshot]] = [
            ("42", RawSnapshot(1, b"str 1")),
            (42, RawSnapshot(2, b"int 2")),
            ("42", RawSnapshot(3, b"str 3")),
            (42, RawSnapshot(2, b"int 2 again")),
        ]
        latest: dict[AggregateId, RawSnapshot | None] = {42: None, "42": None}
        for aggregate_id, snapshot in steps:
            store.add_snapshot(ORDER, aggregate_id, snapshot)
            latest[aggregate_id] = snapshot
            for other in (42, "42"):
                _assert_snapshot(
                    store.latest_snapshot(ORDER, other),
                    latest[other],
                    what=f"{other!r} after snapshotting {aggregate_id!r} at {snapshot.version}",
                )

    @requires(Capability.SNAPSHOTS)
    def test_snapshot_does_not_change_the_stream(self, store: EventStore) -> None:
        """Adding a snapshot leaves the stream's events and version alone."""
        store.add_aggregate(ORDER, "order-1", events_for("E", 2))
        store.add_snapshot(ORDER, "order-1", RawSnapshot(2, b"state"))
        store.append_events(ORDER, "order-1", 2, events_for("E", 1, start=3))
        assert len(store.events(ORDER, "order-1")) == 3

    @requires(Capability.SNAPSHOTS, Capability.PERSISTENT)
    def test_snapshots_survive_reopen(self, store: EventStore) -> None:
        """The latest snapshot is the same after closing and reopening the store."""
        store.add_aggregate(ORDER, "order-1", events_for("E", 2))
        store.add_snapshot(ORDER, "order-1", RawSnapshot(2, b"\x00state"))
        store.close()
        reopened = self.reopen(store)
        try:
            _assert_snapshot(
                reopened.latest_snapshot(ORDER, "order-1"),
                RawSnapshot(2, b"\x00state"),
                what="after reopen",
            )
        finally:
            reopened.close()
