"""The RabbitMQ publisher: FastStream's ``RabbitBroker`` with publisher confirms, a
topic exchange and persistent messages."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiormq.abc
import aiormq.exceptions
from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractRobustChannel
from esrc_core.errors import BackendConfigError
from esrc_core.relay import RelayEvent
from esrc_core.urls import mask_url
from esrc_faststream.headers import RoutingRule, check_routing_rule, relay_headers, route
from esrc_faststream.options import check_server_url
from esrc_faststream.publisher import DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT, AsyncBrokerPublisher
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange

__all__ = [
    "DEFAULT_EXCHANGE",
    "DEFAULT_ROUTING",
    "MAX_SHORT_STRING",
    "SCHEMES",
    "RabbitPublisher",
]

DEFAULT_EXCHANGE = "esrc"
"""The topic exchange events go to unless ``exchange=`` says otherwise."""
DEFAULT_ROUTING = "{aggregate_type}.{event_name}"
"""The default routing key rule, e.g. ``Account.MoneyDeposited``."""
MAX_SHORT_STRING = 255
"""AMQP's limit on a routing key or message id, in bytes."""
SCHEMES = ("amqp", "amqps")
"""The URL schemes the publisher connects with."""

_REFUSED_SETUP = (
    aiormq.exceptions.ChannelNotFoundEntity,
    aiormq.exceptions.ChannelPreconditionFailed,
    aiormq.exceptions.ChannelAccessRefused,
)
"""What RabbitMQ answers to an exchange declaration that no retry will fix: the
exchange is missing (``declare=false``), exists with another type or durability, or
the user may not declare it."""


def _correlation(event: RelayEvent) -> str:
    """The AMQP ``correlation_id`` of ``event``'s message: its correlation id when it
    has one that fits a short string, else its message id."""
    found = event.event.metadata.get("correlation_id")
    if found and len(found.encode()) <= MAX_SHORT_STRING:
        return found
    return event.message_id


class RabbitPublisher(AsyncBrokerPublisher):
    """Publishes relayed events to a RabbitMQ topic exchange and waits for each
    publisher confirm.

    - ``url``: ``amqp://user:password@host:5672/vhost`` (or ``amqps://``); query
      parameters other than the options below go to the client (e.g. ``heartbeat``).
    - ``exchange``: the exchange name (default ``esrc``). With ``declare=True`` (the
      default) it is declared as a durable topic exchange on start; with
      ``declare=False`` it must already exist. An exchange that is missing then, that
      exists with another type or durability, or that the user may not declare makes
      opening raise :class:`~esrc_core.errors.BackendConfigError`.
    - ``routing``: the routing key rule (:data:`~esrc_faststream.headers.RoutingRule`),
      default ``"{aggregate_type}.{event_name}"``.
    - ``persistent``: delivery mode 2, so queued messages survive a broker restart
      (default ``True``).
    - ``timeout``, ``max_in_flight``: see
      :class:`~esrc_faststream.publisher.AsyncBrokerPublisher`.

    Every message has ``message_id`` set to the event's message id, ``correlation_id``
    to the event's ``correlation_id`` metadata (:mod:`esrc_core.correlation`; the
    message id when it has none or it is over 255 bytes), ``type`` set to the event
    name, the esrc headers, and the raw event bytes as its body. Messages are published
    with ``mandatory=False``: an event no queue is bound for is confirmed and dropped by
    RabbitMQ, as with any topic exchange.

    All messages go through one channel, so RabbitMQ routes them in publish order;
    confirmations are awaited in that order too.
    """

    broker = "RabbitMQ"

    def __init__(
        self,
        url: str,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        declare: bool = True,
        routing: RoutingRule = DEFAULT_ROUTING,
        persistent: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        check_server_url(url, schemes=SCHEMES, broker=self.broker)
        if not exchange:
            raise BackendConfigError(
                f"open {self.broker} publisher {mask_url(url)!r}: the exchange must be a "
                "non-empty name"
            )
        check_routing_rule(routing, option="routing", where=mask_url(url))
        self.exchange = exchange
        self.declare = declare
        self.routing = routing
        self.persistent = persistent
        self._broker: RabbitBroker | None = None
        self._channel: AbstractRobustChannel | None = None
        self._batch_channel: aiormq.abc.AbstractChannel | None = None
        self._exchange = RabbitExchange(
            exchange, type=ExchangeType.TOPIC, durable=True, declare=declare
        )
        super().__init__(url, timeout=timeout, max_in_flight=max_in_flight)

    async def _start(self) -> None:
        self._broker = RabbitBroker(
            self.url, timeout=self.timeout, fail_fast=True, logger=None, app_id="esrc"
        )
        connection = await self._broker.connect()
        try:
            await self._broker.declare_exchange(self._exchange)
        except _REFUSED_SETUP as err:
            raise BackendConfigError(self._refused_setup(err)) from err
        self._channel = await connection.channel(publisher_confirms=True)

    def _refused_setup(self, err: aiormq.exceptions.AMQPChannelError) -> str:
        where = f"open {self.broker} publisher {self.masked_url!r}: exchange {self.exchange!r}"
        if isinstance(err, aiormq.exceptions.ChannelNotFoundEntity):
            return f"{where} does not exist; declare it, or open with declare=true"
        if isinstance(err, aiormq.exceptions.ChannelPreconditionFailed):
            return (
                f"{where} exists with another type or durability than a durable topic "
                f"exchange ({err}); delete it, or name another exchange"
            )
        return f"{where}: access refused ({err}); grant the user configure permission"

    async def _stop(self) -> None:
        if self._broker is not None:
            broker, self._broker, self._channel = self._broker, None, None
            await broker.stop()

    async def _publish_all(self, events: Sequence[RelayEvent]) -> None:
        # The whole batch goes through the AMQP channel open when it starts. The client
        # reconnects a lost connection by itself and restores its channels at once: an
        # event sent on the restored channel could then overtake an earlier one that
        # failed on the lost one. A channel taken here is never restored, so after a
        # loss every later event of the batch fails too, and the relay resends in order.
        if self._channel is None:
            raise RuntimeError("the RabbitMQ connection is closed")
        self._batch_channel = await asyncio.wait_for(
            self._channel.get_underlay_channel(), self.timeout
        )
        try:
            await super()._publish_all(events)
        finally:
            self._batch_channel = None

    async def _send(self, event: RelayEvent) -> asyncio.Future[Any]:
        channel = self._batch_channel
        if channel is None or channel.is_closed:
            raise RuntimeError("the RabbitMQ channel is closed")
        routing_key = route(self.routing, event)
        # Refused here, before the publish task exists, so no later event is sent.
        for what, value in (("routing key", routing_key), ("message id", event.message_id)):
            if len(value.encode()) > MAX_SHORT_STRING:
                raise ValueError(
                    f"{what} {value[:40]!r}... is longer than {MAX_SHORT_STRING} bytes"
                )
        message = Message(
            event.event.data,
            headers=dict(relay_headers(event)),
            content_type="application/octet-stream",
            delivery_mode=DeliveryMode.PERSISTENT
            if self.persistent
            else DeliveryMode.NOT_PERSISTENT,
            message_id=event.message_id,
            correlation_id=_correlation(event),
            type=event.event.name,
            app_id="esrc",
        )
        # Tasks start in creation order on this loop and take the channel's write lock
        # first come, first served, so RabbitMQ receives the messages in this order.
        return asyncio.ensure_future(
            channel.basic_publish(
                message.body,
                exchange=self.exchange,
                routing_key=routing_key,
                properties=message.properties,
                mandatory=False,
                timeout=self.timeout,
            )
        )
