"""Entry point of the ``nats`` publisher: registers ``nats://`` (JetStream).

Light on purpose: the client library is imported only when a publisher is opened.
"""

from __future__ import annotations

from esrc_core.plugins import Backend, hookimpl
from esrc_faststream.backends import BrokerPublisherSpec
from esrc_faststream.options import Converter, flag

__all__ = ["SPEC", "esrc_publisher_backends"]


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


SPEC = BrokerPublisherSpec(
    publisher="esrc_nats.publisher:NatsPublisher",
    known=_OPTIONS,
    broker="NATS",
    distribution="esrc-nats",
)
"""How the publisher is opened: ``SPEC.open(url, options)``, or its async face with
``await SPEC.open_async(url, options)``; options come from the URL's query string and
``options``."""


@hookimpl
def esrc_publisher_backends() -> list[Backend]:
    """The NATS JetStream publisher."""
    return [
        SPEC.backend(
            name="nats",
            schemes=("nats",),
            description="NATS JetStream stream, deduplicated by Nats-Msg-Id (nats://host:4222)",
        )
    ]
