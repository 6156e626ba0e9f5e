"""``esrc demo``: the demonstration of :mod:`esrc_core.demo` on a store of the user's
choice, or on the first of :data:`DEFAULT_STORES` an installed backend opens."""

from __future__ import annotations

import argparse
from types import MappingProxyType

from esrc_core.cli._arguments import STORE_ENVIRONMENT
from esrc_core.cli._command import Command
from esrc_core.demo import run
from esrc_core.errors import UnknownBackendError
from esrc_core.plugins import plugins

__all__ = ["COMMANDS", "DEFAULT_STORES", "default_store"]

DEFAULT_STORES = ("sqlite:///esrc-demo.db", "memory://")
"""Where ``esrc demo`` keeps its events without ``--store``, in order of preference:
the first URL an installed store backend claims. A file, when a backend can write one,
so that running the demo again shows the relay resuming."""


def default_store() -> str:
    """The first of :data:`DEFAULT_STORES` an installed store backend claims (the last
    one when none does, for the error to name)."""
    registry = plugins()
    for url in DEFAULT_STORES:
        try:
            registry.resolve(url, "store")
        except UnknownBackendError:
            continue
        return url
    return DEFAULT_STORES[-1]


def _demo(args: argparse.Namespace) -> int:
    run(args.store or default_store())
    return 0


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        help="event store URL (default: sqlite file, else memory://; env ESRC_STORE_URL)",
    )


COMMANDS = (
    Command(
        "demo",
        "save, reload, update and relay an aggregate",
        _demo_arguments,
        _demo,
        MappingProxyType({"--store": STORE_ENVIRONMENT["--store"]}),
        "Save an account aggregate, reload it, update it with update_by_id, and relay\n"
        "its events in order through the in-memory publisher. Without --store, on an\n"
        "SQLite file in the working directory (esrc-demo.db), else in memory.",
    ),
)
"""``esrc demo``."""
