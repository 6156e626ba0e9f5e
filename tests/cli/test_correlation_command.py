"""``esrc events --correlation ID``: the events of one correlation across streams, by
position, with their causes, on every inspectable backend (MariaDB included), as a
table and as JSON; a clear usage error when combined with a stream."""

from __future__ import annotations

import json

import pytest
from esrc_core.correlation import correlation, handling

from esrc_core import Repository
from tests.core.domain import Counter, registry

from .conftest import Target
from .test_inspect_commands import cells, run


def _choreography(target: Target) -> None:
    """Counter a (2 events) in correlation k, an unrelated counter, then b caused by
    a's second event in k, and c in another correlation."""
    repo = Repository(target.store, Counter, registry, snapshot_every=0)
    with correlation("k"):
        counter = Counter("a")
        counter.increment()
        repo.add(counter)
    repo.add(Counter("unrelated"))
    with handling(message_id="Counter/s:a/2", metadata={"correlation_id": "k"}):
        repo.add(Counter("b"))
    with correlation("other"):
        repo.add(Counter("c"))


def test_correlation_lists_its_events_across_streams(
    any_target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    _choreography(any_target)
    status, out, err = run(capsys, any_target.argv("events", "--correlation", "k"))
    assert status == 0, err
    heading, header, *rows = out.splitlines()
    stored = {
        name: list(range(1, len(any_target.store.events("Counter", name)) + 1)) for name in "ab"
    }
    assert heading == f"correlation k: {len(stored['a']) + len(stored['b'])} events in 2 streams"
    assert cells(header)[2:6] == ["stream", "version", "name", "caused by"]
    listed = [(cells(r)[2], cells(r)[3], cells(r)[5]) for r in rows]
    assert listed == [("Counter a", str(v), "-") for v in stored["a"]] + [
        ("Counter b", str(v), "Counter/s:a/2") for v in stored["b"]
    ]
    positions = [int(cells(r)[0]) for r in rows]
    assert positions == sorted(positions)

    status, out, err = run(capsys, any_target.argv("events", "--correlation", "k", "--json"))
    assert status == 0, err
    document = json.loads(out)
    assert document["correlation_id"] == "k"
    assert [(e["aggregate_id"], e["metadata"]["correlation_id"]) for e in document["events"]] == [
        ("a", "k")
    ] * len(stored["a"]) + [("b", "k")] * len(stored["b"])

    status, out, _ = run(capsys, any_target.argv("events", "--correlation", "none"))
    assert (status, out) == (0, "correlation none: no events\n")


def test_correlation_and_a_stream_together_is_a_usage_error(
    any_target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, any_target.argv("events", "Counter", "a", "--correlation", "k"))
    assert status == 2
    assert "not both" in err
    status, _, err = run(capsys, any_target.argv("events", "Counter"))
    assert status == 2
    assert "TYPE and ID" in err
