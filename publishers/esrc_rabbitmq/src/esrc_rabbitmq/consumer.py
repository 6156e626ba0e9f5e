"""The read side on RabbitMQ: :func:`subscribe` attaches a
:class:`~esrc_faststream.consumer.Projection` to a FastStream ``RabbitBroker``."""

from __future__ import annotations

from typing import Any

from esrc_faststream.consumer import CurrentMessage, Projection
from faststream.rabbit import Channel, ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue

__all__ = ["subscribe"]


def subscribe(
    broker: RabbitBroker,
    projection: Projection,
    *,
    queue: str,
    exchange: str = "esrc",
    routing_key: str = "#",
    durable: bool = True,
    auto_delete: bool = False,
    prefetch: int = 1,
) -> Any:
    """Subscribe ``projection`` to the events RabbitMQ routes to ``queue``.

    Declares the durable topic ``exchange`` (as the publisher does) and ``queue``
    (durable unless ``durable=False``; deleted with its last consumer if
    ``auto_delete=True``), bound with ``routing_key`` (default: every
    event). Messages are acknowledged after the handler returns and rejected back to
    the queue if it raises. Returns the FastStream subscriber.

    The client runs each delivered message in its own task, so only ``prefetch=1``
    (the default: one unacknowledged message at a time) applies events in queue order;
    a larger prefetch trades that order for throughput.
    """
    subscriber = broker.subscriber(
        RabbitQueue(queue, durable=durable, auto_delete=auto_delete, routing_key=routing_key),
        RabbitExchange(exchange, type=ExchangeType.TOPIC, durable=True),
        channel=Channel(prefetch_count=prefetch),
    )

    async def receive(message: CurrentMessage) -> None:
        raw = message.raw_message
        await projection.handle_message(dict(raw.headers or {}), raw.body)

    return subscriber(receive)
