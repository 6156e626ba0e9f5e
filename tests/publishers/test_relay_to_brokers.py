"""End to end: an event store's outbox → Relay → a broker publisher → the consumer
helper's projection. Every event is applied once, in the outbox's order, even when the
relay publishes everything a second time."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from esrc_core.async_relay import AsyncRelay
from esrc_core.async_store import sync_face
from esrc_core.events import RawEvent
from esrc_core.plugins import open_async_event_store, open_async_publisher, open_event_store
from esrc_core.relay import HasOutbox, Publisher, Relay, RelayEvent
from esrc_faststream.consumer import Projection
from esrc_faststream.destination import destination
from esrc_faststream.loop import LoopThread

BROKERS = {"rabbitmq": "amqp_url", "nats": "nats_url", "redis": "redis_url"}
"""Each broker, and the fixture that gives its URL."""


class Recorder:
    """A projection that records each event it applies, in order."""

    def __init__(self) -> None:
        self.projection = Projection()
        self.applied: list[RelayEvent] = []
        self.projection.on("Opened", "Deposited", "Closed")(self.applied.append)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(params=sorted(BROKERS))
def publisher(
    request: pytest.FixtureRequest, loop: LoopThread, unique: str, recorder: Recorder
) -> Iterator[Publisher]:
    """The broker's destination ``esrc-test-<unique>``: its publisher, and the
    recorder's projection subscribed as the consumer ``projection``."""
    url: str = request.getfixturevalue(BROKERS[request.param])
    place = destination(url, f"esrc-test-{unique}")
    publisher = place.open_publisher()
    broker = place.faststream_broker(logger=None)
    place.subscribe(broker, recorder.projection, "projection")
    try:
        loop.run(broker.start(), 20)
        yield publisher
    finally:
        publisher.close()
        loop.run(broker.stop(), 20)
        place.delete(["projection"], loop=loop)


def _relay_all(relay: Relay) -> None:
    while relay.run_once():
        pass


def _wait_until(done: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def test_every_event_applied_once_in_order(publisher: Publisher, recorder: Recorder) -> None:
    """Events of 10 interleaved accounts are applied in outbox order, once each, even
    though a second relay (another outbox name) publishes all of them again."""
    from esrc_memory.store import MemoryEventStore

    store = open_event_store("memory://")
    assert isinstance(store, MemoryEventStore)
    accounts = [uuid.uuid4() for _ in range(10)]
    for account in accounts:
        store.add_aggregate("Account", account, [RawEvent("Opened", b"{}")])
    for version in range(1, 5):
        for account in accounts:
            data = f'{{"amount": {version}}}'.encode()
            store.append_events("Account", account, version, [RawEvent("Deposited", data)])
    _relay_all(Relay(store.outbox("projection"), publisher, batch_size=7))

    store.add_aggregate("Account", "last", [RawEvent("Closed", b"{}", {"by": "test"})])
    _relay_all(Relay(store.outbox("replay"), publisher, batch_size=13))
    _relay_all(Relay(store.outbox("projection"), publisher))

    want = store.outbox("expected").unpublished_events(1000)
    assert len(want) == 51
    assert _wait_until(lambda: len(recorder.applied) >= len(want)), (
        f"applied {len(recorder.applied)} of {len(want)} events"
    )
    # "last" is relayed after every duplicate, so when it is applied the duplicates
    # were all delivered (and skipped) before it.
    assert [e.message_id for e in recorder.applied] == [e.message_id for e in want]
    assert recorder.applied == want


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_async_relay_to_the_brokers_async_face(
    request: pytest.FixtureRequest,
    broker: str,
    loop: LoopThread,
    unique: str,
    tmp_path: Path,
) -> None:
    """The async stack end to end: tasks append to an async SQLite store while an
    AsyncRelay publishes through the broker's async publisher (on the same loop, no
    thread of its own); the consumer applies every event once, in the outbox's order."""
    url: str = request.getfixturevalue(BROKERS[broker])
    place = destination(url, f"esrc-test-{unique}")
    place.open_publisher().close()  # creates the stream or exchange the consumer reads
    recorder = Recorder()
    consumer = place.faststream_broker(logger=None)
    place.subscribe(consumer, recorder.projection, "projection")

    async def scenario() -> list[RelayEvent]:
        store = await open_async_event_store(f"sqlite:///{tmp_path}/relay.db")
        try:
            publisher = await open_async_publisher(place.publisher_url())
            relay = AsyncRelay(store, publisher, batch_size=9, poll_interval=0.05)
            running = asyncio.ensure_future(relay.run())

            async def account(n: int) -> None:
                await store.add_aggregate("Account", n, [RawEvent("Opened", b"{}")])
                for version in range(1, 5):
                    data = f'{{"amount": {version}}}'.encode()
                    await store.append_events("Account", n, version, [RawEvent("Deposited", data)])

            await asyncio.gather(*(account(n) for n in range(8)))
            while relay.relayed < 40:
                await asyncio.sleep(0.02)
            relay.stop()
            await running
            await publisher.close()
            sync_store, bridge = sync_face(store)
            assert isinstance(sync_store, HasOutbox)
            return list(await bridge.run(sync_store.outbox("expected").unpublished_events, 100))
        finally:
            await store.close()

    try:
        loop.run(consumer.start(), 20)
        want = asyncio.run(scenario())
        assert len(want) == 40
        assert _wait_until(lambda: len(recorder.applied) >= len(want)), (
            f"applied {len(recorder.applied)} of {len(want)} events"
        )
        assert [e.message_id for e in recorder.applied] == [e.message_id for e in want]
    finally:
        loop.run(consumer.stop(), 20)
        place.delete(["projection"], loop=loop)
