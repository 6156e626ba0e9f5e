"""``esrc plugins``: the installed backends (with the APIs they offer: ``sync``, or
``sync, async`` for a backend with an ``async_factory``) and the plugins that failed to
load."""

from __future__ import annotations

import argparse
import logging
import sys

from esrc_core.cli._command import Command
from esrc_core.cli._json import write_document
from esrc_core.cli.console import render_table
from esrc_core.plugins import plugins

__all__ = ["COMMANDS"]

_COLUMNS = ("kind", "name", "distribution", "version", "apis", "schemes", "capabilities")


def _plugins(args: argparse.Namespace) -> int:
    # Load problems are part of this command's output; do not log them a second time.
    logging.getLogger("esrc.plugins").setLevel(logging.ERROR)
    loaded = plugins()
    backends = loaded.backends()
    if args.json:
        documents = [
            {
                "kind": b.kind,
                "name": b.name,
                "distribution": b.distribution,
                "version": b.version,
                "apis": ["sync", "async"] if b.offers_async else ["sync"],
                "schemes": list(b.schemes),
                "capabilities": sorted(b.capabilities),
            }
            for b in backends
        ]
        problems = [
            {"plugin": p.plugin, "distribution": p.distribution, "error": str(p.error)}
            for p in loaded.problems
        ]
        write_document(sys.stdout, {"backends": documents, "problems": problems})
        return 0
    rows = [
        (
            b.kind,
            b.name,
            b.distribution or "-",
            b.version or "-",
            "sync, async" if b.offers_async else "sync",
            ", ".join(b.schemes),
            ", ".join(sorted(b.capabilities)) or "-",
        )
        for b in backends
    ]
    for line in render_table(_COLUMNS, rows):
        print(line)
    for problem in loaded.problems:
        print(
            f"failed to load plugin {problem.plugin} ({problem.distribution or '?'}): "
            f"{problem.error}"
        )
    return 0


def _plugins_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help='print one JSON document: {"backends": [...], "problems": [...]}',
    )


COMMANDS = (
    Command(
        "plugins",
        "list installed backends and load errors",
        _plugins_arguments,
        _plugins,
        description="List the installed store and publisher backends: the distribution that\n"
        "provides each, the APIs it offers (sync, async), the URL schemes it claims and\n"
        "its capabilities; then the plugins that failed to load, with their errors.",
    ),
)
"""``esrc plugins``."""
