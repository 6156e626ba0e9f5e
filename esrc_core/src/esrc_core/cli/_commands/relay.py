"""``esrc relay``: one named relay as a long-running process (see
:class:`~esrc_core.runner.RelayRunner`)."""

from __future__ import annotations

import argparse
import os
from types import MappingProxyType

from esrc_core.cli._arguments import options_argument, seconds
from esrc_core.cli._command import Command, UsageError
from esrc_core.errors import BackendConfigError, EsrcError
from esrc_core.logs import LOG_FORMATS, log_to_stderr
from esrc_core.relay_metrics import MetricsServer
from esrc_core.runner import DEFAULT_BATCH_SIZE, RelayRunner, RelayStatus

__all__ = ["COMMANDS", "ENVIRONMENT"]


def _relay(args: argparse.Namespace) -> int:
    log_to_stderr(args.log_level, log_format=args.log_format)
    status_file: str | None = args.status_file
    if status_file is not None and not os.path.isdir(os.path.dirname(status_file) or "."):
        raise UsageError(f"no directory for the status file {status_file!r}")

    def write_status(status: RelayStatus) -> None:
        assert status_file is not None
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
            read_ahead=args.read_ahead,
        )
        metrics = _serve_metrics(runner, args.metrics_host, args.metrics_port)
        try:
            with runner.stop_on_signals():
                runner.run()
        finally:
            if metrics is not None:
                metrics.close()
    except EsrcError:
        raise
    except (ValueError, TypeError) as err:
        # Bad usage the runner or a backend reports as a plain ValueError or TypeError:
        # a setting out of range, an option a store or publisher does not take.
        raise BackendConfigError(str(err)) from err
    return 0


def _serve_metrics(runner: RelayRunner, host: str, port: int | None) -> MetricsServer | None:
    """The runner's metrics server, started, when ``port`` is given. A port that
    cannot be bound is a usage error (the runner's store is then closed: it never
    ran)."""
    if port is None:
        return None
    server = MetricsServer(lambda: runner.status, runner.progress, host=host, port=port)
    try:
        server.start()
    except OSError as err:
        runner.store.close()
        reason = err.strerror or str(err)
        raise UsageError(f"cannot serve metrics on {server.url}: {reason}") from err
    return server


def _port(text: str) -> int:
    """An argument type: a TCP port, 0 to 65535 (0: one the system picks)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {port}")
    return port


ENVIRONMENT = MappingProxyType(
    {
        "--store": "ESRC_STORE_URL",
        "--store-option": "ESRC_STORE_OPTIONS",
        "--publisher": "ESRC_PUBLISHER_URL",
        "--name": "ESRC_RELAY_NAME",
        "--batch-size": "ESRC_RELAY_BATCH_SIZE",
        "--poll-interval": "ESRC_RELAY_POLL_INTERVAL",
        "--log-interval": "ESRC_RELAY_LOG_INTERVAL",
        "--lock-timeout": "ESRC_RELAY_LOCK_TIMEOUT",
        "--read-ahead": "ESRC_RELAY_READ_AHEAD",
        "--log-level": "ESRC_RELAY_LOG_LEVEL",
        "--status-file": "ESRC_RELAY_STATUS_FILE",
        "--status-interval": "ESRC_RELAY_STATUS_INTERVAL",
        "--log-format": "ESRC_RELAY_LOG_FORMAT",
        "--metrics-port": "ESRC_RELAY_METRICS_PORT",
        "--metrics-host": "ESRC_RELAY_METRICS_HOST",
    }
)
"""The environment variables ``esrc relay`` takes its options from when the command
line does not give them (so that no password need appear in ``ps``)."""


def _relay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store", required=True, metavar="URL", help="event store URL (env ESRC_STORE_URL)"
    )
    p.add_argument(
        "--publisher", required=True, metavar="URL", help="publisher URL (env ESRC_PUBLISHER_URL)"
    )
    p.add_argument(
        "--name", default="default", help="the relay name (default: default; env ESRC_RELAY_NAME)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"events per batch (default {DEFAULT_BATCH_SIZE})",
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
    p.add_argument(
        "--read-ahead",
        action="store_true",
        help="read the next batch and mark the last one while publishing (off by default)",
    )
    options_argument(p, "--store-option")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument(
        "--log-format",
        default="text",
        choices=LOG_FORMATS,
        help="text lines (default) or one JSON object per line, with the values as keys",
    )
    p.add_argument(
        "--status-file",
        metavar="PATH",
        help="keep the relay's state in PATH as JSON, replaced atomically on every change",
    )
    p.add_argument(
        "--status-interval",
        type=seconds,
        default=1.0,
        metavar="S",
        help="while relaying, rewrite the status file every S seconds (default 1)",
    )
    p.add_argument(
        "--metrics-port",
        type=_port,
        metavar="N",
        help="serve Prometheus metrics on /metrics and a health check on /healthz at port N "
        "(0: a free port, logged; default: none)",
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address to serve metrics on (default 127.0.0.1, this machine only; "
        "0.0.0.0 in a container, for Prometheus and probes to reach it)",
    )


COMMANDS = (
    Command(
        "relay",
        "relay events from a store to a broker until stopped",
        _relay_arguments,
        _relay,
        ENVIRONMENT,
        "Relay every event of a store to a publisher, in the outbox's order, until\n"
        "SIGTERM or Ctrl-C. One relay per name runs at a time: with a store that has\n"
        "relay locks, a second process under the same name stands by until the lock\n"
        "frees. Every option can come from an environment variable (ESRC_STORE_URL,\n"
        "ESRC_PUBLISHER_URL, ESRC_RELAY_NAME, ESRC_RELAY_<OPTION>); the command line\n"
        "wins over the environment, which wins over the default.",
    ),
)
"""``esrc relay``."""
