"""``main``: parse the ``esrc`` command line, run the command, and turn how it ended
into the exit status. This module is the one place that decides exit statuses:

====  =========================================================================
0     the command did what it was asked
1     the operation was tried and failed: an :class:`~esrc_core.errors.EsrcError`
      such as a missing stream, a server that cannot be reached, a relay lock
      not acquired
2     the command cannot work as given, and no retry will change that: a command
      line argparse rejects, a :class:`UsageError`, and the configuration errors
      in :data:`~esrc_core.errors.CONFIGURATION_ERRORS` (a bad URL or option, no backend for the
      scheme, a missing driver, a capability the backend does not offer)
130   interrupted (a second Ctrl-C)
====  =========================================================================

Failures print one line on standard error, ``esrc COMMAND: message``, without a
traceback; a URL given on the command line appears in it with its password masked.
Anything else a command raises is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from esrc_core.cli._command import UsageError
from esrc_core.cli._registry import build_parser
from esrc_core.errors import (
    CONFIGURATION_ERRORS,
    EsrcError,
)
from esrc_core.urls import mask_url

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "exit_status",
    "main",
]

EXIT_OK = 0
"""The command did what it was asked."""
EXIT_FAILED = 1
"""The operation was tried and failed."""
EXIT_USAGE = 2
"""The command cannot work as given: fix the command line, a URL, an option or the
installation."""
EXIT_INTERRUPTED = 130
"""Interrupted by Ctrl-C (``KeyboardInterrupt``)."""


def exit_status(error: EsrcError) -> int:
    """The exit status for a command that raised ``error``: :data:`EXIT_USAGE` for
    the :data:`~esrc_core.errors.CONFIGURATION_ERRORS`, else :data:`EXIT_FAILED`."""
    return EXIT_USAGE if isinstance(error, CONFIGURATION_ERRORS) else EXIT_FAILED


def _masked(text: str, arguments: Sequence[str]) -> str:
    """``text`` on one line, with each URL of ``arguments`` in it password-masked."""
    line = " ".join(text.split())
    for argument in arguments:
        value = argument.partition("=")[2] if argument.startswith("-") else argument
        if "://" in value and (masked := mask_url(value)) != value:
            line = line.replace(value, masked)
    return line


def _code(exiting: SystemExit) -> int:
    if exiting.code is None:
        return EXIT_OK
    return exiting.code if isinstance(exiting.code, int) else EXIT_FAILED


def _run(args: argparse.Namespace, arguments: Sequence[str]) -> int:
    try:
        status: int = args.run(args)
    except UsageError as err:
        parser: argparse.ArgumentParser = args.command_parser
        parser.error(str(err))  # prints the usage; raises SystemExit(2)
    except EsrcError as err:
        print(f"esrc {args.command}: {_masked(str(err), arguments)}", file=sys.stderr)
        return exit_status(err)
    except KeyboardInterrupt:
        print(f"esrc {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``esrc`` command with ``argv`` (default: the process's arguments) and
    return its exit status: 0 when it did what it was asked, 1 when the operation
    failed (an :class:`~esrc_core.errors.EsrcError`), 2 for a usage or configuration
    error (a command line that does not parse, a bad URL or option, no backend for the
    URL, a missing driver or capability), 130 when interrupted. A failure prints one
    line on standard error, passwords masked. ``--help`` and usage errors return their
    status too, instead of raising ``SystemExit``."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        return _run(build_parser().parse_args(arguments), arguments)
    except SystemExit as exiting:  # argparse printed the usage or the help
        return _code(exiting)
