"""Entry point of the ``nats`` publisher: registers ``nats://`` (JetStream).

Light on purpose: the client library is imported only when a publisher is opened.
"""

from __future__ import annotations

from typing import Any

from esrc_core.capabilities import Capability
from esrc_core.plugins import Backend, hookimpl
from esrc_faststream.backends import BrokerPublisherSpec
from esrc_faststream.options import Converter, flag

__all__ = ["SPEC", "esrc_publisher_backends", "esrc_store_backends", "open_store"]


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


def open_store(url: str, **options: Any) -> Any:
    """Open the JetStream event store of ``nats://host:port?stream=...&prefix=...``
    (see :class:`esrc_nats.store.NatsEventStore`)."""
    from esrc_nats.store import NatsEventStore

    return NatsEventStore(url, **options)


@hookimpl
def esrc_store_backends() -> list[Backend]:
    """The NATS JetStream event store (the same ``nats://`` scheme as the publisher:
    stores and publishers are looked up apart)."""
    return [
        Backend(
            name="nats",
            kind="store",
            schemes=("nats",),
            factory=open_store,
            capabilities=frozenset(
                {
                    Capability.SNAPSHOTS,
                    Capability.PERSISTENT,
                    Capability.OUTBOX,
                    Capability.WAIT,
                    Capability.READ_AHEAD,
                    Capability.RELAY_LOCK,
                    Capability.INSPECT,
                    Capability.UNITS_OF_WORK,
                    Capability.DELETE_STREAMS,
                    Capability.STREAMING,
                    Capability.THREADS,
                }
            ),
            description="NATS JetStream stream, a subject per aggregate (nats://host:4222)",
            inspect_options={"create": "false"},
        )
    ]
