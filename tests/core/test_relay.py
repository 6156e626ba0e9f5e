"""Relay: publishes one batch of the outbox in order, stops at the first failure and
marks only what was published. The loop around it is RelayRunner's (tests/relay)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
from esrc_core.relay import EventStoreOutbox

from esrc_core import (
    AggregateId,
    BatchPublisher,
    EventStore,
    HasOutbox,
    Publisher,
    PublishError,
    RawEvent,
    Relay,
    RelayEvent,
    message_id,
    open_publisher,
)


class RecordingPublisher:
    """A plain Publisher (no publish_batch) that fails on chosen calls."""

    def __init__(self, fail_on: set[int] | None = None) -> None:
        self.published: list[RelayEvent] = []
        self.calls = 0
        self.fail_on = fail_on or set()
        self.closed = False

    def publish(self, event: RelayEvent) -> None:
        """Record ``event``, or raise if this call number is in ``fail_on``."""
        call = self.calls
        self.calls += 1
        if call in self.fail_on:
            raise ConnectionError(f"broker refused call {call}")
        self.published.append(event)

    def close(self) -> None:
        """Remember that it was closed."""
        self.closed = True


class BatchRecordingPublisher(RecordingPublisher):
    """A BatchPublisher that accepts ``accept`` events of the next batch, then fails."""

    def __init__(self, accept: list[int | None]) -> None:
        super().__init__()
        self.accept = accept
        self.batches: list[int] = []

    def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        """Accept the first ``accept.pop(0)`` events (all if None), then raise."""
        self.batches.append(len(events))
        accepted = self.accept.pop(0) if self.accept else None
        if accepted is None:
            self.published.extend(events)
            return
        self.published.extend(events[:accepted])
        raise PublishError(f"broker took only {accepted}", published=accepted)


def outbox_of(store: EventStore, name: str = "test") -> EventStoreOutbox:
    """The named outbox of a store that has one."""
    assert isinstance(store, HasOutbox)
    return store.outbox(name)


def fill(store: EventStore) -> list[tuple[str, AggregateId, int]]:
    """Store events of two aggregate types, interleaved; return (type, id, version) of
    each in commit order."""
    store.add_aggregate("Order", "o1", [RawEvent("Placed", b"1"), RawEvent("Paid", b"2")])
    store.add_aggregate("Customer", 7, [RawEvent("Joined", b"3")])
    store.append_events("Order", "o1", 2, [RawEvent("Shipped", b"4")])
    store.add_aggregate("Order", "o2", [RawEvent("Placed", b"5")])
    store.append_events("Customer", 7, 1, [RawEvent("Moved", b"6"), RawEvent("Left", b"7")])
    return [
        ("Order", "o1", 1),
        ("Order", "o1", 2),
        ("Customer", 7, 1),
        ("Order", "o1", 3),
        ("Order", "o2", 1),
        ("Customer", 7, 2),
        ("Customer", 7, 3),
    ]


def keys(events: Sequence[RelayEvent]) -> list[tuple[str, AggregateId, int]]:
    """(type, id, version) of each event."""
    return [(e.aggregate_type, e.aggregate_id, e.version) for e in events]


def test_publishers_implement_the_protocols() -> None:
    assert isinstance(RecordingPublisher(), Publisher)
    assert not isinstance(RecordingPublisher(), BatchPublisher)
    assert isinstance(BatchRecordingPublisher([]), BatchPublisher)


def test_run_once_publishes_in_outbox_order_and_marks(store: EventStore) -> None:
    expected = fill(store)
    outbox = outbox_of(store)
    in_outbox = outbox.unpublished_events(100)
    publisher = RecordingPublisher()

    assert Relay(outbox, publisher).run_once() == 7
    assert publisher.published == in_outbox
    assert keys(publisher.published) == expected
    assert [e.event.data for e in publisher.published] == [b"1", b"2", b"3", b"4", b"5", b"6", b"7"]
    assert outbox.unpublished_events(100) == []
    assert Relay(outbox, publisher).run_once() == 0
    assert len(publisher.published) == 7


def test_run_once_on_an_empty_outbox_publishes_nothing(store: EventStore) -> None:
    publisher = RecordingPublisher()
    assert Relay(outbox_of(store), publisher).run_once() == 0
    assert publisher.calls == 0


def test_run_once_relays_at_most_batch_size_events(store: EventStore) -> None:
    expected = fill(store)
    publisher = RecordingPublisher()
    relay = Relay(outbox_of(store), publisher, batch_size=3)
    assert [relay.run_once() for _ in range(4)] == [3, 3, 1, 0]
    assert keys(publisher.published) == expected


def test_relays_with_different_names_progress_independently(store: EventStore) -> None:
    fill(store)
    first, second = RecordingPublisher(), RecordingPublisher()
    Relay(outbox_of(store, "a"), first).run_once()
    assert Relay(outbox_of(store, "b"), second, batch_size=2).run_once() == 2
    assert outbox_of(store, "a").unpublished_events(100) == []
    assert len(outbox_of(store, "b").unpublished_events(100)) == 5


def test_plain_publisher_failure_stops_the_batch_and_marks_what_was_published(
    store: EventStore,
) -> None:
    expected = fill(store)
    outbox = outbox_of(store)
    publisher = RecordingPublisher(fail_on={3})
    relay = Relay(outbox, publisher)

    with pytest.raises(ConnectionError, match="call 3"):
        relay.run_once()
    assert keys(publisher.published) == expected[:3]
    assert publisher.calls == 4, "nothing is tried after the failure"
    assert keys(outbox.unpublished_events(100)) == expected[3:]

    assert relay.run_once() == 4
    assert keys(publisher.published) == expected, "the failed event comes first next time"
    assert outbox.unpublished_events(100) == []


def test_plain_publisher_failing_on_the_first_event_marks_nothing(store: EventStore) -> None:
    expected = fill(store)
    outbox = outbox_of(store)
    relay = Relay(outbox, RecordingPublisher(fail_on={0}))
    with pytest.raises(ConnectionError):
        relay.run_once()
    assert keys(outbox.unpublished_events(100)) == expected


@pytest.mark.parametrize("accepted", [0, 1, 4, 6])
def test_batch_publisher_failure_marks_exactly_the_published_prefix(
    store: EventStore, accepted: int
) -> None:
    expected = fill(store)
    outbox = outbox_of(store)
    publisher = BatchRecordingPublisher([accepted])
    relay = Relay(outbox, publisher)

    with pytest.raises(PublishError, match=f"took only {accepted}"):
        relay.run_once()
    assert keys(outbox.unpublished_events(100)) == expected[accepted:]

    assert relay.run_once() == 7 - accepted
    assert keys(publisher.published) == expected
    assert publisher.batches == [7, 7 - accepted]
    assert outbox.unpublished_events(100) == []


@pytest.mark.parametrize("claimed", [-1, -5, 100])
def test_a_publish_error_count_outside_the_batch_is_clamped(
    store: EventStore, claimed: int
) -> None:
    expected = fill(store)
    outbox = outbox_of(store)

    class Misreporting(BatchRecordingPublisher):
        def publish_batch(self, events: Sequence[RelayEvent]) -> None:
            raise PublishError("confused broker", published=claimed)

    with pytest.raises(PublishError):
        Relay(outbox, Misreporting([])).run_once()
    # A negative count marks nothing; a count beyond the batch marks the whole batch.
    want = [] if claimed > 0 else expected
    assert keys(outbox.unpublished_events(100)) == want


def test_batch_publisher_raising_another_exception_marks_nothing(store: EventStore) -> None:
    expected = fill(store)
    outbox = outbox_of(store)

    class Crashing(BatchRecordingPublisher):
        def publish_batch(self, events: Sequence[RelayEvent]) -> None:
            raise OSError("socket closed")

    with pytest.raises(OSError, match="socket closed"):
        Relay(outbox, Crashing([])).run_once()
    assert keys(outbox.unpublished_events(100)) == expected


def test_memory_publisher_subscriber_failure_marks_the_delivered_prefix(
    store: EventStore,
) -> None:
    expected = fill(store)
    outbox = outbox_of(store)
    publisher = open_publisher("memory://")
    assert isinstance(publisher, BatchPublisher)
    delivered: list[RelayEvent] = []
    broken = {"on": True}

    def subscriber(event: RelayEvent) -> None:
        if broken["on"] and event.version == 3:
            raise RuntimeError("consumer down")
        delivered.append(event)

    publisher.subscribe(subscriber)  # type: ignore[attr-defined]
    relay = Relay(outbox, publisher)
    with pytest.raises(PublishError, match="consumer down") as caught:
        relay.run_once()
    assert caught.value.published == 3
    assert keys(outbox.unpublished_events(100)) == expected[3:]

    broken["on"] = False
    assert relay.run_once() == 4
    assert keys(delivered) == expected
    publisher.close()


def test_batch_size_must_be_positive(store: EventStore) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Relay(outbox_of(store), RecordingPublisher(), batch_size=0)


def test_message_id_is_type_encoded_id_and_version() -> None:
    u = uuid.UUID(int=1)
    assert message_id("Order", 42, 3) == "Order/i:42/3"
    assert message_id("Order", "42", 3) == "Order/s:42/3"
    assert message_id("Order", u, 1) == f"Order/u:{u}/1"
    assert message_id("Order", 42, 3) == message_id("Order", 42, 3)
    assert len({message_id("Order", 42, 3), message_id("Order", "42", 3)}) == 2


def test_relayed_events_carry_their_deterministic_message_id(store: EventStore) -> None:
    fill(store)
    outbox = outbox_of(store)
    first = outbox.unpublished_events(100)
    again = outbox.unpublished_events(100)
    assert [e.message_id for e in first] == [e.message_id for e in again]
    assert first[0].message_id == "Order/s:o1/1"
    assert first[2].message_id == "Customer/i:7/1"
    assert all(
        e.message_id == message_id(t, i, v) for e, (t, i, v) in zip(first, keys(first), strict=True)
    )
    assert len({e.message_id for e in first}) == len(first)


def test_a_redelivered_event_has_the_same_message_id(store: EventStore) -> None:
    fill(store)
    outbox = outbox_of(store)

    class ConfirmsLate(BatchRecordingPublisher):
        """Delivers the whole batch but confirms only 2: the rest is delivered twice."""

        def publish_batch(self, events: Sequence[RelayEvent]) -> None:
            self.published.extend(events)
            if len(self.published) == len(events):
                raise PublishError("confirmations lost", published=2)

    publisher = ConfirmsLate([])
    relay = Relay(outbox, publisher)
    with pytest.raises(PublishError):
        relay.run_once()
    assert relay.run_once() == 5
    first, second = publisher.published[:7], publisher.published[7:]
    assert [e.message_id for e in second] == [e.message_id for e in first[2:]]
    assert len({e.message_id for e in first}) == 7
