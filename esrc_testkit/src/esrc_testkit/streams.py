"""Acceptance tests of streams: adding, appending and reading events, optimistic
concurrency, atomicity of failed appends, and id handling
(see "What the testkit proves" in docs/internals.md)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from esrc_core.capabilities import Capability
from esrc_core.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    AggregateRequiresEvents,
    InvalidAggregateIdError,
    InvalidEventError,
    NotSupportedError,
    OptimisticConcurrencyError,
    OutOfRangeError,
    SnapshotVersionError,
    StoreClosedError,
)
from esrc_core.events import RawEvent, RawSnapshot
from esrc_core.ids import AggregateId
from esrc_core.store import INT64_MAX, INT64_MIN, EventStore

from esrc_testkit.capabilities import requires
from esrc_testkit.checks import assert_events_equal
from esrc_testkit.fixtures import StoreFactory, StoreSuite
from esrc_testkit.samples import (
    AWKWARD_EVENTS,
    INVALID_IDS,
    ORDER,
    SHIPMENT,
    VALID_IDS,
    events_for,
    malformed_events,
)

__all__ = ["StreamAcceptance"]


class StreamAcceptance(StoreSuite):
    """Tests every store must pass: the core of the :class:`~esrc_core.store.EventStore`
    contract."""

    # -- an empty store ----------------------------------------------------------------

    def test_missing_aggregate_cannot_be_read(self, store: EventStore) -> None:
        """Reading a stream that was never added raises AggregateNotFound."""
        for aggregate_id in VALID_IDS:
            with pytest.raises(AggregateNotFound):
                store.events(ORDER, aggregate_id)
            with pytest.raises(AggregateNotFound):
                store.events(ORDER, aggregate_id, 1)

    def test_missing_aggregate_is_not_contained(self, store: EventStore) -> None:
        """``contains_aggregate`` is false for a stream that was never added."""
        for aggregate_id in VALID_IDS:
            assert store.contains_aggregate(ORDER, aggregate_id) is False, aggregate_id

    def test_add_without_events_raises_and_creates_nothing(self, store: EventStore) -> None:
        """Adding an aggregate with no events raises AggregateRequiresEvents."""
        with pytest.raises(AggregateRequiresEvents):
            store.add_aggregate(ORDER, "order-1", [])
        assert store.contains_aggregate(ORDER, "order-1") is False
        assert self.unpublished_if_outbox(store) == []

    def test_append_to_missing_aggregate_raises_concurrency_error(self, store: EventStore) -> None:
        """Appending to a stream that does not exist raises OptimisticConcurrencyError,
        whatever the expected version, and creates nothing."""
        for version in (0, 1, 5):
            with pytest.raises(OptimisticConcurrencyError):
                store.append_events(ORDER, "order-1", version, events_for("Late", 2))
        assert store.contains_aggregate(ORDER, "order-1") is False
        assert self.unpublished_if_outbox(store) == []

    # -- adding and reading ------------------------------------------------------------

    def test_add_then_read_returns_exactly_the_events(self, store: EventStore) -> None:
        """A read returns the added events unchanged: names, bytes (non-UTF-8, NUL and
        empty too) and metadata (empty and unicode too), for ids of every type."""
        for aggregate_id in VALID_IDS:
            store.add_aggregate(ORDER, aggregate_id, AWKWARD_EVENTS)
        for aggregate_id in VALID_IDS:
            assert store.contains_aggregate(ORDER, aggregate_id) is True, aggregate_id
            assert_events_equal(
                store.events(ORDER, aggregate_id),
                AWKWARD_EVENTS,
                what=f"read {ORDER} {aggregate_id!r}",
            )

    def test_append_then_read_returns_exactly_the_events(self, store: EventStore) -> None:
        """Appended events come back unchanged too, several at once and one by one:
        the bytes of an append are not read as text on the way (non-UTF-8, NUL and
        empty payloads side by side)."""
        first = RawEvent("Opened", b"\x00")
        store.add_aggregate(ORDER, "awkward", [first])
        store.append_events(ORDER, "awkward", 1, AWKWARD_EVENTS)
        version = 1 + len(AWKWARD_EVENTS)
        for event in AWKWARD_EVENTS:
            store.append_events(ORDER, "awkward", version, [event])
            version += 1
        assert_events_equal(
            store.events(ORDER, "awkward"),
            [first, *AWKWARD_EVENTS, *AWKWARD_EVENTS],
            what=f"read {ORDER} 'awkward'",
        )

    def test_large_payload_round_trips(self, store: EventStore) -> None:
        """Event data of 256 KiB and a 10 000 character metadata value come back intact."""
        data = bytes(range(256)) * 1024
        big = RawEvent("Uploaded", data, {"comment": "ü" * 10_000})
        store.add_aggregate(ORDER, "big", [big])
        store.append_events(ORDER, "big", 1, [big])
        assert_events_equal(store.events(ORDER, "big"), [big, big], what="read a large stream")

    def test_schema_versions_round_trip(self, store: EventStore) -> None:
        """Each event's schema version comes back as it was appended (added and
        appended alike). A store that keeps version 1 only must refuse any other with
        :class:`~esrc_core.errors.NotSupportedError` and write nothing, never return
        it as version 1 (the registry would upcast it again)."""
        added = [RawEvent("Placed", b"{}", {}, 1), RawEvent("Placed", b"{}", {}, 3)]
        appended = RawEvent("Placed", b"{}", {}, 2)
        try:
            store.add_aggregate(ORDER, "versions", added)
        except NotSupportedError:
            assert not store.contains_aggregate(ORDER, "versions"), (
                "an add refused for its schema versions created the stream"
            )
            return
        store.append_events(ORDER, "versions", 2, [appended])
        assert_events_equal(
            store.events(ORDER, "versions"),
            [*added, appended],
            what=f"read {ORDER} 'versions' (schema versions 1, 3, 2)",
        )

    def test_add_existing_aggregate_raises_already_exists(self, store: EventStore) -> None:
        """Adding a stream that exists raises AggregateAlreadyExists and changes nothing."""
        first = events_for("First", 2)
        store.add_aggregate(ORDER, "order-1", first)
        with pytest.raises(AggregateAlreadyExists):
            store.add_aggregate(ORDER, "order-1", events_for("Second", 3))
        assert_events_equal(store.events(ORDER, "order-1"), first, what="stream after re-add")
        assert len(self.unpublished_if_outbox(store)) == (2 if self.has(Capability.OUTBOX) else 0)

    def test_same_id_under_another_type_is_another_stream(self, store: EventStore) -> None:
        """(type, id) keys a stream: one id under two types gives two streams."""
        orders, shipments = events_for("Order", 2), events_for("Shipment", 3)
        store.add_aggregate(ORDER, "x-1", orders)
        assert store.contains_aggregate(SHIPMENT, "x-1") is False
        store.add_aggregate(SHIPMENT, "x-1", shipments)
        assert_events_equal(store.events(ORDER, "x-1"), orders, what="Order x-1")
        assert_events_equal(store.events(SHIPMENT, "x-1"), shipments, what="Shipment x-1")
        store.append_events(SHIPMENT, "x-1", 3, events_for("More", 1))
        assert_events_equal(store.events(ORDER, "x-1"), orders, what="Order x-1 after append")

    def test_int_and_str_ids_are_different_streams(self, store: EventStore) -> None:
        """``42`` and ``"42"`` (and a UUID and its text) are different streams."""
        uid = uuid.UUID("0b4f8a52-8f0e-4d3c-9a51-0f2a2b7b6c11")
        pairs: list[tuple[AggregateId, AggregateId]] = [(42, "42"), (uid, str(uid)), (0, "0")]
        for typed, text in pairs:
            typed_events, text_events = events_for(f"T{typed}", 1), events_for(f"S{text}", 2)
            store.add_aggregate(ORDER, typed, typed_events)
            assert store.contains_aggregate(ORDER, text) is False, f"{text!r} after {typed!r}"
            store.add_aggregate(ORDER, text, text_events)
            assert_events_equal(store.events(ORDER, typed), typed_events, what=repr(typed))
            assert_events_equal(store.events(ORDER, text), text_events, what=repr(text))

    # -- appending ---------------------------------------------------------------------

    def test_append_at_current_version_succeeds(self, store: EventStore) -> None:
        """Appends at the stream's version extend it; versions count every event."""
        written = events_for("E", 1)
        store.add_aggregate(ORDER, "order-1", written)
        for batch in (events_for("E", 1, start=2), events_for("E", 3, start=3)):
            store.append_events(ORDER, "order-1", len(written), batch)
            written += batch
            assert_events_equal(store.events(ORDER, "order-1"), written, what="after append")

    def test_append_at_stale_version_raises_and_changes_nothing(self, store: EventStore) -> None:
        """Appending again at a version the stream has moved past raises
        OptimisticConcurrencyError and stores none of the batch."""
        store.add_aggregate(ORDER, "order-1", events_for("E", 2))
        store.append_events(ORDER, "order-1", 2, events_for("Winner", 1))
        expected = [*events_for("E", 2), *events_for("Winner", 1)]
        for stale in (2, 1, 0):
            with pytest.raises(OptimisticConcurrencyError):
                store.append_events(ORDER, "order-1", stale, events_for("Loser", 3))
        assert_events_equal(store.events(ORDER, "order-1"), expected, what="after stale appends")
        assert len(self.unpublished_if_outbox(store)) == (3 if self.has(Capability.OUTBOX) else 0)
        store.append_events(ORDER, "order-1", 3, events_for("Next", 1))

    def test_append_ahead_of_the_stream_raises(self, store: EventStore) -> None:
        """Appending at a version the stream has not reached raises
        OptimisticConcurrencyError and stores nothing."""
        store.add_aggregate(ORDER, "order-1", events_for("E", 2))
        for ahead in (3, 4, 100):
            with pytest.raises(OptimisticConcurrencyError):
                store.append_events(ORDER, "order-1", ahead, events_for("Ahead", 1))
        assert_events_equal(store.events(ORDER, "order-1"), events_for("E", 2), what="stream")

    def test_out_of_range_versions_are_refused(self, store: EventStore) -> None:
        """An expected version below 0, or one the append would take beyond a signed
        64-bit integer, and a read's ``from_version`` outside that range, raise
        OutOfRangeError (a ValueError) before anything is read or written; a snapshot at
        a version no stream reaches raises SnapshotVersionError. Values just inside the
        range behave as any version the stream has not reached."""
        store.add_aggregate(ORDER, "order-1", events_for("E", 2))
        for expected in (-1, INT64_MIN, INT64_MAX, INT64_MAX + 1, 2**64):
            with pytest.raises(OutOfRangeError):
                store.append_events(ORDER, "order-1", expected, events_for("Bad", 1))
        with pytest.raises(OutOfRangeError):  # version INT64_MAX + 1 after the append
            store.append_events(ORDER, "order-1", INT64_MAX - 1, events_for("Bad", 2))
        with pytest.raises(OptimisticConcurrencyError):
            store.append_events(ORDER, "order-1", INT64_MAX - 1, events_for("Ahead", 1))
        for start in (INT64_MAX + 1, INT64_MIN - 1, 2**64):
            with pytest.raises(OutOfRangeError):
                store.events(ORDER, "order-1", start)
        assert store.events(ORDER, "order-1", INT64_MAX) == []
        assert_events_equal(store.events(ORDER, "order-1", INT64_MIN), events_for("E", 2), what="")
        if self.has(Capability.SNAPSHOTS):
            for version in (INT64_MAX + 1, 2**64):
                with pytest.raises(SnapshotVersionError):
                    store.add_snapshot(ORDER, "order-1", RawSnapshot(version, b"state"))
        assert_events_equal(store.events(ORDER, "order-1"), events_for("E", 2), what="stream")
        assert len(self.unpublished_if_outbox(store)) == (2 if self.has(Capability.OUTBOX) else 0)

    def test_append_without_events_raises(self, store: EventStore) -> None:
        """Appending an empty batch raises AggregateRequiresEvents and changes nothing."""
        store.add_aggregate(ORDER, "order-1", events_for("E", 2))
        with pytest.raises(AggregateRequiresEvents):
            store.append_events(ORDER, "order-1", 2, [])
        assert_events_equal(store.events(ORDER, "order-1"), events_for("E", 2), what="stream")

    def test_read_from_version_returns_only_later_events(self, store: EventStore) -> None:
        """``events(..., from_version=k)`` returns the events with version above k;
        ``k`` at or past the stream's version gives ``[]``."""
        written = events_for("E", 5)
        store.add_aggregate(ORDER, "order-1", written[:2])
        store.append_events(ORDER, "order-1", 2, written[2:])
        for k in range(8):
            assert_events_equal(
                store.events(ORDER, "order-1", k), written[k:], what=f"read from version {k}"
            )

    # -- atomicity ---------------------------------------------------------------------

    @pytest.mark.parametrize("kind", ["name", "data", "metadata"])
    def test_malformed_batch_is_atomic(self, store: EventStore, kind: str) -> None:
        """A batch whose third event is malformed raises InvalidEventError and stores
        none of its events, for add and for append; the stream stays appendable."""
        with pytest.raises(InvalidEventError):
            store.add_aggregate(ORDER, "new", malformed_events(kind))
        assert store.contains_aggregate(ORDER, "new") is False

        first = events_for("E", 2)
        store.add_aggregate(ORDER, "order-1", first)
        with pytest.raises(InvalidEventError):
            store.append_events(ORDER, "order-1", 2, malformed_events(kind))
        assert_events_equal(store.events(ORDER, "order-1"), first, what="after malformed append")
        assert len(self.unpublished_if_outbox(store)) == (2 if self.has(Capability.OUTBOX) else 0)

        store.append_events(ORDER, "order-1", 2, events_for("Fine", 2))
        assert_events_equal(
            store.events(ORDER, "order-1"), [*first, *events_for("Fine", 2)], what="after retry"
        )

    def test_events_must_be_a_sequence_of_raw_events(self, store: EventStore) -> None:
        """Passing something other than a sequence of RawEvent raises InvalidEventError."""
        event = events_for("E", 1)[0]
        batches: list[list[object]] = [[event, "not an event"], [("E", b"x", {})]]
        for bad in batches:
            with pytest.raises(InvalidEventError):
                store.add_aggregate(ORDER, "order-1", bad)  # type: ignore[arg-type]
        assert store.contains_aggregate(ORDER, "order-1") is False

    # -- ids ---------------------------------------------------------------------------

    def test_invalid_ids_are_rejected_by_every_method(self, store: EventStore) -> None:
        """Ids that are not UUID, non-empty str or int (float, bool, None, bytes, ``""``)
        raise InvalidAggregateIdError from every method, and nothing is written."""
        store.add_aggregate(ORDER, "order-1", events_for("E", 1))
        before = self.unpublished_if_outbox(store)
        for bad in INVALID_IDS:
            for method, call in self._calls_with_id(store, bad).items():
                try:
                    call()
                except InvalidAggregateIdError:
                    continue
                pytest.fail(f"{method} with id {bad!r} did not raise InvalidAggregateIdError")
        assert self.unpublished_if_outbox(store) == before
        assert_events_equal(store.events(ORDER, "order-1"), events_for("E", 1), what="order-1")

    def _calls_with_id(self, store: EventStore, bad: Any) -> dict[str, Callable[[], object]]:
        calls: dict[str, Callable[[], object]] = {
            "add_aggregate": partial(store.add_aggregate, ORDER, bad, events_for("E", 1)),
            "append_events": partial(store.append_events, ORDER, bad, 0, events_for("E", 1)),
            "events": partial(store.events, ORDER, bad),
            "contains_aggregate": partial(store.contains_aggregate, ORDER, bad),
        }
        if self.has(Capability.SNAPSHOTS):
            calls["add_snapshot"] = partial(store.add_snapshot, ORDER, bad, RawSnapshot(1, b"s"))
            calls["latest_snapshot"] = partial(store.latest_snapshot, ORDER, bad)
        return calls

    def test_ids_keep_their_type(self, store: EventStore) -> None:
        """UUID, str and int ids work, and come back in their own type through the
        outbox's ``RelayEvent.aggregate_id`` where there is an outbox."""
        for aggregate_id in VALID_IDS:
            store.add_aggregate(ORDER, aggregate_id, events_for("E", 1))
            store.append_events(ORDER, aggregate_id, 1, events_for("E", 1, start=2))
            assert_events_equal(
                store.events(ORDER, aggregate_id), events_for("E", 2), what=repr(aggregate_id)
            )
        if not self.has(Capability.OUTBOX):
            return
        relayed = self.unpublished(store)
        got = [(type(e.aggregate_id), e.aggregate_id, e.version) for e in relayed]
        want = [(type(i), i, v) for i in VALID_IDS for v in (1, 2)]
        assert sorted(got, key=repr) == sorted(want, key=repr)

    # -- closing -----------------------------------------------------------------------

    def test_with_block_closes_the_store(self, store_factory: StoreFactory) -> None:
        """``with store as s:`` gives the store itself and closes it at the end of the
        block: afterwards every method of the protocol raises StoreClosedError, and
        ``close()`` again is harmless."""
        store = store_factory()
        with store as entered:
            assert entered is store, f"with gave {entered!r}, want the store {store!r}"
            store.add_aggregate(ORDER, "order-1", events_for("Placed", 1))
        store.close()
        calls: dict[str, Callable[[], object]] = {
            "add_aggregate": lambda: store.add_aggregate(ORDER, "order-2", events_for("X", 1)),
            "append_events": lambda: store.append_events(ORDER, "order-1", 1, events_for("Y", 1)),
            "events": lambda: store.events(ORDER, "order-1"),
            "contains_aggregate": lambda: store.contains_aggregate(ORDER, "order-1"),
            "add_snapshot": lambda: store.add_snapshot(ORDER, "order-1", RawSnapshot(1, b"s")),
            "latest_snapshot": lambda: store.latest_snapshot(ORDER, "order-1"),
        }
        got: dict[str, str] = {}
        for method, call in calls.items():
            try:
                call()
            except StoreClosedError:
                got[method] = "StoreClosedError"
            except Exception as err:
                got[method] = f"{type(err).__name__}: {err}"
            else:
                got[method] = "returned"
        want = dict.fromkeys(calls, "StoreClosedError")
        assert got == want, f"after the with block: got {got}, want {want}"

    # -- persistence -------------------------------------------------------------------

    @requires(Capability.PERSISTENT)
    def test_events_survive_reopen(self, store: EventStore) -> None:
        """Streams written before ``close()`` are there, unchanged, after reopening."""
        for aggregate_id in VALID_IDS:
            store.add_aggregate(ORDER, aggregate_id, AWKWARD_EVENTS)
        store.append_events(ORDER, 42, len(AWKWARD_EVENTS), events_for("Later", 1))
        store.close()
        reopened = self.reopen(store)
        try:
            for aggregate_id in VALID_IDS:
                want = list(AWKWARD_EVENTS)
                if aggregate_id == 42:
                    want += events_for("Later", 1)
                assert_events_equal(
                    reopened.events(ORDER, aggregate_id), want, what=f"{aggregate_id!r} reopened"
                )
            reopened.append_events(ORDER, "order-1", len(AWKWARD_EVENTS), events_for("After", 1))
        finally:
            reopened.close()
