"""The ``esrc`` command line: ``esrc plugins``, ``esrc demo``, ``esrc migrate``, the
relay process ``esrc relay``, and store inspection: ``esrc streams``, ``esrc events``,
``esrc tail``, ``esrc relays``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

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


def _relay(args: argparse.Namespace) -> int:
    from esrc_core.runner import LockNotAcquiredError, RelayRunner, RelayStatus, log_to_stderr

    log_to_stderr(args.log_level)
    status_file = args.status_file
    if status_file is not None and not os.path.isdir(os.path.dirname(status_file) or "."):
        print(f"esrc relay: no directory for the status file {status_file!r}", file=sys.stderr)
        return 2

    def write_status(status: RelayStatus) -> None:
        status.write(status_file)

    try:
        runner = RelayRunner.from_urls(
            args.store,
            args.publisher,
            store_options=dict(args.store_option),
            name=args.name,
            batch_size=args.batch_size,
            poll_interval=args.poll_interval,
            log_interval=args.log_interval,
            lock_timeout=args.lock_timeout,
            on_status=write_status if status_file is not None else None,
            status_interval=args.status_interval,
        )
        with runner.stop_on_signals():
            runner.run()
    except LockNotAcquiredError:
        raise
    except (EsrcError, ValueError, TypeError) as err:
        # Bad usage: an unknown scheme, a malformed URL or option, a missing driver, a
        # broker or store setup that cannot work (BackendConfigError, raised by the
        # runner at once instead of retried).
        print(f"esrc relay: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    return 0


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 86400, got {text}")
    return value


def _options_argument(p: argparse.ArgumentParser, flag: str = "--option") -> None:
    p.add_argument(
        "-o",
        flag,
        action="append",
        default=[],
        type=_option,
        metavar="KEY=VALUE",
        help="a store option, e.g. -o table_prefix=app_ (repeatable)",
    )


def _store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="event store URL, e.g. sqlite:///events.db")
    _options_argument(p)


def _streams(args: argparse.Namespace) -> int:
    from esrc_core.inspect_commands import list_streams

    return list_streams(
        args.url, aggregate_type=args.type, limit=args.limit, options=dict(args.option)
    )


def _events(args: argparse.Namespace) -> int:
    from esrc_core.inspect_commands import id_candidates, show_events

    try:
        ids = id_candidates(args.id, args.id_type)
    except ValueError as err:
        args.usage(str(err))
    return show_events(
        args.url, args.type, ids, from_version=args.from_version, options=dict(args.option)
    )


def _tail(args: argparse.Namespace) -> int:
    from esrc_core.inspect_commands import tail

    return tail(
        args.url,
        relay=args.relay,
        from_start=args.from_start,
        poll=args.poll,
        options=dict(args.option),
    )


def _relays(args: argparse.Namespace) -> int:
    from esrc_core.inspect_commands import forget_relays, list_relays

    if args.forget:
        return forget_relays(args.url, args.forget, options=dict(args.option))
    return list_relays(args.url, options=dict(args.option))


def _add_relay_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("relay", help="relay events from a store to a broker until stopped")
    p.add_argument("--store", required=True, metavar="URL", help="event store URL")
    p.add_argument("--publisher", required=True, metavar="URL", help="publisher URL")
    p.add_argument("--name", default="default", help="the relay name (default: default)")
    p.add_argument(
        "--batch-size", type=int, default=500, metavar="N", help="events per batch (default 500)"
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=0.5,
        metavar="S",
        help="seconds to wait for new events before looking again (default 0.5)",
    )
    p.add_argument(
        "--log-interval",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds between progress lines (default 10; 0: none)",
    )
    p.add_argument(
        "--lock-timeout",
        type=float,
        metavar="S",
        help="give up after S seconds on standby (default: wait until the lock is free)",
    )
    _options_argument(p, "--store-option")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument(
        "--status-file",
        metavar="PATH",
        help="keep the relay's state in PATH as JSON, replaced atomically on every change",
    )
    p.add_argument(
        "--status-interval",
        type=_seconds,
        default=1.0,
        metavar="S",
        help="while relaying, rewrite the status file every S seconds (default 1)",
    )
    p.set_defaults(run=_relay)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``esrc`` command; returns the exit status. Errors esrc raises on purpose
    print as one line on stderr with status 1; Ctrl-C ends a command with status 130
    and no traceback."""
    parser = argparse.ArgumentParser(prog="esrc", description="esrc event sourcing tools")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("plugins", help="list installed backends and load errors")
    p.set_defaults(run=_plugins)
    p = commands.add_parser("demo", help="save, reload, update and relay an aggregate")
    p.add_argument("--store", help="event store URL (default: sqlite file, else memory://)")
    p.set_defaults(run=_demo)
    p = commands.add_parser("migrate", help="create or upgrade a store's tables (idempotent)")
    _store_arguments(p)
    p.set_defaults(run=_migrate)
    _add_relay_command(commands)
    p = commands.add_parser("streams", help="list streams: type, id, version, last event time")
    _store_arguments(p)
    p.add_argument("--type", help="only streams of this aggregate type")
    p.add_argument("--limit", type=_whole(1), metavar="N", help="at most N streams")
    p.set_defaults(run=_streams)
    p = commands.add_parser("events", help="show one stream's events, data decoded")
    _store_arguments(p)
    p.add_argument("type", help="the aggregate type")
    p.add_argument("id", help="the aggregate id, as text")
    p.add_argument(
        "--from",
        dest="from_version",
        type=_whole(0),
        default=0,
        metavar="N",
        help="only events after version N",
    )
    p.add_argument(
        "--id-type",
        choices=("uuid", "int", "str"),
        help="read ID as this type (default: try uuid, then int, then str)",
    )
    p.set_defaults(run=_events, usage=p.error)
    p = commands.add_parser("tail", help="print events as they are committed, until Ctrl-C")
    _store_arguments(p)
    start = p.add_mutually_exclusive_group()
    start.add_argument("--relay", metavar="NAME", help="start where relay NAME stands")
    start.add_argument("--from-start", action="store_true", help="start at the first event")
    p.add_argument("--poll", type=_seconds, default=0.5, metavar="S", help="seconds between polls")
    p.set_defaults(run=_tail)
    p = commands.add_parser("relays", help="list relays: published, pending, lag")
    _store_arguments(p)
    p.add_argument(
        "--forget",
        action="append",
        metavar="NAME",
        help="delete relay NAME's progress instead of listing (repeatable; refused while "
        "`esrc relay` runs under NAME)",
    )
    p.set_defaults(run=_relays)
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except EsrcError as err:
        print(f"esrc {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"esrc {args.command}: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
