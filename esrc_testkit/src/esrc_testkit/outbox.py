"""Acceptance tests of the outbox (capability ``"outbox"``): one total order, nothing
skipped, durable and monotonic progress, stable message ids
(see "What the testkit proves" in docs/internals.md)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from esrc_core.backoff import Backoff
from esrc_core.capabilities import Capability
from esrc_core.errors import OutOfRangeError, PublishError
from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId
from esrc_core.relay import EventStoreOutbox, ReadAheadOutbox, Relay, RelayEvent, message_id
from esrc_core.runner import RelayRunner
from esrc_core.store import INT64_MAX, EventStore

from esrc_testkit.capabilities import capable, requires
from esrc_testkit.checks import assert_order_consistent_with_versions, comparable, stream_key
from esrc_testkit.fixtures import StoreSuite
from esrc_testkit.samples import ORDER, SHIPMENT, events_for

__all__ = ["FailingBatchPublisher", "ListPublisher", "OutboxAcceptance", "Writer"]


@dataclass
class Writer:
    """Writes to a store and remembers, in commit order, which event got which
    (type, id, version), so a test can compare an outbox with what was written."""

    store: EventStore
    committed: list[tuple[str, AggregateId, int, RawEvent]] = field(default_factory=list)
    _versions: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """``add_aggregate`` and record the events."""
        self.store.add_aggregate(aggregate_type, aggregate_id, events)
        self._record(aggregate_type, aggregate_id, 0, events)

    def append(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """``append_events`` at the version this writer last wrote, and record them."""
        version = self._versions[stream_key(aggregate_type, aggregate_id)]
        self.store.append_events(aggregate_type, aggregate_id, version, events)
        self._record(aggregate_type, aggregate_id, version, events)

    def _record(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        version: int,
        events: Sequence[RawEvent],
    ) -> None:
        for offset, event in enumerate(events, start=1):
            self.committed.append((aggregate_type, aggregate_id, version + offset, event))
        self._versions[stream_key(aggregate_type, aggregate_id)] = version + len(events)

    @property
    def message_ids(self) -> list[str]:
        """The message ids of everything written, in commit order."""
        return [message_id(t, i, v) for t, i, v, _ in self.committed]

    def mixed_history(self) -> None:
        """Interleave adds and appends over two types and ids of every type."""
        uid = uuid.UUID("2d5e4c3b-1a09-4f8e-b7d6-c5b4a3928170")
        self.add(ORDER, "order-1", events_for("A", 2))
        self.add(SHIPMENT, 7, events_for("B", 1))
        self.append(ORDER, "order-1", events_for("A", 1, start=3))
        self.add(ORDER, uid, events_for("C", 3))
        self.append(SHIPMENT, 7, events_for("B", 2, start=2))
        self.add(ORDER, 7, events_for("D", 1))
        self.append(ORDER, "order-1", events_for("A", 1, start=4))


class ListPublisher:
    """A :class:`~esrc_core.relay.Publisher` that keeps what it is given, in order."""

    def __init__(self) -> None:
        self.published: list[RelayEvent] = []

    def publish(self, event: RelayEvent) -> None:
        """Keep ``event``."""
        self.published.append(event)

    def close(self) -> None:
        """Nothing to release."""


class FailingBatchPublisher(ListPublisher):
    """A batch publisher that keeps what it is given, in order, and refuses the
    ``fail_at``-th event it is given (counting from 0) once: the events of that batch
    before it are kept and reported in :class:`~esrc_core.errors.PublishError`'s
    ``published``, the rest are not."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.batches: list[int] = []
        """The size of every batch it was given."""

    def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        """Keep ``events``, up to the refused one."""
        self.batches.append(len(events))
        given = len(self.published)
        if self.fail_at is not None and given <= self.fail_at < given + len(events):
            kept = self.fail_at - given
            self.published.extend(events[:kept])
            self.fail_at = None
            raise PublishError(f"refused {events[kept].message_id} on purpose", published=kept)
        self.published.extend(events)


