"""The in-memory backend: the whole acceptance suite, plus what only it does (named
stores shared within the process, the in-process publisher)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from esrc_core import (
    EventStore,
    PublishError,
    RawEvent,
    Relay,
    RelayEvent,
    open_event_store,
    open_publisher,
)
from esrc_memory import MemoryEventStore, MemoryPublisher
from esrc_testkit import EventStoreAcceptance, capabilities_of


class TestMemoryStore(EventStoreAcceptance):
    """``memory://`` with the capabilities its entry point declares."""

    capabilities = capabilities_of("memory://")

    @pytest.fixture
    def store_factory(self) -> Iterator[Callable[[], EventStore]]:
        """Private stores: each ``memory://`` open is new and empty."""
        opened: list[EventStore] = []

        def open_empty() -> EventStore:
            opened.append(open_event_store("memory://"))
            return opened[-1]

        yield open_empty
        for store in opened:
            store.close()


def test_memory_declares_snapshots_outbox_and_threads() -> None:
    """The descriptor claims what the suite above then checks."""
    assert capabilities_of("memory://") >= {"snapshots", "outbox", "threads"}


def test_named_memory_stores_share_their_data() -> None:
    """Two opens of ``memory://name`` see the same streams and relay progress."""
    first = open_event_store("memory://shared-orders")
    second = open_event_store("memory://shared-orders")
    first.add_aggregate("Order", "o-1", [RawEvent("Placed", b"1")])
    assert second.events("Order", "o-1") == [RawEvent("Placed", b"1")]
    second.append_events("Order", "o-1", 1, [RawEvent("Paid", b"2")])
    assert [e.name for e in first.events("Order", "o-1")] == ["Placed", "Paid"]
    assert isinstance(first, MemoryEventStore)
    assert isinstance(second, MemoryEventStore)
    outbox = first.outbox("relay")
    outbox.mark_events_as_published(outbox.unpublished_events(1))
    assert [e.version for e in second.outbox("relay").unpublished_events(10)] == [2]


def test_unnamed_memory_stores_are_private() -> None:
    """Each open of ``memory://`` is a store of its own."""
    first = open_event_store("memory://")
    second = open_event_store("memory://")
    first.add_aggregate("Order", "o-1", [RawEvent("Placed", b"1")])
    assert second.contains_aggregate("Order", "o-1") is False
    second.add_aggregate("Order", "o-1", [RawEvent("Other", b"2")])
    assert first.events("Order", "o-1") == [RawEvent("Placed", b"1")]


def _events(count: int) -> list[RelayEvent]:
    store = open_event_store("memory://")
    store.add_aggregate("Order", 7, [RawEvent(f"E{n}", b"") for n in range(count)])
    assert isinstance(store, MemoryEventStore)
    return store.outbox().unpublished_events(100)


def test_memory_publisher_delivers_in_order_to_every_subscriber() -> None:
    """Every subscriber gets every event, in publish order."""
    publisher = open_publisher("memory://")
    assert isinstance(publisher, MemoryPublisher)
    first: list[str] = []
    second: list[str] = []
    publisher.subscribe(lambda e: first.append(e.message_id))
    publisher.subscribe(lambda e: second.append(e.message_id))
    events = _events(5)
    publisher.publish_batch(events[:3])
    publisher.publish(events[3])
    publisher.publish(events[4])
    want = [e.message_id for e in events]
    assert first == want
    assert second == want


def test_named_memory_publishers_share_subscribers() -> None:
    """A subscriber of ``memory://name`` gets what another publisher of the name sends."""
    received: list[str] = []
    subscribed = open_publisher("memory://topic-a")
    assert isinstance(subscribed, MemoryPublisher)
    subscribed.subscribe(lambda e: received.append(e.message_id))
    events = _events(2)
    open_publisher("memory://topic-a").publish(events[0])
    open_publisher("memory://").publish(events[1])
    assert received == [events[0].message_id]


def test_failing_subscriber_gives_publish_error_with_published_count() -> None:
    """A subscriber that raises on the third event makes ``publish_batch`` raise
    PublishError with ``published == 2``, the cause chained; the relay then marks
    exactly those two."""
    publisher = MemoryPublisher()
    seen: list[int] = []

    def subscriber(event: RelayEvent) -> None:
        if event.version == 3:
            raise RuntimeError("broker down")
        seen.append(event.version)

    publisher.subscribe(subscriber)
    events = _events(5)
    with pytest.raises(PublishError) as raised:
        publisher.publish_batch(events)
    assert raised.value.published == 2
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert seen == [1, 2]

    store = MemoryEventStore()
    store.add_aggregate("Order", 7, [RawEvent(f"E{n}", b"") for n in range(5)])
    relay = Relay(store.outbox("relay"), publisher)
    with pytest.raises(PublishError):
        relay.run_once()
    assert [e.version for e in store.outbox("relay").unpublished_events(10)] == [3, 4, 5]
