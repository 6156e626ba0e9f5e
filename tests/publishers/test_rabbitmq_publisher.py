"""The RabbitMQ publisher against the real broker (ESRC_TEST_AMQP_URL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import aio_pika
import pytest
from aio_pika.abc import (
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from esrc_core.errors import BrokerUnavailableError
from esrc_core.plugins import open_publisher
from esrc_core.relay import Publisher, RelayEvent
from esrc_faststream.headers import relay_event_from
from esrc_faststream.loop import LoopThread
from esrc_testkit.publishers import PublisherAcceptance, Received, relay_events

from esrc_testkit import capabilities_of


class _Reader:
    """An exclusive queue bound with ``#`` to the test's exchange, read with basic.get."""

    def __init__(
        self, connection: AbstractConnection, exchange: AbstractExchange, queue: AbstractQueue
    ) -> None:
        self.connection = connection
        self.exchange = exchange
        self.queue = queue

    @classmethod
    async def open(cls, url: str, exchange_name: str) -> _Reader:
        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")
        return cls(connection, exchange, queue)

    async def read(self, n: int, timeout: float) -> list[AbstractIncomingMessage]:
        got: list[AbstractIncomingMessage] = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            message = await self.queue.get(no_ack=True, fail=False)
            if message is not None:
                got.append(message)
            elif time.monotonic() >= deadline:
                break
            else:
                await asyncio.sleep(0.02)
        return got

    async def close(self) -> None:
        await self.exchange.delete()
        await self.connection.close()


def _received(message: AbstractIncomingMessage) -> Received:
    headers: dict[str, Any] = dict(message.headers or {})
    return Received(message.message_id or "", relay_event_from(headers, message.body), headers)


class TestRabbitPublisher(PublisherAcceptance):
    """The publisher contract on RabbitMQ."""

    capabilities = capabilities_of("amqp://", "publisher")

    open_options: ClassVar[dict[str, Any]] = {"timeout": 3}

    @pytest.fixture
    def publisher(self, amqp_url: str, loop: LoopThread, unique: str) -> Iterator[Publisher]:
        self.loop = loop
        self.exchange = f"esrc-test-{unique}"
        self.reader = loop.run(_Reader.open(amqp_url, self.exchange), 10)
        publisher = open_publisher(amqp_url, exchange=self.exchange)
        try:
            yield publisher
        finally:
            publisher.close()
            loop.run(self.reader.close(), 10)

    def read(self, n: int, timeout: float) -> list[AbstractIncomingMessage]:
        return self.loop.run(self.reader.read(n, timeout), timeout + 10)

    def received(self, n: int, timeout: float) -> list[Received]:
        return [_received(m) for m in self.read(n, timeout)]

    def unreachable_url(self) -> str:
        return "amqp://guest:secret-password@127.0.0.1:9/"

    def refused_event(self) -> RelayEvent | None:
        [event] = relay_events(1, aggregate_type="A" * 300)
        return event

    def test_message_properties(self, publisher: Publisher) -> None:
        """Persistent, routed by "{aggregate_type}.{event_name}", message_id, type."""
        [event] = relay_events(1)
        publisher.publish(event)
        [message] = self.read(1, timeout=0)
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.routing_key == f"Account.{event.event.name}"
        assert message.message_id == event.message_id
        assert message.type == event.event.name
        assert message.body == event.event.data


def test_routing_rule_and_exchange_from_options(
    amqp_url: str, loop: LoopThread, unique: str
) -> None:
    """The exchange comes from the query string, the routing rule from a keyword."""
    exchange = f"esrc-test-{unique}"
    reader = loop.run(_Reader.open(amqp_url, exchange), 10)
    try:
        publisher = open_publisher(
            f"{amqp_url}?exchange={exchange}",
            routing=lambda e: f"events.{e.aggregate_type.lower()}",
        )
        try:
            [event] = relay_events(1)
            publisher.publish(event)
        finally:
            publisher.close()
        [message] = loop.run(reader.read(1, 0), 10)
        assert message.routing_key == "events.account"
    finally:
        loop.run(reader.close(), 10)


def test_missing_exchange_without_declare_fails(amqp_url: str, unique: str) -> None:
    """declare=false requires the exchange to exist; opening says which one."""
    with pytest.raises(BrokerUnavailableError, match=f"esrc-test-{unique}|NOT_FOUND"):
        open_publisher(f"{amqp_url}?exchange=esrc-test-{unique}&declare=false", timeout=5)


def test_publisher_class_is_registered() -> None:
    """amqp:// and amqps:// resolve to the rabbitmq backend of esrc-rabbitmq."""
    from esrc_core.plugins import plugins

    backend, _ = plugins().resolve("amqps://host/", "publisher")
    assert (backend.name, backend.distribution) == ("rabbitmq", "esrc-rabbitmq")
    from esrc_rabbitmq import RabbitPublisher

    assert backend.factory.__module__ == "esrc_rabbitmq.plugin"
    assert RabbitPublisher.broker == "RabbitMQ"
