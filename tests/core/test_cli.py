"""The esrc command line: ``esrc plugins`` and ``esrc demo``."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
from esrc_core.cli import main
from esrc_core.demo import run

from esrc_core import plugins


def _memory_rows(output: str) -> dict[str, list[str]]:
    """The memory backend's rows of ``esrc plugins`` output, by kind, split in columns."""
    lines = output.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        "kind",
        "name",
        "distribution",
        "version",
        "apis",
        "schemes",
        "capabilities",
    ]
    rows = [re.split(r"\s{2,}", line) for line in lines[1:]]
    return {row[0]: row for row in rows if len(row) == 7 and row[1] == "memory"}


def _check_memory_rows(output: str) -> None:
    version = importlib.metadata.version("esrc-memory")
    rows = _memory_rows(output)
    assert rows["store"] == [
        "store",
        "memory",
        "esrc-memory",
        version,
        "sync, async",
        "memory",
        "delete-streams, inspect, outbox, read-ahead, relay-lock, snapshots, streaming, threads, "
        "units-of-work",
    ]
    assert rows["publisher"] == [
        "publisher",
        "memory",
        "esrc-memory",
        version,
        "sync, async",
        "memory",
        "batch",
    ]


def test_plugins_lists_memory_with_distribution_version_schemes_capabilities(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plugins"]) == 0
    _check_memory_rows(capsys.readouterr().out)


def test_plugins_as_an_installed_command() -> None:
    script = Path(sys.executable).with_name("esrc")
    assert script.exists(), f"the esrc console script is not installed next to {sys.executable}"
    result = subprocess.run(
        [str(script), "plugins"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    _check_memory_rows(result.stdout)
    assert "Traceback" not in result.stderr


def test_plugins_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "esrc_core.cli", "plugins"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    _check_memory_rows(result.stdout)


def test_demo_prints_the_relayed_events_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--store", "memory://"]) == 0
    out = capsys.readouterr().out.splitlines()
    relayed = out[out.index("relayed, in order:") + 1 :]
    assert [line.split()[2] for line in relayed] == [
        "AccountOpened",
        "MoneyDeposited",
        "MoneyWithdrawn",
    ]
    assert [line.split()[1].rsplit("/", 1)[1] for line in relayed] == ["1", "2", "3"]
    assert out[0].endswith("at version 2")
    assert "balance 69.50, version 3" in out[2]


def test_demo_run_returns_the_delivered_events() -> None:
    printed: list[str] = []
    delivered = run("memory://", out=printed.append)
    assert [e.event.name for e in delivered] == [
        "AccountOpened",
        "MoneyDeposited",
        "MoneyWithdrawn",
    ]
    assert [e.version for e in delivered] == [1, 2, 3]
    assert len({e.aggregate_id for e in delivered}) == 1
    assert [e.position for e in delivered] == sorted(e.position for e in delivered)
    assert printed[-3:] == [
        f"  #{e.position} {e.message_id} {e.event.name} {e.event.data.decode()}" for e in delivered
    ]


@pytest.mark.parametrize("url", ["nope://", "nope://admin:secret@host/db", "no-scheme"])
def test_an_unknown_store_url_prints_one_line_on_stderr_and_exits_2(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    """A URL no backend claims is a configuration error (status 2), like a bad option."""
    plugins().backends()  # load plugins first: their own load warnings are not the CLI's
    capsys.readouterr()
    assert main(["demo", "--store", url]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("esrc demo: ")
    assert "memory" in lines[0], "the message lists the installed backends"
    assert "secret" not in captured.err
    assert "Traceback" not in captured.err


def test_an_unknown_store_url_in_a_real_process_exits_2_without_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "esrc_core.cli", "demo", "--store", "nope://u:secret@h"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "secret" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("esrc demo: ")]
    assert "no installed store backend handles 'nope://u:***@h'" in error


def test_a_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: esrc" in capsys.readouterr().err


COMMANDS = [
    "console",
    "delete-stream",
    "demo",
    "events",
    "migrate",
    "new-backend",
    "plugins",
    "relay",
    "relays",
    "streams",
    "tail",
    "truncate-stream",
]


def test_help_lists_every_command_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = re.search(r"\{([a-z,-]+)\}", out)
    assert listed is not None, out
    assert listed.group(1).split(",") == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_its_own_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    assert main([command, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: esrc {command} ")
