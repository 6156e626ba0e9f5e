"""Entry point of the ``rabbitmq`` publisher: registers ``amqp://`` and ``amqps://``.

Light on purpose: the client libraries are imported only when a publisher is opened.
"""

from __future__ import annotations

from typing import Any

from esrc_core.errors import BackendUnavailableError
from esrc_core.plugins import Backend, Capability, hookimpl
from esrc_faststream.options import Converter, flag, split_options

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
    try:
        from esrc_rabbitmq.publisher import RabbitPublisher
    except ImportError as err:
        raise BackendUnavailableError(
            f"the RabbitMQ publisher cannot import {err.name or err}; "
            "install it with: pip install esrc-rabbitmq"
        ) from err
    broker_url, merged = split_options(url, _OPTIONS, options)
    return RabbitPublisher(broker_url, **merged)


@hookimpl
def esrc_publisher_backends() -> list[Backend]:
    """The RabbitMQ publisher."""
    return [
        Backend(
            name="rabbitmq",
            kind="publisher",
            schemes=("amqp", "amqps"),
            factory=open_publisher,
            capabilities=frozenset({Capability.BATCH}),
            description="RabbitMQ topic exchange with publisher confirms (amqp://user@host/vhost)",
            install_hint="pip install esrc-rabbitmq",
        )
    ]
