"""The registry of ``esrc`` commands.

Each module of :mod:`esrc_core.cli._commands` is one command group and declares its
commands in a module-level ``COMMANDS`` sequence of
:class:`~esrc_core.cli._command.Command`. The parser is built from every module found
there, commands in the order of their names, so a new command is a new module.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import pkgutil
from collections.abc import Sequence

from esrc_core.cli import _commands
from esrc_core.cli._command import Command

__all__ = ["build_parser", "commands"]


def commands() -> list[Command]:
    """Every command the modules of :mod:`esrc_core.cli._commands` declare, by name.

    Raises ``TypeError`` for a module without a ``COMMANDS`` sequence of
    :class:`Command`, and ``ValueError`` for a name two commands share.
    """
    found: dict[str, Command] = {}
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{_commands.__name__}.{info.name}")
        declared = vars(module).get("COMMANDS")
        if not isinstance(declared, Sequence) or not all(isinstance(c, Command) for c in declared):
            raise TypeError(f"{module.__name__} must declare COMMANDS, a sequence of Command")
        for command in declared:
            if command.name in found:
                raise ValueError(f"two commands are named {command.name!r} ({module.__name__})")
            found[command.name] = command
    return [found[name] for name in sorted(found)]


def _version() -> str:
    """The installed version of esrc-core (``unknown`` when it runs from a tree that
    was never installed)."""
    try:
        return importlib.metadata.version("esrc-core")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``esrc`` command line. The parsed arguments name the command
    (``command``), the function that runs it (``run``) and its own parser
    (``command_parser``, for usage errors)."""
    parser = argparse.ArgumentParser(prog="esrc", description="esrc event sourcing tools")
    parser.add_argument(
        "--version", action="version", version=f"esrc {_version()}", help="print the version"
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in commands():
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.arguments(sub)
        sub.set_defaults(run=command.run, command_parser=sub)
    return parser
