"""``esrc relay``: one named relay as a long-running process (see
:class:`~esrc_core.runner.RelayRunner`)."""

from __future__ import annotations

import argparse
import os
from types import MappingProxyType

from esrc_core.cli._arguments import options_argument, seconds
from esrc_core.cli._command import Command, UsageError
from esrc_core.errors import BackendConfigError, EsrcError
from esrc_core.runner import DEFAULT_BATCH_SIZE, RelayRunner, RelayStatus, log_to_stderr

__all__ = ["COMMANDS", "ENVIRONMENT"]


def _relay(args: argparse.Namespace) -> int:
    log_to_stderr(args.log_level)
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
        with runner.stop_on_signals():
            runner.run()
    except EsrcError:
        raise
    except (ValueError, TypeError) as err:
        # Bad usage the runner or a backend reports as a plain ValueError or TypeError:
        # a setting out of range, an option a store or publisher does not take.
        raise BackendConfigError(str(err)) from err
    return 0


ENVIRONMENT = MappingProxyType(
    {
        "--store": "ESRC_STORE_URL",
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


COMMANDS = (
    Command(
        "relay",
        "relay events from a store to a broker until stopped",
        _relay_arguments,
        _relay,
        ENVIRONMENT,
    ),
)
"""``esrc relay``."""
