"""``--json``, ``--quiet``, ``--store``/``ESRC_STORE_URL`` and the help texts: what
scripts rely on, on every backend that can be inspected."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from esrc_core.cli import main, tail
from esrc_core.cli._registry import commands

from esrc_core import RawEvent, open_event_store

from .conftest import Target
from .test_inspect_commands import ACCOUNT_UUID, populate, relayed, run


def test_streams_json_is_one_document_with_typed_ids(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    status, out, err = run(capsys, [*target.argv("streams"), "--json"])
    assert (status, err) == (0, "")
    document = json.loads(out)
    assert document["limited"] is False
    found = {
        (s["aggregate_type"], s["aggregate_id"], s["id_type"], s["version"])
        for s in document["streams"]
    }
    assert found == {
        ("Account", 42, "int", 2),
        ("Account", "007", "str", 1),
        ("Account", str(ACCOUNT_UUID), "uuid", 3),
        ("Order", "o-1", "str", 1),
    }
    assert all(s["last_recorded_at"].endswith("+00:00") for s in document["streams"])


def test_events_json_decodes_json_data_and_keeps_other_bytes_in_base64(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    status, out, _ = run(capsys, [*target.argv("events"), "Account", "42", "--json"])
    assert status == 0
    document = json.loads(out)
    assert (document["aggregate_type"], document["aggregate_id"], document["id_type"]) == (
        "Account",
        42,
        "int",
    )
    opened, deposited = document["events"]
    assert (opened["version"], opened["name"], opened["metadata"]) == (
        1,
        "AccountOpened",
        {"user": "ada"},
    )
    assert opened["data"] == {"owner": "Zoë"}
    assert (opened["schema_version"], deposited["schema_version"]) == (1, 1)
    assert deposited["data"] == {"amount": "100.00"}
    assert opened["position"] < deposited["position"]
    status, out, _ = run(capsys, [*target.argv("events"), "Account", str(ACCOUNT_UUID), "--json"])
    binary, text, empty = json.loads(out)["events"]
    assert binary["data"] is None
    assert base64.b64decode(binary["data_base64"]) == b"\x08\x96\x01\x00\xff"
    assert base64.b64decode(text["data_base64"]) == b"plain text,\nnot JSON"
    assert (empty["data"], empty["data_base64"]) == (None, "")


def test_relays_json_lists_progress_and_forget_json_says_what_was_refused(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    relayed(target, "projector", 2)
    status, out, _ = run(capsys, [*target.argv("relays"), "--json"])
    assert status == 0
    [projector] = json.loads(out)["relays"]
    assert (projector["name"], projector["published"], projector["pending"]) == (
        "projector",
        2,
        5,
    )
    assert projector["lag_seconds"] >= 0
    assert projector["oldest_pending_at"].endswith("+00:00")
    argv = [*target.argv("relays"), "--json", "--forget", "projector", "--forget", "typo"]
    status, out, _ = run(capsys, argv)
    assert status == 1
    assert json.loads(out) == {
        "forgotten": [{"name": "projector", "published": 2, "pending": 5}],
        "refused": [{"name": "typo", "reason": "no progress"}],
    }


def test_tail_json_writes_one_object_per_event(target: Target) -> None:
    populate(target)
    out, err = io.StringIO(), io.StringIO()
    stop = threading.Event()
    options = target.store_options
    worker = threading.Thread(
        target=tail,
        args=(target.url,),
        kwargs={
            "from_start": True,
            "as_json": True,
            "quiet": True,
            "poll": 0.05,
            "options": options,
            "out": out,
            "err": err,
            "stop": stop,
        },
    )
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(out.getvalue().splitlines()) < 7 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        worker.join(30)
    documents = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["aggregate_type"], d["version"], d["name"]) for d in documents][:2] == [
        ("Account", 1, "AccountOpened"),
        ("Account", 2, "MoneyDeposited"),
    ]
    assert len(documents) == 7
    assert documents[0]["aggregate_id"] == 42
    assert documents[0]["id_type"] == "int"
    assert documents[0]["data"] == {"owner": "Zoë"}
    assert err.getvalue() == ""  # quiet: no "following …" / "stopped after" lines


def test_quiet_leaves_out_summary_and_heading_lines(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(target)
    _, loud, _ = run(capsys, target.argv("streams"))
    _, quiet, _ = run(capsys, [*target.argv("streams"), "-q"])
    assert loud.splitlines()[-1] == "4 streams, 7 events"
    assert quiet.splitlines() == loud.splitlines()[:-1]
    _, events, _ = run(capsys, [*target.argv("events"), "Account", "42", "--quiet"])
    assert events.splitlines()[0].split()[0] == "version"  # the table, no heading


def test_the_store_url_comes_from_esrc_store_url_or_the_first_argument(
    target: Target, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(target)
    _, given, _ = run(capsys, [*target.argv("streams"), "--json"])
    monkeypatch.setenv("ESRC_STORE_URL", target.url)
    status, from_environment, err = run(capsys, ["streams", *target.options, "--json"])
    assert (status, err) == (0, "")
    assert json.loads(from_environment) == json.loads(given)
    monkeypatch.delenv("ESRC_STORE_URL")
    status, positional, _ = run(capsys, ["streams", target.url, *target.options, "--json"])
    assert status == 0
    assert json.loads(positional) == json.loads(given)


def test_without_a_store_url_the_command_says_how_to_give_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ESRC_STORE_URL", raising=False)
    for command in ("streams", "relays", "tail", "migrate"):
        status, _, err = run(capsys, [command])
        assert status == 2
        assert "no store URL: give --store URL or set ESRC_STORE_URL" in err


def test_every_command_has_a_description_in_its_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in commands():
        assert main([command.name, "--help"]) == 0
        shown = " ".join(capsys.readouterr().out.split())
        described = " ".join((command.description or command.help).split())
        assert described in shown, f"esrc {command.name} --help: {shown}"
        assert len(command.description) > len(command.help), command.name


def test_plugins_json_lists_backends_with_their_apis_and_capabilities(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = run(capsys, ["plugins", "--json"])
    assert status == 0
    document = json.loads(out)
    memory = next(b for b in document["backends"] if (b["kind"], b["name"]) == ("store", "memory"))
    assert memory["distribution"] == "esrc-memory"
    assert memory["apis"] == ["sync", "async"]
    assert memory["schemes"] == ["memory"]
    assert "outbox" in memory["capabilities"]
    assert isinstance(document["problems"], list)


def test_streams_json_through_a_pipe_is_valid_json(tmp_path: Path) -> None:
    """``esrc streams --store URL --json | python -m json.tool`` in real processes."""
    url = f"sqlite:///{tmp_path}/piped.db"
    store = open_event_store(url)
    try:
        store.add_aggregate("Account", 1, [RawEvent("Opened", b"{}")])
    finally:
        store.close()
    esrc = subprocess.Popen(
        [sys.executable, "-m", "esrc_core.cli", "streams", "--store", url, "--json"],
        stdout=subprocess.PIPE,
    )
    tool = subprocess.run(
        [sys.executable, "-m", "json.tool"],
        stdin=esrc.stdout,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert esrc.wait(timeout=60) == 0
    assert json.loads(tool.stdout)["streams"][0]["aggregate_id"] == 1
