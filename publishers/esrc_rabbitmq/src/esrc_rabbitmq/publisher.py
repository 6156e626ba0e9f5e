"""The RabbitMQ publisher: FastStream's ``RabbitBroker`` with publisher confirms, a
topic exchange and persistent messages."""

from __future__ import annotations

import asyncio
from typing import Any

from esrc_core.relay import RelayEvent
from esrc_faststream.headers import RoutingRule, relay_headers, route
from esrc_faststream.publisher import DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT, AsyncBrokerPublisher
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange

__all__ = ["DEFAULT_EXCHANGE", "DEFAULT_ROUTING", "MAX_SHORT_STRING", "RabbitPublisher"]

DEFAULT_EXCHANGE = "esrc"
"""The topic exchange events go to unless ``exchange=`` says otherwise."""
DEFAULT_ROUTING = "{aggregate_type}.{event_name}"
"""The default routing key rule, e.g. ``Account.MoneyDeposited``."""
MAX_SHORT_STRING = 255
"""AMQP's limit on a routing key or message id, in bytes."""


class RabbitPublisher(AsyncBrokerPublisher):
    """Publishes relayed events to a RabbitMQ topic exchange and waits for each
    publisher confirm.

    - ``url``: ``amqp://user:password@host:5672/vhost`` (or ``amqps://``); query
      parameters other than the options below go to the client (e.g. ``heartbeat``).
    - ``exchange``: the exchange name (default ``esrc``). With ``declare=True`` (the
      default) it is declared as a durable topic exchange on start; with
      ``declare=False`` it must already exist, or opening fails.
    - ``routing``: the routing key rule (:data:`~esrc_faststream.headers.RoutingRule`),
      default ``"{aggregate_type}.{event_name}"``.
    - ``persistent``: delivery mode 2, so queued messages survive a broker restart
      (default ``True``).
    - ``timeout``, ``max_in_flight``: see
      :class:`~esrc_faststream.publisher.AsyncBrokerPublisher`.

    Every message has ``message_id`` and ``correlation_id`` set to the event's message
    id, ``type`` set to the event name, the esrc headers, and the raw event bytes as its
    body. Messages are published with ``mandatory=False``: an event no queue is bound
    for is confirmed and dropped by RabbitMQ, as with any topic exchange.

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
        if not exchange:
            raise ValueError("exchange must be a non-empty name")
        self.exchange = exchange
        self.declare = declare
        self.routing = routing
        self.persistent = persistent
        self._broker: RabbitBroker | None = None
        self._exchange = RabbitExchange(
            exchange, type=ExchangeType.TOPIC, durable=True, declare=declare
        )
        super().__init__(url, timeout=timeout, max_in_flight=max_in_flight)

    async def _start(self) -> None:
        self._broker = RabbitBroker(
            self.url, timeout=self.timeout, fail_fast=True, logger=None, app_id="esrc"
        )
        await self._broker.connect()
        await self._broker.declare_exchange(self._exchange)

    async def _stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.stop()

    async def _send(self, event: RelayEvent) -> asyncio.Future[Any]:
        if self._broker is None:
            raise RuntimeError("the RabbitMQ connection is closed")
        routing_key = route(self.routing, event)
        # Refused here, before the publish task exists, so no later event is sent.
        for what, value in (("routing key", routing_key), ("message id", event.message_id)):
            if len(value.encode()) > MAX_SHORT_STRING:
                raise ValueError(
                    f"{what} {value[:40]!r}... is longer than {MAX_SHORT_STRING} bytes"
                )
        # Tasks start in creation order on this loop, and the client writes each
        # publish under a first-come first-served channel lock, so RabbitMQ receives
        # the messages in the order they are sent here.
        return asyncio.ensure_future(
            self._broker.publish(
                event.event.data,
                exchange=self._exchange,
                routing_key=routing_key,
                mandatory=False,
                persist=self.persistent,
                timeout=self.timeout,
                headers=dict(relay_headers(event)),
                message_id=event.message_id,
                correlation_id=event.message_id,
                message_type=event.event.name,
                content_type="application/octet-stream",
            )
        )
