"""``esrc events`` shows each event's stored schema version, read from the store (a
column of the SQL tables), in its table and in ``--json``."""

from __future__ import annotations

import json

import pytest

from esrc_core import RawEvent

from .conftest import Target
from .test_inspect_commands import cells, run


def test_events_shows_the_stored_schema_versions(
    any_target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    any_target.store.add_aggregate(
        "Loan",
        "l-1",
        [RawEvent("Granted", b'{"sum": 1}', {}, 1), RawEvent("Repaid", b'{"amount": 2}', {}, 3)],
    )
    any_target.store.append_events("Loan", "l-1", 2, [RawEvent("Repaid", b"{}", {}, 2)])
    status, out, err = run(capsys, any_target.argv("events", "Loan", "l-1"))
    assert status == 0, err
    _, header, *rows = out.splitlines()
    schema = cells(header).index("schema")
    assert [(cells(r)[3], cells(r)[schema]) for r in rows] == [
        ("Granted", "1"),
        ("Repaid", "3"),
        ("Repaid", "2"),
    ]
    status, out, err = run(capsys, [*any_target.argv("events"), "Loan", "l-1", "--json"])
    assert status == 0, err
    assert [e["schema_version"] for e in json.loads(out)["events"]] == [1, 3, 2]
