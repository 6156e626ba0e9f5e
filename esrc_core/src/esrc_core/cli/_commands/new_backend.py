"""``esrc new-backend``: write a new backend distribution, ready to fill in and test."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from esrc_core.cli._command import Command, UsageError
from esrc_core.cli._skeleton import names_for, render

__all__ = ["COMMANDS", "new_backend"]


def new_backend(
    name: str, directory: Path, *, scheme: str | None = None, out: TextIO | None = None
) -> Path:
    """Write the distribution ``esrc-NAME`` into ``directory`` and return its path;
    list the files written on ``out`` (default: standard output).

    Raises ``ValueError`` for a name or scheme that cannot be used, and
    ``FileExistsError`` when the distribution's directory exists already (nothing is
    overwritten).
    """
    names = names_for(name, scheme)
    target = directory / names.distribution
    files = render(names)
    target.mkdir(parents=True, exist_ok=False)
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    out = out or sys.stdout
    out.write(f"esrc new-backend: wrote {target}/ for {names.scheme}:// URLs\n")
    out.writelines(f"  {relative}\n" for relative in sorted(files))
    out.write(
        f"Next: fill in src/{names.package}/store.py, declare its capabilities in "
        f"src/{names.package}/plugin.py, and run the testkit: cd {target} && uv run pytest\n"
    )
    return target


def _new_backend(args: argparse.Namespace) -> int:
    try:
        new_backend(args.name, Path(args.dir), scheme=args.scheme)
    except ValueError as err:
        raise UsageError(str(err)) from None
    except FileExistsError as err:
        raise UsageError(f"{err.filename} exists already; choose another --dir or name") from None
    return 0


def _new_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the backend's name, such as redis (gives esrc-redis)")
    parser.add_argument(
        "--dir",
        default=".",
        metavar="PATH",
        help="where to write the esrc-NAME directory (default: the working directory)",
    )
    parser.add_argument(
        "--scheme", help="the URL scheme the backend claims (default: NAME, '_' as '-')"
    )


COMMANDS = (
    Command(
        "new-backend",
        "write a new backend distribution to fill in",
        _new_backend_arguments,
        _new_backend,
        description=(
            "Write esrc-NAME/, a backend distribution ready to fill in: pyproject.toml with\n"
            "the esrc entry point, a plugin module, a store whose methods raise\n"
            "NotImplementedError under the contract they must keep, and a test module\n"
            "that runs esrc_testkit's acceptance suite against NAME:// URLs. An existing\n"
            "directory is never overwritten (exit status 2)."
        ),
    ),
)
"""``esrc new-backend``."""
