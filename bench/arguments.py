"""Command-line parts both benchmark commands (``python -m bench`` and ``python -m bench
relay``) share: argument types, the result file options, and progress lines."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["RESULTS_DIR", "add_results_options", "name_list", "positive", "progress"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""Where result files go unless ``--results-dir`` says otherwise (git-ignored)."""


def positive(text: str) -> int:
    """A whole number of 1 or more; ``ArgumentTypeError`` otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def name_list(known: Sequence[str], what: str) -> Callable[[str], tuple[str, ...]]:
    """An argument type for a comma-separated list of ``what`` (e.g. ``"backend(s)"``)
    from ``known``: lower-cased, repeats dropped, in the order given. An unknown or
    empty list raises ``ArgumentTypeError`` naming the choices."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(known)}"
            )
        return names

    return parse


def add_results_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--results-dir`` (default :data:`RESULTS_DIR`) and ``--no-save``."""
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="directory of the JSON result file (default: bench/results)",
    )
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON file")


def progress(name: str) -> Callable[[str], None]:
    """A function that prints a progress line about ``name`` to stderr."""

    def say(message: str) -> None:
        print(f"[{name}] {message}", file=sys.stderr, flush=True)

    return say
