"""The JetStream event store through the acceptance suite, and what is specific to it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from esrc_core.errors import NotSupportedError, OptimisticConcurrencyError
from esrc_core.events import RawEvent
from esrc_nats.store import NatsEventStore
from esrc_testkit.servers import reachable_url

from esrc_core import EventStore, open_event_store
from esrc_testkit import EventStoreAcceptance, capabilities_of

from .conftest import MAX_BATCH, Cluster


class TestNatsStore(EventStoreAcceptance):
    """``nats://`` with the capabilities its entry point declares; each store has a
    stream and prefix of its own."""

    capabilities = capabilities_of("nats://")

    @pytest.fixture
    def store_factory(self, nats_url: str) -> Iterator[Callable[[], EventStore]]:
        """Each call opens a store on a new stream."""
        opened: list[EventStore] = []

        def open_empty() -> EventStore:
            name = uuid.uuid4().hex[:12]
            opened.append(
                open_event_store(f"{nats_url}?stream=S{name}&prefix=p{name}&max_batch={MAX_BATCH}")
            )
            return opened[-1]

        yield open_empty
        for store in opened:
            store.close()

    def reopen(self, store: EventStore) -> EventStore:
        """Open the same URL again."""
        return open_event_store(store.url)  # type: ignore[attr-defined]


class TestNatsStoreOnCluster(TestNatsStore):
    """The same suite on a three-node cluster: every store's stream and buckets are
    replicated on all three nodes (R3), and the store is given every node."""

    @pytest.fixture
    def store_factory(self, shared_cluster: Cluster) -> Iterator[Callable[[], EventStore]]:
        """Each call opens a store on a new R3 stream."""
        opened: list[EventStore] = []

        def open_empty() -> EventStore:
            name = uuid.uuid4().hex[:12]
            opened.append(
                open_event_store(
                    f"{shared_cluster.url}?stream=S{name}&prefix=p{name}&max_batch={MAX_BATCH}"
                )
            )
            assert opened[-1].replicas == 3  # type: ignore[attr-defined]
            return opened[-1]

        yield open_empty
        for store in opened:
            store.close()


def test_a_conflict_names_the_stream_and_expected_version(nats_url: str) -> None:
    """Two writers at version 1: the second one's append is refused by the server."""
    url = f"{nats_url}?stream=CONFLICT&prefix=conflict"
    with open_event_store(url) as first, open_event_store(url) as second:
        first.add_aggregate("Order", "o-1", [RawEvent("Placed", b"{}")])
        first.append_events("Order", "o-1", 1, [RawEvent("Paid", b"{}")])
        with pytest.raises(OptimisticConcurrencyError, match=r"Order 'o-1' at version 1"):
            second.append_events("Order", "o-1", 1, [RawEvent("Shipped", b"{}")])
        assert [e.name for e in second.events("Order", "o-1")] == ["Placed", "Paid"]


def test_several_events_are_appended_in_one_atomic_batch(nats_url: str) -> None:
    url = f"{nats_url}?stream=BATCH&prefix=batch"
    with open_event_store(url) as store:
        events = [RawEvent(f"E{n}", bytes([n])) for n in range(5)]
        store.add_aggregate("Order", 7, events)
        store.append_events("Order", 7, 5, events)
        assert store.events("Order", 7, 3) == events[3:] + events


def test_an_append_above_max_batch_is_refused_before_publishing(nats_url: str) -> None:
    with open_event_store(f"{nats_url}?stream=BIG&prefix=big&max_batch=3") as store:
        events = [RawEvent("E", b"") for _ in range(4)]
        with pytest.raises(NotSupportedError, match=r"4 events in one append exceed max_batch=3"):
            store.add_aggregate("Order", "o-1", events)
        assert not store.contains_aggregate("Order", "o-1")


def test_a_server_without_atomic_batches_refuses_several_events() -> None:
    """On a server older than 2.12 (the one of ESRC_TEST_NATS_URL, when it is), an
    append of several events is refused whole and a single event still works."""
    url = reachable_url("ESRC_TEST_NATS_URL", example="nats://127.0.0.1:4222", default_port=4222)
    name = uuid.uuid4().hex[:12]
    with open_event_store(f"{url}?stream=OLD{name}&prefix=old{name}") as store:
        assert isinstance(store, NatsEventStore)
        if store.atomic_batches:
            pytest.skip("the server of ESRC_TEST_NATS_URL publishes atomic batches")
        two = [RawEvent("A", b"1"), RawEvent("B", b"2")]
        with pytest.raises(NotSupportedError, match="atomic batch publish"):
            store.add_aggregate("Order", "o-1", two)
        assert not store.contains_aggregate("Order", "o-1")
        store.add_aggregate("Order", "o-1", two[:1])
        store.append_events("Order", "o-1", 1, two[1:])
        assert store.events("Order", "o-1") == two


def test_storage_memory_keeps_the_stream_and_buckets_in_memory(nats_url: str) -> None:
    """``storage=memory`` makes the stream and its buckets with memory storage, and the
    store works on them; the default is file storage."""
    import asyncio

    import nats

    name = uuid.uuid4().hex[:12]
    with open_event_store(f"{nats_url}?stream=M{name}&prefix=m{name}&storage=memory") as store:
        store.add_aggregate("Order", "o-1", [RawEvent("Placed", b"{}")])
        assert store.events("Order", "o-1") == [RawEvent("Placed", b"{}")]
    with open_event_store(f"{nats_url}?stream=F{name}&prefix=f{name}"):
        pass

    async def storages() -> list[str]:
        client = await nats.connect(nats_url)
        try:
            js = client.jetstream()
            names = [f"M{name}", f"KV_M{name}_snapshots", f"KV_M{name}_locks", f"F{name}"]
            return [
                getattr(storage, "value", storage)
                for n in names
                if (storage := (await js.stream_info(n)).config.storage) is not None
            ]
        finally:
            await client.close()

    assert asyncio.run(storages()) == ["memory", "memory", "memory", "file"]