def _relay_all(
    store: EventStore,
    watched: EventStoreOutbox,
    publisher: FailingBatchPublisher,
    *,
    batch_size: int,
    read_ahead: bool,
) -> int:
    """Run a :class:`~esrc_core.runner.RelayRunner` of relay ``watched.name`` until it
    has relayed everything (``watched``, an outbox of that name, has nothing unpublished)
    or failed once; return what it relayed, raise its failure."""
    runner = RelayRunner(
        store,
        publisher,
        name=watched.name,
        batch_size=batch_size,
        read_ahead=read_ahead,
        poll_interval=0.02,
        log_interval=0,
        backoff=Backoff(base_delay=0.001, max_delay=0.001, attempts=1),
    )
    failure: list[BaseException] = []
    relayed: list[int] = []

    def run() -> None:
        try:
            relayed.append(runner.run())
        except BaseException as err:
            failure.append(err)

    thread = threading.Thread(target=run, name="esrc-testkit-runner")
    thread.start()
    deadline = time.monotonic() + 60.0
    while thread.is_alive() and time.monotonic() < deadline:
        if not watched.unpublished_events(1):
            runner.stop()
        thread.join(0.02)
    runner.stop()
    thread.join(30.0)
    assert not thread.is_alive(), "the relay runner did not stop"
    if failure:
        raise failure[0]
    return relayed[0]


def _ids(events: Sequence[RelayEvent]) -> list[str]:
    return [e.message_id for e in events]


