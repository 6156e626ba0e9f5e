"""The RabbitMQ publisher against the real broker (ESRC_TEST_AMQP_URL)."""

from __future__ import annotations

from typing import Any, ClassVar

import aio_pika
import pytest
from esrc_core.errors import BackendConfigError
from esrc_core.events import RawEvent
from esrc_core.plugins import open_publisher
from esrc_core.relay import Publisher, RelayEvent
from esrc_faststream.loop import LoopThread
from esrc_rabbitmq.destination import RabbitDestination
from esrc_testkit.async_publishers import AsyncPublisherAcceptance
from esrc_testkit.publishers import relay_events

from esrc_testkit import capabilities_of

from .destinations import DestinationAcceptance, reading


class TestRabbitPublisher(DestinationAcceptance):
    """The publisher contract on RabbitMQ."""

    url_fixture = "amqp_url"
    capabilities = capabilities_of("amqp://", "publisher")
    open_options: ClassVar[dict[str, Any]] = {"timeout": 3}

    def unreachable_url(self) -> str:
        return "amqp://guest:secret-password@127.0.0.1:9/"

    def refused_event(self) -> RelayEvent | None:
        [event] = relay_events(1, aggregate_type="A" * 300)
        return event

    def test_message_properties(self, publisher: Publisher) -> None:
        """Persistent, routed by "{aggregate_type}.{event_name}", message_id, type."""
        [event] = relay_events(1)
        publisher.publish(event)
        [received] = self.read(1, timeout=0)
        message = received.raw
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert received.destination == f"Account.{event.event.name}"
        assert message.message_id == event.message_id
        assert message.correlation_id == event.message_id  # no correlation_id metadata
        assert message.type == event.event.name
        assert received.body == event.event.data

    def test_correlation_id_is_the_events_correlation(self, publisher: Publisher) -> None:
        """An event recorded with a correlation id (esrc_core.correlation) carries it as
        the message's correlation_id; one too long for AMQP falls back to the message
        id (the esrc-metadata header still holds it)."""
        [first, second] = relay_events(2)
        events = [
            RelayEvent(e.aggregate_type, e.aggregate_id, e.version, e.position, raw)
            for e, raw in (
                (first, RawEvent(first.event.name, first.event.data, {"correlation_id": "k-1"})),
                (
                    second,
                    RawEvent(second.event.name, second.event.data, {"correlation_id": "x" * 300}),
                ),
            )
        ]
        for event in events:
            publisher.publish(event)
        received = self.read(2, timeout=0)
        assert [r.raw.correlation_id for r in received] == ["k-1", events[1].message_id]


class TestRabbitPublisherAsync(AsyncPublisherAcceptance, TestRabbitPublisher):
    """The same contract (and the RabbitMQ-specific cases above) on the publisher's async face
    (``open_async_publisher``), run on the caller's event loop."""


def test_routing_rule_and_exchange_from_options(
    amqp_url: str, loop: LoopThread, unique: str
) -> None:
    """The exchange comes from the query string, the routing rule from a keyword."""
    destination = RabbitDestination(amqp_url, f"esrc-test-{unique}")
    with reading(destination, loop) as reader:
        publisher = open_publisher(
            destination.publisher_url(), routing=lambda e: f"events.{e.aggregate_type.lower()}"
        )
        try:
            [event] = relay_events(1)
            publisher.publish(event)
        finally:
            publisher.close()
        [message] = reader.read(1, 0)
        assert message.destination == "events.account"


async def _declare(url: str, exchange: str, kind: aio_pika.ExchangeType) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_exchange(exchange, kind, durable=True)


def test_missing_exchange_without_declare_is_a_config_error(amqp_url: str, unique: str) -> None:
    """declare=false requires the exchange to exist; opening names it and the fix."""
    with pytest.raises(BackendConfigError, match=f"'esrc-test-{unique}' does not exist"):
        open_publisher(f"{amqp_url}?exchange=esrc-test-{unique}&declare=false", timeout=5)


def test_exchange_of_another_type_is_a_config_error(
    amqp_url: str, loop: LoopThread, unique: str
) -> None:
    """An exchange declared as fanout cannot be redeclared as topic: a BackendConfigError
    (PRECONDITION_FAILED) naming the exchange, not a retryable unavailability."""
    destination = RabbitDestination(amqp_url, f"esrc-test-{unique}")
    loop.run(_declare(amqp_url, destination.exchange, aio_pika.ExchangeType.FANOUT), 10)
    try:
        with pytest.raises(BackendConfigError, match="exists with another type") as caught:
            open_publisher(destination.publisher_url(), timeout=5)
        assert f"'esrc-test-{unique}'" in str(caught.value)
        assert "guest:guest" not in str(caught.value)
    finally:
        destination.delete(loop=loop)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("amqp://guest:secret@127.0.0.1:notaport/", "Port could not be cast"),
        ("amqp:///vhost", "name the host"),
    ],
)
def test_malformed_url_is_a_config_error(url: str, match: str) -> None:
    """A URL that cannot name a server fails before connecting, password masked."""
    with pytest.raises(BackendConfigError, match=match) as caught:
        open_publisher(url, timeout=5)
    assert "secret" not in str(caught.value)


def test_publisher_class_is_registered() -> None:
    """amqp:// and amqps:// resolve to the rabbitmq backend of esrc-rabbitmq, which
    opens RabbitPublisher, sync and async."""
    from esrc_core.plugins import plugins

    backend, _ = plugins().resolve("amqps://host/", "publisher")
    assert (backend.name, backend.distribution) == ("rabbitmq", "esrc-rabbitmq")
    from esrc_rabbitmq import RabbitPublisher
    from esrc_rabbitmq.plugin import SPEC

    assert SPEC.publisher == "esrc_rabbitmq.publisher:RabbitPublisher"
    assert backend.offers_async
    assert RabbitPublisher.broker == "RabbitMQ"
