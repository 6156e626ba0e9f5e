"""The ``esrc-financing`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from esrc_core import EsrcError
from financing.demo import DEFAULT_WORKDIR, DemoConfig, run_demo
from financing.errors import FinancingError
from financing.pipeline import PipelineError
from financing.read_models import ReadModelError

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    config = DemoConfig(
        store_url=args.store,
        publisher_url=args.publisher,
        read_models_url=args.read_models,
        workdir=args.workdir,
        fresh=args.fresh,
        name=args.name,
        timeout=args.timeout,
    )
    result = run_demo(config)
    return 1 if result.mismatches else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``esrc-financing``; returns the exit status. Errors of the store, brokers,
    read models and domain print as one line on stderr with status 1."""
    parser = argparse.ArgumentParser(
        prog="esrc-financing",
        description="Invoice financing, an event-sourced example application built on esrc",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="run the scripted scenario and print the event store, relay and read models",
        description="Run the scripted scenario: issuers, investors, bids, a rejection, a "
        "reversal and two races, then print the event store, the relay's progress and "
        "the read models. By default everything lives in SQLite files in "
        f"./{DEFAULT_WORKDIR}/, recreated on every run.",
    )
    demo.add_argument(
        "--store",
        metavar="URL",
        help="event store URL, e.g. postgresql+psycopg://user@host/db "
        "(default: sqlite file in the working directory)",
    )
    demo.add_argument(
        "--publisher",
        metavar="URL",
        default="memory://",
        help="memory:// (default), amqp://..., nats://... or redis://...; with a broker, "
        "the choreography and the read models consume from it",
    )
    demo.add_argument(
        "--read-models",
        metavar="URL",
        help="database of the read models (default: sqlite file in the working directory "
        "for a SQLite store, else the store's database)",
    )
    demo.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"directory of the SQLite files (default: ./{DEFAULT_WORKDIR})",
    )
    demo.add_argument(
        "--fresh",
        action="store_true",
        help="drop the demo's tables and delete its broker queues and streams first",
    )
    demo.add_argument(
        "--name",
        default="financing",
        help="prefix of the demo's tables, relay, exchange, streams and queues "
        "(default: financing)",
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the consumers without progress (default: 60)",
    )
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except (EsrcError, FinancingError, ReadModelError, PipelineError, ValueError) as err:
        print(f"esrc-financing {args.command}: {err}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
