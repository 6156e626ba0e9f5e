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
3     ``esrc migrate --check``: a migration is due
130   interrupted (a second Ctrl-C)
141   standard output was closed before the command finished writing
      (``esrc streams URL | head -1``); nothing is printed about it
====  =========================================================================

Failures print one line on standard error, ``esrc COMMAND: message``, without a
traceback; a URL given on the command line appears in it with its password masked.
Anything else a command raises is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from typing import Any

from esrc_core.cli._command import UsageError
from esrc_core.cli._registry import build_parser, commands
from esrc_core.cli._status import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_MIGRATION_DUE,
    EXIT_OK,
    EXIT_PIPE_CLOSED,
    EXIT_USAGE,
)
from esrc_core.errors import (
    CONFIGURATION_ERRORS,
    EsrcError,
)
from esrc_core.urls import mask_url

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_MIGRATION_DUE",
    "EXIT_OK",
    "EXIT_PIPE_CLOSED",
    "EXIT_USAGE",
    "exit_status",
    "from_environment",
    "main",
]


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
    URL, a missing driver or capability), 130 when interrupted, 141 when standard
    output was closed before the command finished writing. A failure prints one
    line on standard error, passwords masked. ``--help`` and usage errors return their
    status too, instead of raising ``SystemExit``."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        arguments = from_environment(_store_first(arguments))
    except ValueError as err:
        print(f"esrc {arguments[0]}: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        try:
            status = _run(build_parser().parse_args(arguments), arguments)
        except SystemExit as exiting:  # argparse printed the usage or the help
            status = _code(exiting)
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_PIPE_CLOSED
    return status


_FLAGS = {
    **dict.fromkeys(("true", "1", "yes", "on"), True),
    **dict.fromkeys(("false", "0", "no", "off"), False),
}


def from_environment(arguments: Sequence[str]) -> list[str]:
    """``arguments`` with what the command takes from the environment added after the
    command's name: each option of its :attr:`Command.environment
    <esrc_core.cli._command.Command.environment>` whose variable is set and not empty,
    unless the command line gives the option itself. The values stay inside the
    process (``ps`` does not show them). A repeatable option's variable holds values
    separated by whitespace (``ESRC_STORE_OPTIONS="table_prefix=app_ schema=shop"``),
    added before the command line's own, so that the command line's value wins for
    each key. Raises ``ValueError`` naming the variable for a value its option refuses
    (a flag takes true/false, yes/no, on/off or 1/0)."""
    arguments = list(arguments)
    if not arguments or arguments[0].startswith("-"):
        return arguments
    command = next((c for c in commands() if c.name == arguments[0]), None)
    if command is None or not command.environment:
        return arguments
    parser = _Recording()
    command.arguments(parser)
    actions = parser.actions
    given = {a.partition("=")[0] for a in arguments[1:] if a.startswith("--")}
    added: list[str] = []
    for option, variable in command.environment.items():
        text = os.environ.get(variable, "").strip()
        action = actions[option]
        if option in parser.repeatable:
            # Repeatable (-o KEY=VALUE): the variable's values come first, so that for
            # each key the command line's value wins.
            for value in text.split():
                _check(action, option, variable, value)
                added.append(f"{option}={value}")
            continue
        if not text or option in given:
            continue
        if action.nargs == 0:  # a flag
            flag = _FLAGS.get(text.lower())
            if flag is None:
                raise ValueError(f"{variable}={text!r}: {option} takes true or false")
            added += [option] if flag else []
            continue
        _check(action, option, variable, text)
        added.append(f"{option}={text}")
    return [arguments[0], *added, *arguments[1:]]


def _store_first(arguments: Sequence[str]) -> list[str]:
    """``arguments`` with a URL given as the first argument after the name of a
    command that takes ``--store`` turned into ``--store=URL`` (``esrc streams
    sqlite:///x.db``, as earlier releases took it). A URL is text with ``://``."""
    arguments = list(arguments)
    if len(arguments) < 2 or "://" not in arguments[1] or arguments[1].startswith("-"):
        return arguments
    command = next((c for c in commands() if c.name == arguments[0]), None)
    if command is None or "--store" not in command.environment:
        return arguments
    return [arguments[0], f"--store={arguments[1]}", *arguments[2:]]


class _Recording(argparse.ArgumentParser):
    """A parser that keeps each option's action, by option string, and which options
    are repeatable (``action="append"``)."""

    def __init__(self) -> None:
        super().__init__(add_help=False)
        self.actions: dict[str, argparse.Action] = {}
        self.repeatable: set[str] = set()

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.actions.update(dict.fromkeys(action.option_strings, action))
        if kwargs.get("action") == "append":
            self.repeatable.update(action.option_strings)
        return action


def _check(action: argparse.Action, option: str, variable: str, text: str) -> None:
    """Raise ``ValueError`` naming ``variable`` when ``option`` refuses ``text``."""
    try:
        value = action.type(text) if callable(action.type) else text
    except (TypeError, ValueError, argparse.ArgumentTypeError) as err:
        raise ValueError(f"{variable}: not a value for {option}: {err}") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ValueError(f"{variable}={text!r}: {option} takes one of {choices}")


def _silence_stdout() -> None:
    """Point standard output at the null device, so that the interpreter's own flush
    at exit does not fail again on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # not a file descriptor (a test's captured output)
