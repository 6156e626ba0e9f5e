"""End to end: an event store's outbox → Relay → a broker publisher → the consumer
helper's projection. Every event is applied once, in the outbox's order, even when the
relay publishes everything a second time."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from esrc_core.events import RawEvent
from esrc_core.plugins import open_event_store, open_publisher
from esrc_core.relay import Publisher, Relay, RelayEvent
from esrc_faststream.consumer import (
    Projection,
    subscribe_nats,
    subscribe_rabbitmq,
    subscribe_redis,
)
from esrc_faststream.loop import LoopThread


@dataclass
class Setup:
    """A publisher and a started consumer for one broker, and how to tear them down."""

    publisher: Publisher
    stop: Callable[[], None]


def _rabbitmq(
    request: pytest.FixtureRequest, loop: LoopThread, unique: str, proj: Projection
) -> Setup:
    from faststream.rabbit import RabbitBroker

    url: str = request.getfixturevalue("amqp_url")
    name = f"esrc-test-{unique}"
    broker = RabbitBroker(url, logger=None)
    subscribe_rabbitmq(broker, proj, queue=name, exchange=name, durable=False, auto_delete=True)
    loop.run(broker.start(), 20)
    publisher = open_publisher(url, exchange=name)

    async def delete_exchange() -> None:
        import aio_pika

        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            await channel.exchange_delete(name)

    def stop() -> None:
        publisher.close()
        loop.run(broker.stop(), 20)
        loop.run(delete_exchange(), 20)

    return Setup(publisher, stop)


def _nats(request: pytest.FixtureRequest, loop: LoopThread, unique: str, proj: Projection) -> Setup:
    from faststream.nats import NatsBroker

    url: str = request.getfixturevalue("nats_url")
    stream, prefix = f"ESRC_TEST_{unique}", f"esrc-test-{unique}"
    publisher = open_publisher(
        url,
        stream=stream,
        subjects=f"{prefix}.>",
        subject=prefix + ".{aggregate_type}.{event_name}",
    )
    broker = NatsBroker(url, logger=None)
    subscribe_nats(broker, proj, durable="projection", stream=stream, subject=f"{prefix}.>")
    loop.run(broker.start(), 20)

    async def delete_stream() -> None:
        await broker.connection.jetstream().delete_stream(stream)

    def stop() -> None:
        publisher.close()
        loop.run(delete_stream(), 20)
        loop.run(broker.stop(), 20)

    return Setup(publisher, stop)


def _redis(
    request: pytest.FixtureRequest, loop: LoopThread, unique: str, proj: Projection
) -> Setup:
    from faststream.redis import RedisBroker

    url: str = request.getfixturevalue("redis_url")
    stream = f"esrc-test-{unique}"
    publisher = open_publisher(url, stream=stream)
    broker = RedisBroker(url)
    subscribe_redis(broker, proj, group="projection", consumer="test", stream=stream)
    loop.run(broker.start(), 20)

    async def delete_stream() -> None:
        import redis.asyncio

        client = redis.asyncio.from_url(url)
        await client.delete(stream)
        await client.aclose()

    def stop() -> None:
        publisher.close()
        loop.run(broker.stop(), 20)
        loop.run(delete_stream(), 20)

    return Setup(publisher, stop)


BROKERS = {"rabbitmq": _rabbitmq, "nats": _nats, "redis": _redis}


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
def setup(
    request: pytest.FixtureRequest, loop: LoopThread, unique: str, recorder: Recorder
) -> Iterator[Setup]:
    made = BROKERS[request.param](request, loop, unique, recorder.projection)
    yield made
    made.stop()


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


def test_every_event_applied_once_in_order(setup: Setup, recorder: Recorder) -> None:
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
    _relay_all(Relay(store.outbox("projection"), setup.publisher, batch_size=7))

    store.add_aggregate("Account", "last", [RawEvent("Closed", b"{}", {"by": "test"})])
    _relay_all(Relay(store.outbox("replay"), setup.publisher, batch_size=13))
    _relay_all(Relay(store.outbox("projection"), setup.publisher))

    want = store.outbox("expected").unpublished_events(1000)
    assert len(want) == 51
    assert _wait_until(lambda: len(recorder.applied) >= len(want)), (
        f"applied {len(recorder.applied)} of {len(want)} events"
    )
    # "last" is relayed after every duplicate, so when it is applied the duplicates
    # were all delivered (and skipped) before it.
    assert [e.message_id for e in recorder.applied] == [e.message_id for e in want]
    assert recorder.applied == want
