"""RelayStatus: the status file's JSON round trip, its atomic replacement and what a
reader refuses."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from esrc_core.relay_status import ERROR_KINDS, STATUS_FORMAT, RelayStatus

STATUS = RelayStatus(
    name="orders",
    state="retrying",
    holds_lock=True,
    took_over=True,
    relayed=1200,
    last_position=3456,
    consecutive_failures=2,
    failed_attempts=5,
    locks_lost=1,
    last_error="BrokerUnavailableError: open amqp://u:***@rabbit/: connection refused",
    updated_at=dt.datetime(2026, 12, 2, 13, 10, 0, 123456, tzinfo=dt.UTC),
    pid=4242,
    batches=31,
    last_batch_at=dt.datetime(2026, 12, 2, 13, 9, 59, 871002, tzinfo=dt.UTC),
    errors={"store": 0, "publisher": 5, "lock": 0, "config": 0, "other": 0},
    last_error_kind="publisher",
)


def test_the_file_is_one_json_object_with_the_documented_keys(tmp_path: Path) -> None:
    path = tmp_path / "relay.json"
    STATUS.write(path)
    assert json.loads(path.read_text()) == {
        "format": 1,
        "name": "orders",
        "state": "retrying",
        "holds_lock": True,
        "took_over": True,
        "relayed": 1200,
        "last_position": 3456,
        "consecutive_failures": 2,
        "failed_attempts": 5,
        "locks_lost": 1,
        "last_error": "BrokerUnavailableError: open amqp://u:***@rabbit/: connection refused",
        "updated_at": "2026-12-02T13:10:00.123456+00:00",
        "pid": 4242,
        "batches": 31,
        "last_batch_at": "2026-12-02T13:09:59.871002+00:00",
        "errors": {"store": 0, "publisher": 5, "lock": 0, "config": 0, "other": 0},
        "last_error_kind": "publisher",
    }
    assert RelayStatus.read(path) == STATUS


def test_a_file_without_the_later_keys_reads_with_their_defaults(tmp_path: Path) -> None:
    """The keys added within format 1 (batches, last_batch_at, errors,
    last_error_kind) may be missing from a file an earlier writer left."""
    path = tmp_path / "relay.json"
    later = {"batches", "last_batch_at", "errors", "last_error_kind"}
    path.write_text(json.dumps({k: v for k, v in STATUS.to_json().items() if k not in later}))
    status = RelayStatus.read(path)
    assert (status.batches, status.last_batch_at, status.last_error_kind) == (0, None, None)
    assert status.errors == dict.fromkeys(ERROR_KINDS, 0)


@pytest.mark.parametrize(
    ("state", "failures", "healthy"),
    [
        ("starting", 0, True),
        ("standby", 0, True),
        ("relaying", 0, True),
        ("relaying", 1, False),
        ("retrying", 3, False),
        ("standby", 2, False),
        ("stopped", 0, False),
    ],
)
def test_healthy_means_running_with_no_failure_since_the_last_success(
    state: str, failures: int, healthy: bool
) -> None:
    status = RelayStatus(**{**vars(STATUS), "state": state, "consecutive_failures": failures})
    assert status.healthy is healthy


def test_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "relay.json"
    STATUS.write(path)
    stopped = RelayStatus(**{**vars(STATUS), "state": "stopped", "holds_lock": False})
    stopped.write(path)
    assert RelayStatus.read(path) == stopped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relay.json"]


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        RelayStatus.read(tmp_path / "never-written.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": STATUS_FORMAT + 1}, "format 2 is not 1"),
        ({"state": "dancing"}, "unknown relay state 'dancing'"),
        ({"relayed": None}, "malformed relay status"),
        ({"last_error_kind": "cosmic-rays"}, "unknown error kind 'cosmic-rays'"),
        ({"errors": ["store"]}, "malformed relay status"),
    ],
    ids=["format", "state", "relayed", "error-kind", "errors"],
)
def test_a_reader_refuses_what_it_does_not_understand(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "relay.json"
    path.write_text(json.dumps({**STATUS.to_json(), **change}))
    with pytest.raises(ValueError, match=message):
        RelayStatus.read(path)


def test_a_file_that_is_not_a_status_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "relay.json"
    path.write_text("[1, 2")
    with pytest.raises(ValueError, match="not a relay status"):
        RelayStatus.read(path)
    without = {k: v for k, v in STATUS.to_json().items() if k != "pid"}
    path.write_text(json.dumps(without))
    with pytest.raises(ValueError, match="malformed relay status"):
        RelayStatus.read(path)
