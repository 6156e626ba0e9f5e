"""Connecting nats-py for the destination and the reader (the publisher connects
with settings of its own)."""

from __future__ import annotations

from nats.aio.client import Client

from esrc_nats.publisher import servers

__all__ = ["connect"]


async def connect(url: str, *, timeout: float) -> Client:
    """A nats-py client connected to the servers of ``url`` that fails at once when it
    cannot connect, and does not reconnect."""
    import nats

    return await nats.connect(
        servers(url),
        connect_timeout=max(1, round(timeout)),
        allow_reconnect=False,
        max_reconnect_attempts=1,  # else the first connect keeps trying
        error_cb=_ignore_errors,
    )


async def _ignore_errors(err: Exception) -> None:
    """nats-py reports connection errors to a callback (and logs them with a traceback
    by default); the caller gets the exception from ``connect`` anyway."""
