"""``esrc`` for scripts: ``--version``, options from the environment (``esrc relay``),
and a reader that closes the pipe early."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest
from esrc_core.cli._main import EXIT_PIPE_CLOSED, EXIT_USAGE, from_environment, main

from esrc_core import RawEvent, open_event_store


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"esrc {importlib.metadata.version('esrc-core')}"


def test_relay_options_come_from_the_environment_unless_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESRC_STORE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("ESRC_PUBLISHER_URL", "memory://from-env")
    monkeypatch.setenv("ESRC_RELAY_NAME", "orders")
    monkeypatch.setenv("ESRC_RELAY_READ_AHEAD", "yes")
    monkeypatch.setenv("ESRC_RELAY_BATCH_SIZE", "")  # empty: not set
    assert from_environment(["relay", "--name", "given"]) == [
        "relay",
        "--store=sqlite:///from-env.db",
        "--publisher=memory://from-env",
        "--read-ahead",
        "--name",
        "given",
    ]
    monkeypatch.setenv("ESRC_RELAY_READ_AHEAD", "off")
    assert "--read-ahead" not in from_environment(["relay"])
    # the other commands that open a store take its URL, and only that
    assert from_environment(["streams"]) == ["streams", "--store=sqlite:///from-env.db"]
    assert from_environment(["streams", "--store", "memory://"]) == [
        "streams",
        "--store",
        "memory://",
    ]
    assert from_environment(["plugins"]) == ["plugins"]


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("ESRC_RELAY_READ_AHEAD", "maybe", "ESRC_RELAY_READ_AHEAD='maybe': --read-ahead"),
        ("ESRC_RELAY_BATCH_SIZE", "many", "ESRC_RELAY_BATCH_SIZE: not a value for --batch-size"),
        ("ESRC_RELAY_LOG_LEVEL", "LOUD", "--log-level takes one of DEBUG, INFO"),
    ],
)
def test_a_bad_value_in_the_environment_is_a_usage_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    says: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["relay", "--store", "memory://", "--publisher", "memory://"]) == EXIT_USAGE
    assert says in capsys.readouterr().err


def test_relay_url_from_the_environment_is_used_and_its_password_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ESRC_STORE_URL", "nosuchscheme://relay:secret-password@db/app")
    monkeypatch.setenv("ESRC_PUBLISHER_URL", "memory://")
    assert main(["relay"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "nosuchscheme" in err
    assert "secret-password" not in err


def test_output_to_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """``esrc streams URL | head -1``: the reader closes the pipe after one line;
    esrc exits with 141 and prints no traceback."""
    url = f"sqlite:///{tmp_path}/many.db"
    store = open_event_store(url)
    try:
        for n in range(3000):
            store.add_aggregate("Account", f"account-{n:05d}", [RawEvent("Opened", b"{}")])
    finally:
        store.close()
    process = subprocess.Popen(
        [sys.executable, "-m", "esrc_core.cli", "streams", url, "--limit", "3000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # what head does after its line
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == EXIT_PIPE_CLOSED, err
    assert first
    assert err == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["streams"],
        ["events", "Account", "1"],
        ["tail"],
        ["relays"],
        ["migrate"],
        ["migrate", "--check"],
        ["demo"],
        ["relay", "--publisher", "memory://"],
    ],
    ids=" ".join,
)
def test_an_unknown_scheme_exits_2_in_every_command(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """One rule for all: a URL no installed backend claims is a configuration error
    (status 2), with the password masked in the one line that says so."""
    command, *rest = argv
    status = main([command, "--store", "nosuch://ops:pa55word@db/x", *rest])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE, err
    [line] = err.splitlines()
    assert line.startswith(f"esrc {command}: no installed store backend handles 'nosuch://")
    assert "pa55word" not in line


def test_store_options_come_from_esrc_store_options_under_the_command_lines_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESRC_STORE_OPTIONS", "table_prefix=env_  schema=shop")
    assert from_environment(["streams", "-o", "table_prefix=cli_"]) == [
        "streams",
        "--store-option=table_prefix=env_",
        "--store-option=schema=shop",
        "-o",
        "table_prefix=cli_",
    ]
    monkeypatch.setenv("ESRC_STORE_OPTIONS", "no-equals-sign")
    with pytest.raises(ValueError, match="ESRC_STORE_OPTIONS: not a value for --store-option"):
        from_environment(["relays"])


def test_a_store_option_from_the_environment_reaches_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tables of prefix ``app_`` are the ones listed when ESRC_STORE_OPTIONS names
    that prefix, and ``-o`` on the command line wins over it."""
    url = f"sqlite:///{tmp_path}/prefixed.db"
    for prefix, aggregate_type in (("app_", "Invoice"), ("esrc_", "Order")):
        store = open_event_store(url, table_prefix=prefix)
        try:
            store.add_aggregate(aggregate_type, 1, [RawEvent("Created", b"{}")])
        finally:
            store.close()
    monkeypatch.setenv("ESRC_STORE_URL", url)
    monkeypatch.setenv("ESRC_STORE_OPTIONS", "table_prefix=app_")
    assert main(["streams", "--json"]) == 0
    [stream] = json.loads(capsys.readouterr().out)["streams"]
    assert stream["aggregate_type"] == "Invoice"
    assert main(["streams", "--json", "-o", "table_prefix=esrc_"]) == 0
    [stream] = json.loads(capsys.readouterr().out)["streams"]
    assert stream["aggregate_type"] == "Order"
