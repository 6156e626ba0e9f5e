"""Argument types and arguments that several ``esrc`` commands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from types import MappingProxyType

from esrc_core.cli._command import UsageError

__all__ = [
    "STORE_ENVIRONMENT",
    "option",
    "options_argument",
    "output_arguments",
    "seconds",
    "store_arguments",
    "store_url",
    "whole",
]

STORE_ENVIRONMENT = MappingProxyType(
    {"--store": "ESRC_STORE_URL", "--store-option": "ESRC_STORE_OPTIONS"}
)
"""The environment variables of every command that opens a store: its URL when the
command line gives none, and store options (``KEY=VALUE`` separated by whitespace)
under the command line's own ``-o``."""


def option(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as ``(KEY, VALUE)``; ``KEY`` must be an identifier."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def whole(minimum: int) -> Callable[[str], int]:
    """An argument type: a whole number no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value

    return parse


def seconds(text: str) -> float:
    """An argument type: a number of seconds above 0 and below a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 86400, got {text}")
    return value


def options_argument(parser: argparse.ArgumentParser, flag: str = "--option") -> None:
    """Add ``-o``/``flag KEY=VALUE`` (repeatable): store options, a list of pairs
    under the ``store_option`` destination (``--option`` is accepted too, the name
    earlier releases used)."""
    parser.add_argument(
        "-o",
        flag,
        *(["--option"] if flag != "--option" else []),
        dest="store_option",
        action="append",
        default=[],
        type=option,
        metavar="KEY=VALUE",
        help="a store option, e.g. -o table_prefix=app_ (repeatable)",
    )


def store_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the store URL, ``--store URL`` (read with :func:`store_url`), and its
    options, ``-o``/``--store-option KEY=VALUE`` (``store_option``, a list of pairs).

    The URL may also be given as the first argument after the command's name, as
    earlier releases took it (``esrc streams sqlite:///x.db``):
    :func:`~esrc_core.cli._main.main` turns it into ``--store``.
    """
    parser.add_argument(
        "--store",
        metavar="URL",
        help="event store URL, e.g. sqlite:///events.db (env ESRC_STORE_URL)",
    )
    options_argument(parser, "--store-option")


def store_url(args: argparse.Namespace) -> str:
    """The store URL of a command line built with :func:`store_arguments`. Raises
    :class:`~esrc_core.cli._command.UsageError` when none is given."""
    url: str | None = args.store
    if not url:
        raise UsageError("no store URL: give --store URL or set ESRC_STORE_URL")
    return url


def output_arguments(parser: argparse.ArgumentParser, *, json_help: str | None) -> None:
    """Add ``-q``/``--quiet`` (no progress, notes or summary lines: the data alone, and
    errors) and, when ``json_help`` says what it prints, ``--json``."""
    if json_help is not None:
        parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only the data and errors: no progress, notes or summary lines",
    )
