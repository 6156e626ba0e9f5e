"""The command line: ``python -m bench [--backends ...] [--repeat N] [--quick] ...``.

Measures each chosen backend beside the raw driver on the same database, prints one
table per backend with the ratios and targets, and writes everything to
``bench/results/<timestamp>.json``. A backend whose server cannot be reached, or whose
package or driver is missing, is reported as skipped. Targets are printed, never
asserted: the exit status is 0 unless a figure failed with an error (1) or the
arguments are wrong (2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from bench.arguments import add_results_options, name_list, positive, progress
from bench.backends import DEFAULT, KNOWN, LABELS, Backend, default_url, prepare_backend
from bench.machine import machine, software
from bench.report import describe_run, render_backend, render_summary
from bench.results import BackendResult, save_results
from bench.settings import BIG_STREAM, BIG_STREAM_QUICK, FULL, QUICK, Settings
from bench.stream import stream_figures
from bench.workloads import Context, append_figures, load_figures, outbox_figures
from esrc_core import mask_url

__all__ = ["main", "parse_settings"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Measure esrc's backends beside the raw driver doing the same writes on the "
            "same database, and print each figure with its ratio to the raw figure."
        ),
    )
    parser.add_argument(
        "--backends",
        type=name_list(KNOWN, "backend(s)"),
        default=DEFAULT,
        help=f"comma-separated, from {', '.join(KNOWN)} (default: {','.join(DEFAULT)})",
    )
    parser.add_argument(
        "--repeat",
        type=positive,
        help="runs per figure and side; the median is reported (default 5, 1 with --quick)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: little work, figures not meaningful"
    )
    parser.add_argument(
        "--threads", type=positive, default=8, help="threads of the concurrent append figure"
    )
    parser.add_argument(
        "--batch-size",
        type=positive,
        default=500,
        help="events per outbox read, relay batch and raw page (default 500)",
    )
    parser.add_argument(
        "--big-stream",
        type=_count,
        metavar="N",
        help=f"events of the stream whose load's peak memory is measured, in a fresh "
        f"process (default {BIG_STREAM:,}; {BIG_STREAM_QUICK:,} with --quick; 0: skip it)",
    )
    parser.add_argument(
        "--outbox-events",
        type=positive,
        help="events in the outbox figures (default 100,000; 5,000 with --quick)",
    )
    for name in ("postgresql", "mysql"):
        parser.add_argument(
            f"--{name}-url",
            metavar="URL",
            help=f"{LABELS[name]} URL (default: $ESRC_BENCH_{name.upper()}_URL, then "
            f"$ESRC_TEST_{name.upper()}_URL, then {default_url(name)})",
        )
    parser.add_argument(
        "--postgresql-unix-url",
        metavar="URL",
        help="PostgreSQL URL over the unix socket (default: $ESRC_BENCH_POSTGRESQL_UNIX_URL, "
        f"then {default_url('postgresql-unix')})",
    )
    parser.add_argument(
        "--sqlite-url",
        metavar="URL",
        help="SQLite URL, sqlite:///path.db (default: a file in a new temporary directory)",
    )
    add_results_options(parser)
    parser.add_argument(
        "--keep-tables",
        action="store_true",
        help="leave the bench_* tables (and the temporary SQLite file) in place afterwards",
    )
    return parser


def _count(text: str) -> int:
    """A whole number of 0 or more; ``ArgumentTypeError`` otherwise."""
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Build the run's :class:`Settings` from command-line arguments; exits with status
    2 and a usage message on bad arguments."""
    args = _parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.outbox_events is not None:
        sizes = type(sizes)(**{**vars(sizes), "outbox_events": args.outbox_events})
    urls = {
        name: url
        for name, url in (
            ("postgresql", args.postgresql_url),
            ("postgresql-unix", args.postgresql_unix_url),
            ("mysql", args.mysql_url),
            ("sqlite", args.sqlite_url),
        )
        if url
    }
    return Settings(
        backends=args.backends,
        repeat=args.repeat or (1 if args.quick else 5),
        quick=args.quick,
        sizes=sizes,
        threads=args.threads,
        batch_size=args.batch_size,
        urls=urls,
        results_dir=None if args.no_save else args.results_dir,
        keep_tables=args.keep_tables,
        big_stream=(
            args.big_stream
            if args.big_stream is not None
            else BIG_STREAM_QUICK
            if args.quick
            else BIG_STREAM
        ),
    )


def _measure_backend(name: str, settings: Settings) -> BackendResult:
    """Probe one backend, run every figure group on it, and clean up after it."""
    say = progress(name)
    label = LABELS[name]
    try:
        backend = prepare_backend(name, settings)
    except ImportError as err:
        return BackendResult(name, label, "-", "skipped", f"driver not installed: {err}")
    result = BackendResult(name, label, backend.masked_url)
    if backend.raw is not None:
        result.driver = dict(backend.raw.driver)
    reason = _probe(backend, result)
    if reason is not None:
        result.status, result.reason = "skipped", " ".join(reason.split())
        backend.clean_up(drop_tables=False)
        return result
    context = Context(backend, settings, say)
    try:
        for group in (append_figures, load_figures, outbox_figures, stream_figures):
            result.figures.extend(group(context))
    finally:
        try:
            dropped = backend.clean_up()
            if dropped:
                say(f"dropped tables {', '.join(dropped)}")
        except Exception as err:
            say(f"clean-up failed: {backend.scrub(str(err))}")
    return result


def _probe(backend: Backend, result: BackendResult) -> str | None:
    """Reach the server and open the store; return why the backend is skipped, or
    ``None`` when it can run."""
    if backend.raw is not None:
        try:
            result.server = backend.raw.server()
            backend.reset()
        except Exception as err:
            return backend.scrub(f"cannot reach {backend.masked_url}: {type(err).__name__}: {err}")
    try:
        store = backend.open_store()
    except Exception as err:
        return backend.scrub(
            f"cannot open the esrc store at {backend.masked_url}: {type(err).__name__}: {err}"
        )
    store.close()
    result.settings = {
        "store_options": backend.store_options,
        "store_class": f"{type(store).__module__}.{type(store).__qualname__}",
    }
    if backend.raw is not None:
        result.settings["raw_tables"] = f"{backend.raw.prefix}events, {backend.raw.prefix}snapshots"
        result.settings.update(backend.raw.settings)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (see the module docstring)."""
    settings = parse_settings(argv)
    masked = {name: mask_url(url) for name, url in settings.urls.items()}
    started = dt.datetime.now(dt.UTC)
    document: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "software": software(),
        "settings": settings.to_json(masked),
        "backends": [],
    }
    print(describe_run(document["machine"], document["software"], document["settings"]))
    results: list[BackendResult] = []
    try:
        for name in settings.backends:
            try:
                result = _measure_backend(name, settings)
            except Exception as err:
                traceback.print_exc()
                result = BackendResult(name, LABELS[name], "-", "failed", f"{type(err).__name__}")
            results.append(result)
            print()
            print(render_backend(result), flush=True)
    except KeyboardInterrupt:
        document["interrupted"] = True
        print("\ninterrupted; writing what was measured", file=sys.stderr)
    finally:
        document["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        document["backends"] = [r.to_json() for r in results]
        if settings.results_dir is not None:
            save_results(settings.results_dir, started, document)
    print()
    print(render_summary(results))
    failed = any(f.error for r in results for f in r.figures) or any(
        r.status == "failed" for r in results
    )
    return 1 if failed or document.get("interrupted") else 0
