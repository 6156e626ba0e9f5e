"""Entry point of the ``nats`` publisher: registers ``nats://`` (JetStream).

Light on purpose: the client library is imported only when a publisher is opened.
"""

from __future__ import annotations

from typing import Any

from esrc_core.errors import BackendUnavailableError
from esrc_core.plugins import Backend, Capability, hookimpl
from esrc_faststream.options import Converter, flag, split_options

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
    try:
        from esrc_nats.publisher import NatsPublisher
    except ImportError as err:
        raise BackendUnavailableError(
            f"the NATS publisher cannot import {err.name or err}; "
            "install it with: pip install esrc-nats"
        ) from err
    broker_url, merged = split_options(url, _OPTIONS, options)
    return NatsPublisher(broker_url.rstrip("?"), **merged)


@hookimpl
def esrc_publisher_backends() -> list[Backend]:
    """The NATS JetStream publisher."""
    return [
        Backend(
            name="nats",
            kind="publisher",
            schemes=("nats",),
            factory=open_publisher,
            capabilities=frozenset({Capability.BATCH}),
            description="NATS JetStream stream, deduplicated by Nats-Msg-Id (nats://host:4222)",
            install_hint="pip install esrc-nats",
        )
    ]
