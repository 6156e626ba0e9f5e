"""Entry point of the ``rabbitmq`` publisher: registers ``amqp://`` and ``amqps://``.

Light on purpose: the client libraries are imported only when a publisher is opened.
"""

from __future__ import annotations

from typing import Any

from esrc_core.plugins import Backend, hookimpl
from esrc_faststream.backends import open_broker_publisher, publisher_backend
from esrc_faststream.options import Converter, flag

__all__ = ["esrc_publisher_backends", "open_publisher"]

_OPTIONS: dict[str, Converter] = {
    "exchange": str,
    "declare": flag,
    "routing": str,
    "persistent": flag,
    "timeout": float,
    "max_in_flight": int,
}


def open_publisher(url: str, **options: Any) -> Any:
    """Open a :class:`~esrc_rabbitmq.publisher.RabbitPublisher` for ``url``; options
    come from the query string (``?exchange=orders&timeout=5``) and ``options``."""
    return open_broker_publisher(
        url,
        options,
        publisher="esrc_rabbitmq.publisher:RabbitPublisher",
        known=_OPTIONS,
        broker="RabbitMQ",
        distribution="esrc-rabbitmq",
    )


@hookimpl
def esrc_publisher_backends() -> list[Backend]:
    """The RabbitMQ publisher."""
    return [
        publisher_backend(
            name="rabbitmq",
            schemes=("amqp", "amqps"),
            factory=open_publisher,
            description="RabbitMQ topic exchange with publisher confirms (amqp://user@host/vhost)",
            distribution="esrc-rabbitmq",
        )
    ]
