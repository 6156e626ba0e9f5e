"""Entry point of the ``nats`` publisher: registers ``nats://`` (JetStream).

Light on purpose: the client library is imported only when a publisher is opened.
"""

from __future__ import annotations

from typing import Any

from esrc_core.plugins import Backend, hookimpl
from esrc_faststream.backends import open_broker_publisher, publisher_backend
from esrc_faststream.options import Converter, flag

__all__ = ["esrc_publisher_backends", "open_publisher"]


def _optional_float(text: str) -> float | None:
    return None if text.strip().lower() in {"", "none"} else float(text)


_OPTIONS: dict[str, Converter] = {
    "stream": str,
    "subjects": str,
    "subject": str,
    "create_stream": flag,
    "duplicate_window": _optional_float,
    "timeout": float,
    "max_in_flight": int,
}


def open_publisher(url: str, **options: Any) -> Any:
    """Open a :class:`~esrc_nats.publisher.NatsPublisher` for ``url``; options come from
    the query string (``?stream=ORDERS&subjects=orders.>``) and ``options``."""
    return open_broker_publisher(
        url,
        options,
        publisher="esrc_nats.publisher:NatsPublisher",
        known=_OPTIONS,
        broker="NATS",
        distribution="esrc-nats",
    )


@hookimpl
def esrc_publisher_backends() -> list[Backend]:
    """The NATS JetStream publisher."""
    return [
        publisher_backend(
            name="nats",
            schemes=("nats",),
            factory=open_publisher,
            description="NATS JetStream stream, deduplicated by Nats-Msg-Id (nats://host:4222)",
            distribution="esrc-nats",
        )
    ]
