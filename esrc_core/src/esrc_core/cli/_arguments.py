"""Argument types and arguments that several ``esrc`` commands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["option", "options_argument", "seconds", "store_arguments", "whole"]


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
    """Add ``-o``/``flag KEY=VALUE`` (repeatable): store options, a list of pairs."""
    parser.add_argument(
        "-o",
        flag,
        action="append",
        default=[],
        type=option,
        metavar="KEY=VALUE",
        help="a store option, e.g. -o table_prefix=app_ (repeatable)",
    )


def store_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the store URL (``url``) and its options (``option``)."""
    parser.add_argument("url", help="event store URL, e.g. sqlite:///events.db")
    options_argument(parser)
