"""``esrc delete-stream`` and ``esrc truncate-stream``: refused without ``--yes``,
the stream named as ``esrc events`` names it, what each removes, JSON output, and a
clear error for a backend without the capability or an id naming several streams."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from esrc_core.cli import main

from esrc_core import RawEvent, RawSnapshot, open_event_store


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite store with streams Order 'a' (3 events, a snapshot at 2), Order 'b',
    and Order 42 beside Order '42'."""
    location = f"sqlite:///{tmp_path}/events.db"
    store = open_event_store(location)
    store.add_aggregate("Order", "a", [RawEvent("E", b"%d" % n) for n in range(3)])
    store.add_snapshot("Order", "a", RawSnapshot(2, b"two"))
    store.add_aggregate("Order", "b", [RawEvent("E", b"b")])
    store.add_aggregate("Order", 42, [RawEvent("E", b"int")])
    store.add_aggregate("Order", "42", [RawEvent("E", b"str")])
    store.close()
    return location


def test_without_yes_nothing_is_removed(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Both commands refuse without --yes (exit 2, saying why) and change nothing."""
    for command in ("delete-stream", "truncate-stream"):
        assert main([command, "--store", url, "Order", "a"]) == 2
        assert "without --yes" in capsys.readouterr().err
    with open_event_store(url) as store:
        assert len(store.events("Order", "a")) == 3


def test_delete_stream_leaves_a_tombstone(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``esrc delete-stream ... --yes`` deletes the stream: it no longer exists and
    takes no appends; deleting it again finds no such stream (exit 1)."""
    assert main(["delete-stream", "--store", url, "Order", "b", "--yes"]) == 0
    assert "deleted Order b (str id)" in capsys.readouterr().out
    with open_event_store(url) as store:
        assert not store.contains_aggregate("Order", "b")
    assert main(["delete-stream", "--store", url, "Order", "b", "--yes"]) == 1
    assert "no such stream" in capsys.readouterr().err


def test_truncate_stream_says_how_many_events_went(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``esrc truncate-stream ... --yes --json`` removes the events up to the latest
    snapshot and says how many; the stream still loads from the snapshot."""
    assert main(["truncate-stream", "--store", url, "Order", "a", "--yes", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "aggregate_type": "Order",
        "aggregate_id": "a",
        "id_type": "str",
        "action": "truncate",
        "removed": 2,
    }
    with open_event_store(url) as store:
        assert [e.data for e in store.events("Order", "a", 2)] == [b"2"]


def test_an_id_naming_two_streams_needs_its_type(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """42 names an int and a str stream: refused (exit 2) until --id-type says which."""
    assert main(["delete-stream", "--store", url, "Order", "42", "--yes"]) == 2
    assert "--id-type" in capsys.readouterr().err
    assert main(["delete-stream", "--store", url, "Order", "42", "--yes", "--id-type", "int"]) == 0
    with open_event_store(url) as store:
        assert not store.contains_aggregate("Order", 42)
        assert store.contains_aggregate("Order", "42")


def test_a_backend_without_the_capability_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    """The toy backend does not delete streams: exit 2, naming the capability."""
    assert main(["delete-stream", "--store", "toy://", "Order", "a", "--yes"]) == 2
    assert "'delete-streams'" in capsys.readouterr().err
