"""Entry point of the ``rabbitmq`` publisher: registers ``amqp://`` and ``amqps://``.

Light on purpose: the client libraries are imported only when a publisher is opened.
"""

from __future__ import annotations

from esrc_core.plugins import Backend, hookimpl
from esrc_faststream.backends import BrokerPublisherSpec
from esrc_faststream.options import Converter, flag

__all__ = ["SPEC", "esrc_publisher_backends"]

_OPTIONS: dict[str, Converter] = {
    "exchange": str,
    "declare": flag,
    "routing": str,
    "persistent": flag,
    "timeout": float,
    "max_in_flight": int,
}


SPEC = BrokerPublisherSpec(
    publisher="esrc_rabbitmq.publisher:RabbitPublisher",
    known=_OPTIONS,
    broker="RabbitMQ",
    distribution="esrc-rabbitmq",
)
"""How the publisher is opened: ``SPEC.open(url, options)``, or its async face with
``await SPEC.open_async(url, options)``; options come from the URL's query string and
``options``."""


@hookimpl
def esrc_publisher_backends() -> list[Backend]:
    """The RabbitMQ publisher."""
    return [
        SPEC.backend(
            name="rabbitmq",
            schemes=("amqp", "amqps"),
            description="RabbitMQ topic exchange with publisher confirms (amqp://user@host/vhost)",
        )
    ]
