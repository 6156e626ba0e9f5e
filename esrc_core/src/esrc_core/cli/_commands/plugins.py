"""``esrc plugins``: the installed backends (with the APIs they offer: ``sync``, or
``sync, async`` for a backend with an ``async_factory``) and the plugins that failed to
load."""

from __future__ import annotations

import argparse
import logging

from esrc_core.cli._command import Command
from esrc_core.cli.console import render_table
from esrc_core.plugins import plugins

__all__ = ["COMMANDS"]

_COLUMNS = ("kind", "name", "distribution", "version", "apis", "schemes", "capabilities")


def _plugins(_: argparse.Namespace) -> int:
    # Load problems are part of this command's output; do not log them a second time.
    logging.getLogger("esrc.plugins").setLevel(logging.ERROR)
    loaded = plugins()
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
        for b in loaded.backends()
    ]
    for line in render_table(_COLUMNS, rows):
        print(line)
    for problem in loaded.problems:
        print(
            f"failed to load plugin {problem.plugin} ({problem.distribution or '?'}): "
            f"{problem.error}"
        )
    return 0


def _no_arguments(_: argparse.ArgumentParser) -> None:
    pass


COMMANDS = (Command("plugins", "list installed backends and load errors", _no_arguments, _plugins),)
"""``esrc plugins``."""
