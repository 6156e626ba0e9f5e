"""``esrc console``: serve the web console (the esrc-console distribution) on a store.

esrc-core does not import the console: it finds the function that serves it through
the ``esrc.console`` entry point group, and says how to install it when it is missing.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
from collections.abc import Callable
from typing import Any

from esrc_core.cli._arguments import STORE_ENVIRONMENT, seconds, store_arguments, store_url, whole
from esrc_core.cli._command import Command, UsageError
from esrc_core.cli._stores import inspectable
from esrc_core.errors import BackendUnavailableError
from esrc_core.events import EventRegistry

__all__ = ["COMMANDS", "CONSOLE_ENTRY_POINT", "INSTALL_HINT", "console_server"]

CONSOLE_ENTRY_POINT = ("esrc.console", "serve")
"""The entry point (group, name) of the function that serves the console."""

INSTALL_HINT = 'pip install "esrc[console]"'
"""How to get the console when it is missing."""


def console_server() -> Callable[..., int]:
    """The installed console's serving function (see ``esrc_console.cli``).

    Raises :class:`~esrc_core.errors.BackendUnavailableError` saying what to install
    when no distribution provides it.
    """
    group, name = CONSOLE_ENTRY_POINT
    found = [e for e in importlib.metadata.entry_points(group=group) if e.name == name]
    if not found:
        raise BackendUnavailableError(
            f"the web console is not installed: {INSTALL_HINT} (or pip install esrc-console)"
        )
    server: Callable[..., int] = found[0].load()
    return server


def _registry(text: str | None) -> EventRegistry | None:
    """The :class:`EventRegistry` named ``MODULE:NAME``; :class:`UsageError` otherwise."""
    if not text:
        return None
    module_name, sep, attribute = text.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"--registry takes MODULE:NAME, got {text!r}")
    try:
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as err:
        raise UsageError(f"--registry {text}: {err}") from err
    if not isinstance(value, EventRegistry):
        raise UsageError(f"--registry {text}: not an EventRegistry ({type(value).__name__})")
    return value


def _console(args: argparse.Namespace) -> int:
    url = store_url(args)
    registry = _registry(args.registry)
    serve = console_server()
    with inspectable(url, dict(args.store_option)) as store:
        return serve(
            store,
            url,
            host=args.host,
            port=args.port,
            token=args.token,
            refresh_seconds=args.refresh,
            registry=registry,
        )


def _console_arguments(parser: argparse.ArgumentParser) -> None:
    store_arguments(parser)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1; any other needs --token)",
    )
    parser.add_argument(
        "--port", type=whole(0), default=8765, help="the port to listen on (default 8765)"
    )
    parser.add_argument(
        "--token",
        help="require this token on every request (Authorization: Bearer, or ?token= once; "
        "env ESRC_CONSOLE_TOKEN)",
    )
    parser.add_argument(
        "--refresh",
        type=seconds,
        default=5.0,
        metavar="SECONDS",
        help="how often the relays page refreshes (default 5)",
    )
    parser.add_argument(
        "--registry",
        metavar="MODULE:NAME",
        help="an EventRegistry to decode payloads with, e.g. financing.events:registry",
    )


COMMANDS = (
    Command(
        "console",
        "serve the read-only web console on a store",
        _console_arguments,
        _console,
        {**STORE_ENVIRONMENT, "--token": "ESRC_CONSOLE_TOKEN"},
        "Serve a read-only web page on a store: streams (filter, search), a stream's\n"
        "events and snapshots, an event's causation chain, relays with live lag charts.\n"
        f"Needs the esrc-console distribution ({INSTALL_HINT}).",
    ),
)
"""``esrc console``."""
