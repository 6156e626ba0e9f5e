"""``esrc console``: what the command runs once esrc-core has parsed its line
(esrc-core finds :func:`serve_console` through the ``esrc.console`` entry point)."""

from __future__ import annotations

import ipaddress
from typing import TextIO

import uvicorn
from esrc_core.errors import BackendConfigError
from esrc_core.events import EventRegistry
from esrc_core.store import EventStore
from esrc_core.urls import mask_url

from esrc_console._app import create_app

__all__ = ["LOCAL_HOSTS", "serve_console"]

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Addresses only this machine reaches: the console serves on them without a token."""


def _local(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_console(
    store: EventStore,
    url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    refresh_seconds: float = 5.0,
    registry: EventRegistry | None = None,
    out: TextIO | None = None,
) -> int:
    """Serve the console on ``host:port`` until interrupted, on ``store`` (opened for
    inspection by the caller, who closes it); ``url`` is what the page and the log
    show of it, password masked.

    Raises :class:`~esrc_core.errors.BackendConfigError` when ``host`` is not a
    loopback address and no ``token`` is given (the console would show the store to
    anyone who reaches the port). Returns 0.
    """
    if not _local(host) and not token:
        raise BackendConfigError(
            f"refusing to serve the console on {host}: another host than 127.0.0.1 "
            "needs --token TOKEN (every request must then carry it)"
        )
    app = create_app(
        store,
        token=token or None,
        refresh_seconds=refresh_seconds,
        registry=registry,
        store_label=mask_url(url),
    )
    shown = f"[{host}]" if ":" in host else host
    note = " (give ?token=TOKEN once, or Authorization: Bearer TOKEN)" if token else ""
    line = f"esrc console: {mask_url(url)} on http://{shown}:{port}/{note}\n"
    if out is not None:
        out.write(line)
        out.flush()
    else:
        print(line, end="", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0
