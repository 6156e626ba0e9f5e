"""The ``esrc`` command line: ``esrc plugins``, ``esrc demo``, ``esrc migrate``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from esrc_core.errors import EsrcError
from esrc_core.plugins import plugins

__all__ = ["main"]


def _plugins(_: argparse.Namespace) -> int:
    # Load problems are part of this command's output; do not log them a second time.
    logging.getLogger("esrc.plugins").setLevel(logging.ERROR)
    loaded = plugins()
    rows = [("kind", "name", "distribution", "version", "schemes", "capabilities")]
    for b in loaded.backends():
        rows.append(
            (
                b.kind,
                b.name,
                b.distribution or "-",
                b.version or "-",
                ", ".join(b.schemes),
                ", ".join(sorted(b.capabilities)) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for problem in loaded.problems:
        print(
            f"failed to load plugin {problem.plugin} ({problem.distribution or '?'}): "
            f"{problem.error}"
        )
    return 0


def _default_demo_url() -> str:
    schemes = {s for b in plugins().backends("store") for s in b.schemes}
    return "sqlite:///esrc-demo.db" if "sqlite" in schemes else "memory://"


def _demo(args: argparse.Namespace) -> int:
    from esrc_core.demo import run

    run(args.store or _default_demo_url())
    return 0


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def _migrate(args: argparse.Namespace) -> int:
    from esrc_core.migrations import Migratable
    from esrc_core.plugins import open_event_store
    from esrc_core.urls import mask_url

    store = open_event_store(args.url, **dict(args.option))
    try:
        if not isinstance(store, Migratable):
            raise EsrcError(f"the store for {mask_url(args.url)} has no schema to migrate")
        store.migrate()
    finally:
        store.close()
    print(f"esrc migrate: {mask_url(args.url)} is up to date")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``esrc`` command; returns the exit status. Errors esrc raises on purpose
    print as one line on stderr with status 1."""
    parser = argparse.ArgumentParser(prog="esrc", description="esrc event sourcing tools")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("plugins", help="list installed backends and load errors")
    p.set_defaults(run=_plugins)
    p = commands.add_parser("demo", help="save, reload, update and relay an aggregate")
    p.add_argument("--store", help="event store URL (default: sqlite file, else memory://)")
    p.set_defaults(run=_demo)
    p = commands.add_parser("migrate", help="create or upgrade a store's tables (idempotent)")
    p.add_argument("url", help="event store URL, e.g. postgresql+psycopg://user@host/db")
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        type=_option,
        metavar="KEY=VALUE",
        help="a backend option, e.g. -o table_prefix=app_ (repeatable)",
    )
    p.set_defaults(run=_migrate)
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except EsrcError as err:
        print(f"esrc {args.command}: {err}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