class OutboxAcceptance(StoreSuite):
    """Tests of :class:`~esrc_core.relay.HasOutbox` stores and their outboxes."""

    @requires(Capability.OUTBOX)
    def test_outbox_of_empty_store_is_empty(self, store: EventStore) -> None:
        """A store with no events has nothing to relay."""
        assert self.outbox(store).unpublished_events(10) == []

    @requires(Capability.OUTBOX)
    def test_outbox_returns_sequential_writes_in_commit_order(self, store: EventStore) -> None:
        """Events written one commit after another come out in commit order, each
        with its type, id (in its own type), version and exact content."""
        writer = Writer(store)
        writer.mixed_history()
        relayed = self.unpublished(store)
        assert _ids(relayed) == writer.message_ids
        for got, (aggregate_type, aggregate_id, version, event) in zip(
            relayed, writer.committed, strict=True
        ):
            assert (got.aggregate_type, got.aggregate_id, got.version) == (
                aggregate_type,
                aggregate_id,
                version,
            )
            assert type(got.aggregate_id) is type(aggregate_id), got.message_id
            assert comparable([got.event], what=got.message_id) == comparable(
                [event], what="written"
            )

    @requires(Capability.OUTBOX)
    def test_outbox_order_is_consistent_with_versions(self, store: EventStore) -> None:
        """The outbox lists every event once, each stream's versions in order."""
        writer = Writer(store)
        writer.mixed_history()
        relayed = self.unpublished(store)
        assert_order_consistent_with_versions(relayed, what="outbox order")
        assert sorted(_ids(relayed)) == sorted(writer.message_ids)

    @requires(Capability.OUTBOX)
    def test_outbox_order_is_the_same_on_every_call(self, store: EventStore) -> None:
        """The order is the same on every call, and from a fresh outbox object."""
        Writer(store).mixed_history()
        outbox = self.outbox(store, "stable")
        first = _ids(outbox.unpublished_events(1000))
        assert _ids(outbox.unpublished_events(1000)) == first
        assert _ids(self.outbox(store, "stable").unpublished_events(1000)) == first
        assert _ids(self.outbox(store, "another").unpublished_events(1000)) == first

    @requires(Capability.OUTBOX)
    def test_outbox_respects_limit(self, store: EventStore) -> None:
        """``unpublished_events(limit)`` returns the first ``limit`` events of the order."""
        writer = Writer(store)
        writer.mixed_history()
        everything = writer.message_ids
        outbox = self.outbox(store)
        for limit in (1, 2, 3, len(everything) - 1, len(everything), len(everything) + 5):
            assert _ids(outbox.unpublished_events(limit)) == everything[:limit], limit

    @requires(Capability.OUTBOX)
    def test_out_of_range_limit_is_refused(self, store: EventStore) -> None:
        """A limit below 1 or beyond a signed 64-bit integer raises OutOfRangeError (a
        ValueError); the largest limit returns every unpublished event."""
        store.add_aggregate(ORDER, "order-1", events_for("E", 2))
        outbox = self.outbox(store)
        for limit in (0, -1, INT64_MAX + 1, 2**64):
            with pytest.raises(OutOfRangeError):
                outbox.unpublished_events(limit)
        assert len(outbox.unpublished_events(INT64_MAX)) == 2

    @requires(Capability.OUTBOX)
    def test_marking_is_idempotent_and_durable(self, store: EventStore) -> None:
        """Marked progress is seen by a new outbox object of the same name; marking
        the same events again changes nothing."""
        writer = Writer(store)
        writer.mixed_history()
        everything = writer.message_ids
        outbox = self.outbox(store, "relay")
        batch = outbox.unpublished_events(3)
        outbox.mark_events_as_published(batch)
        assert _ids(self.outbox(store, "relay").unpublished_events(1000)) == everything[3:]
        outbox.mark_events_as_published(batch)
        self.outbox(store, "relay").mark_events_as_published(batch)
        assert _ids(self.outbox(store, "relay").unpublished_events(1000)) == everything[3:]
        assert _ids(outbox.unpublished_events(1000)) == everything[3:]

    @requires(Capability.OUTBOX)
    def test_marked_events_do_not_come_back(self, store: EventStore) -> None:
        """Once every event is marked, the outbox is empty, batch after batch."""
        writer = Writer(store)
        writer.mixed_history()
        outbox = self.outbox(store, "relay")
        seen: list[str] = []
        while batch := outbox.unpublished_events(2):
            assert not set(_ids(batch)) & set(seen), f"{_ids(batch)} came back after {seen}"
            seen += _ids(batch)
            outbox.mark_events_as_published(batch)
        assert seen == writer.message_ids
        assert self.outbox(store, "relay").unpublished_events(100) == []

    @requires(Capability.OUTBOX)
    def test_events_appended_later_come_after(self, store: EventStore) -> None:
        """Events committed after a read come after everything that read returned,
        marked or not."""
        writer = Writer(store)
        writer.mixed_history()
        outbox = self.outbox(store, "relay")
        outbox.mark_events_as_published(outbox.unpublished_events(4))
        before = _ids(outbox.unpublished_events(1000))
        writer.add(ORDER, "order-2", events_for("Late", 1))
        writer.append(ORDER, "order-1", events_for("Late", 1, start=2))
        after = _ids(outbox.unpublished_events(1000))
        assert after == [*before, message_id(ORDER, "order-2", 1), message_id(ORDER, "order-1", 5)]

    @requires(Capability.OUTBOX)
    def test_relay_names_progress_independently(self, store: EventStore) -> None:
        """Marking under one relay name does not move another."""
        writer = Writer(store)
        writer.mixed_history()
        everything = writer.message_ids
        first, second = self.outbox(store, "first"), self.outbox(store, "second")
        first.mark_events_as_published(first.unpublished_events(5))
        second.mark_events_as_published(second.unpublished_events(2))
        assert _ids(first.unpublished_events(1000)) == everything[5:]
        assert _ids(second.unpublished_events(1000)) == everything[2:]
        assert _ids(self.outbox(store, "third").unpublished_events(1000)) == everything

    @requires(Capability.OUTBOX)
    def test_marking_an_older_prefix_does_not_move_progress_back(self, store: EventStore) -> None:
        """After marking a longer prefix, marking a shorter one again is a no-op."""
        writer = Writer(store)
        writer.mixed_history()
        everything = writer.message_ids
        outbox = self.outbox(store, "relay")
        events = outbox.unpublished_events(1000)
        outbox.mark_events_as_published(events[:6])
        outbox.mark_events_as_published(events[:2])
        outbox.mark_events_as_published(events[:1])
        assert _ids(outbox.unpublished_events(1000)) == everything[6:]
        assert _ids(self.outbox(store, "relay").unpublished_events(1000)) == everything[6:]

    @requires(Capability.OUTBOX)
    def test_message_ids_are_deterministic_and_distinct(self, store: EventStore) -> None:
        """Each relayed event's message id is ``message_id(type, id, version)``: the
        same on every read, and different for every event."""
        writer = Writer(store)
        writer.mixed_history()
        first = self.unpublished(store)
        again = self.unpublished(store, "other")
        assert _ids(first) == _ids(again)
        assert len(set(_ids(first))) == len(first)
        for event in first:
            want = message_id(event.aggregate_type, event.aggregate_id, event.version)
            assert event.message_id == want

    @requires(Capability.OUTBOX)
    def test_relay_publishes_everything_in_order(self, store: EventStore) -> None:
        """:class:`esrc_core.relay.Relay` over the outbox publishes every event once, in
        the outbox's order, then finds nothing left."""
        writer = Writer(store)
        writer.mixed_history()
        publisher = ListPublisher()
        relay = Relay(self.outbox(store, "relay"), publisher, batch_size=3)
        while relay.run_once():
            pass
        assert _ids(publisher.published) == writer.message_ids
        assert relay.run_once() == 0

    @requires(Capability.OUTBOX, Capability.PERSISTENT)
    def test_outbox_progress_survives_reopen(self, store: EventStore) -> None:
        """A relay's progress is where it was after closing and reopening the store."""
        writer = Writer(store)
        writer.mixed_history()
        everything = writer.message_ids
        outbox = self.outbox(store, "relay")
        outbox.mark_events_as_published(outbox.unpublished_events(4))
        store.close()
        reopened = self.reopen(store)
        try:
            assert _ids(self.unpublished(reopened, "relay")) == everything[4:]
            assert _ids(self.unpublished(reopened, "fresh")) == everything
        finally:
            reopened.close()

    @requires(Capability.READ_AHEAD)
    def test_read_ahead_walks_the_outbox_order_without_marking(self, store: EventStore) -> None:
        """Reading after the last event handed out, batch after batch, gives the whole
        outbox order once; nothing is marked, so the outbox still starts at the first
        event; marking the first batches moves it to the first event not marked."""
        writer = Writer(store)
        writer.mixed_history()
        outbox = self.outbox(store, "ahead")
        ahead = capable(self, outbox, Capability.READ_AHEAD, ReadAheadOutbox)
        batches = [outbox.unpublished_events(3)]
        while batches[-1]:
            batches.append(ahead.unpublished_events_after(batches[-1][-1], 3))
        walked = [e for batch in batches for e in batch]
        assert _ids(walked) == writer.message_ids
        assert _ids(outbox.unpublished_events(100)) == writer.message_ids
        outbox.mark_events_as_published(batches[0])
        outbox.mark_events_as_published(batches[1])
        assert _ids(outbox.unpublished_events(100)) == writer.message_ids[6:]

    @requires(Capability.READ_AHEAD)
    def test_read_ahead_returns_events_committed_after_it_reached_the_end(
        self, store: EventStore
    ) -> None:
        """Events committed after the outbox was read ahead to its end are returned
        after the last event handed out, before anything is marked."""
        writer = Writer(store)
        writer.mixed_history()
        outbox = self.outbox(store, "ahead")
        ahead = capable(self, outbox, Capability.READ_AHEAD, ReadAheadOutbox)
        first = outbox.unpublished_events(100)
        assert ahead.unpublished_events_after(first[-1], 10) == []
        writer.append(ORDER, "order-1", events_for("A", 2, start=5))
        writer.add(SHIPMENT, "late", events_for("L", 1))
        assert _ids(ahead.unpublished_events_after(first[-1], 10)) == writer.message_ids[-3:]

    @requires(Capability.OUTBOX)
    def test_runner_stops_at_a_failed_publish_and_resumes_from_it(self, store: EventStore) -> None:
        """A relay runner, one reading ahead (where the outbox can: it reads each next
        batch and marks the last one while publishing) and one that does not, whose
        publisher refuses an event in the middle of a batch: everything before it is
        marked, nothing after it (not the batch read ahead either); the next runner
        publishes from exactly that event on, and together they published every event
        once, in the outbox order."""
        writer = Writer(store)
        for n in range(5):
            writer.add(ORDER, f"many-{n}", events_for(f"M{n}", 5))
        everything = writer.message_ids
        for read_ahead in (True, False):
            name = f"runner-{read_ahead}"
            failing = FailingBatchPublisher(fail_at=13)
            try:
                _relay_all(
                    store, self.outbox(store, name), failing, batch_size=4, read_ahead=read_ahead
                )
            except PublishError:
                pass
            else:
                raise AssertionError(f"{name} did not report the refused publish")
            assert _ids(failing.published) == everything[:13], name
            assert _ids(self.unpublished(store, name)) == everything[13:], name
            second = FailingBatchPublisher()
            relayed = _relay_all(
                store, self.outbox(store, name), second, batch_size=4, read_ahead=read_ahead
            )
            assert relayed == len(everything) - 13, name
            assert _ids(second.published) == everything[13:], name
            assert self.unpublished(store, name) == [], name
