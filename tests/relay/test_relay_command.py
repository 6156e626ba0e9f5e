"""``esrc relay`` as a command, without servers except NATS for a broker setup that
cannot work: bad usage, and a store or publisher configuration that cannot work, is
one line on stderr and exit status 2 at once; a
broker or database that cannot be reached at startup is retried (one line per
attempt), and SIGTERM still stops the process with status 0."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from signal import SIGINT, SIGTERM, Signals

import pytest
from esrc_core.relay_status import RelayStatus

from .harness import RelayProcess


def _relay(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "esrc_core.cli", "relay", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--store", "nosuch://x", "--publisher", "memory://"],
            "no installed store backend handles 'nosuch://x'",
        ),
        (
            ["--store", "memory://", "--publisher", "nosuch://u:secret@host/"],
            "no installed publisher backend handles 'nosuch://u:***@host/'",
        ),
        (
            ["--store", "memory://", "--publisher", "memory://", "-o", "table_prefix=x_"],
            "the memory store takes no options",
        ),
        (
            ["--store", "memory://", "--publisher", "memory://", "--batch-size", "0"],
            "batch_size must be a positive int",
        ),
        (
            [
                *("--store", "memory://", "--publisher", "memory://"),
                *("--status-file", "/nonexistent-esrc-directory/status.json"),
            ],
            "no directory for the status file",
        ),
    ],
    ids=[
        "unknown-store",
        "unknown-publisher",
        "bad-store-option",
        "bad-batch-size",
        "status-file-nowhere",
    ],
)
def test_bad_usage_is_one_line_and_status_2(arguments: list[str], message: str) -> None:
    """Mistakes in the command are reported in one line on stderr, passwords masked,
    with exit status 2."""
    result = _relay(*arguments)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("esrc relay:")]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_publisher_option_is_status_2() -> None:
    """An option the publisher does not take fails when the publisher is first opened,
    as bad usage, not as something to retry."""
    result = _relay("--store", "memory://", "--publisher", "amqp://127.0.0.1:1/?timeout=soon")
    assert result.returncode == 2, result.stderr
    assert "esrc relay: option timeout" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("store", "publisher", "failure", "sig"),
    [
        ("memory://", "amqp://guest:secret@127.0.0.1:1/", "BrokerUnavailableError", SIGINT),
        (
            "postgresql+psycopg://postgres:secret@127.0.0.1:1/test",
            "memory://",
            "StoreUnavailableError",
            SIGTERM,
        ),
    ],
    ids=["broker-away-sigint", "database-away-sigterm"],
)
def test_unreachable_at_startup_is_retried_until_a_signal(
    tmp_path: Path, store: str, publisher: str, failure: str, sig: Signals
) -> None:
    """A server that cannot be reached when the relay starts is not fatal: each attempt
    fails in one line (password masked), with growing delays, and SIGINT or SIGTERM
    stops it with status 0."""
    relay = RelayProcess(
        tmp_path / "relay.log",
        ["--store", store, "--publisher", publisher, "--log-interval", "0.2"],
    )
    try:
        retrying = relay.wait_for_status(
            lambda s: s.consecutive_failures >= 3, "three attempts failed"
        )
        assert relay.terminate(sig=sig) == 0, relay.tail()
    finally:
        relay.close()
    assert retrying.state == "retrying"
    assert failure in str(retrying.last_error)
    assert relay.final_status().relayed == 0
    log = relay.text()
    attempts = [line for line in log.splitlines() if " failed: " in line]
    assert all(failure in line for line in attempts), log
    assert "secret" not in log
    assert "Traceback" not in log
    assert f"{sig.name} received" in log


def _sqlite_store_not_created(tmp_path: Path) -> list[str]:
    """A SQLite file that was never created, opened with create_schema=false."""
    path = tmp_path / "never-created.db"
    return ["--store", f"sqlite:///{path}", "-o", "create_schema=false", "--publisher", "memory://"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(_sqlite_store_not_created, "there is no SQLite database at")],
    ids=["sqlite-store-not-created"],
)
def test_a_configuration_that_cannot_work_exits_2_at_once(
    tmp_path: Path, arguments: Callable[[Path], list[str]], message: str
) -> None:
    """A store or publisher set up so that no retry can help (BackendConfigError, met
    once the relay runs) stops the relay at once: exit status 2, the error in one line
    on stderr without traceback, and the status file says stopped with the error."""
    status_file = tmp_path / "status.json"
    started = time.monotonic()
    result = _relay(*arguments(tmp_path), "--status-file", str(status_file))
    assert time.monotonic() - started < 20, "the relay retried instead of stopping"
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("esrc relay:")]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert " failed: " not in result.stderr, "the relay retried"
    status = RelayStatus.read(status_file)
    assert (status.state, status.failed_attempts) == ("stopped", 0)
    assert message in str(status.last_error)


@pytest.mark.nats
def test_a_nats_stream_that_cannot_work_exits_2_at_once(
    nats_url: str, tmp_path: Path, unique: str
) -> None:
    """A NATS publisher told not to create its stream (create_stream=false), when the
    stream does not exist, is a BackendConfigError: esrc relay stops within seconds
    with status 2 instead of retrying, and says what to change."""
    publisher = f"{nats_url}/?stream=ESRC_MISSING_{unique}&create_stream=false"
    status_file = tmp_path / "status.json"
    started = time.monotonic()
    result = _relay(
        "--store", "memory://", "--publisher", publisher, "--status-file", str(status_file)
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert elapsed < 20, f"the relay took {elapsed:.1f} s: it retried instead of stopping"
    lines = [line for line in result.stderr.splitlines() if line.startswith("esrc relay:")]
    assert len(lines) == 1, result.stderr
    assert f"ESRC_MISSING_{unique}" in lines[0]
    assert "create_stream" in lines[0]
    assert " failed: " not in result.stderr, "the relay retried"
    status = RelayStatus.read(status_file)
    assert (status.state, status.failed_attempts) == ("stopped", 0)
