"""The benchmark harness in a smoke run on SQLite: every figure is measured on both
sides and recorded in the result file. What the figures are is never checked here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.run import main

pytestmark = pytest.mark.sqlite

_LEVELS = ("store", "repository")
_APPENDS = ("append_1_event_1_thread", "append_1_event_2_threads", "append_10_events_1_thread")
_LOADS = ("load_10_events", "load_1000_events", "load_10000_events_snapshot")


def test_quick_run_on_sqlite_records_every_figure_on_both_sides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "--quick",
            "--backends",
            "sqlite",
            "--threads",
            "2",
            "--outbox-events",
            "1000",
            "--big-stream",
            "2000",
            "--results-dir",
            str(tmp_path),
        ]
    )
    assert status == 0, capsys.readouterr().err
    (path,) = tmp_path.glob("*.json")
    document = json.loads(path.read_text())
    assert document["schema"] == 2
    (backend,) = document["backends"]
    assert backend["status"] == "ok"
    figures = {figure["key"]: figure for figure in backend["figures"]}
    appends = [f"{level}_{key}" for level in _LEVELS for key in _APPENDS]
    loads = [f"{level}_{key}" for level in _LEVELS for key in _LOADS]
    both_sides = [
        *appends,
        *loads,
        "outbox_read",
        "outbox_read_lazy_checkpoint",
        "relay_to_memory",
    ]
    memory = "repository_load_big_stream_memory"
    assert set(figures) == {*both_sides, memory}
    for key in both_sides:
        figure = figures[key]
        assert figure["error"] is None, (key, figure["error"])
        assert len(figure["esrc"]["runs"]) == 1, key
        assert len(figure["raw"]["runs"]) == 1, key
        assert figure["level"] == key.split("_", 1)[0] or key.startswith(("outbox", "relay"))
    for key in appends:
        assert len(figures[key]["raw_txn"]["runs"]) == 1, key
    assert figures[memory]["error"] is None
    assert len(figures[memory]["esrc"]["runs"]) == 1
    assert figures[memory]["target"]["applies"] is True
    assert figures["repository_append_1_event_1_thread"]["target"]["applies"] is True


def test_async_figures_run_end_to_end_on_sqlite(capsys: pytest.CaptureFixture[str]) -> None:
    """The async figures in their tiny configuration: every figure is measured on both
    sides and printed with its ratio."""
    from bench.async_figures import main as async_main

    assert async_main(["--quick", "--backends", "sqlite"]) == 0
    table = capsys.readouterr().out.splitlines()
    figures = [line.split()[1] for line in table[1:]]
    assert figures == ["append1_task1", "append1_tasks64", "append10", "load1000", "outbox"]


def test_telemetry_figures_measure_every_state(capsys: pytest.CaptureFixture[str]) -> None:
    """bench.telemetry in a tiny run: a row per state, with both operations."""
    from bench.telemetry import STATES
    from bench.telemetry import main as telemetry_main

    assert telemetry_main(["--ops", "20", "--rounds", "1"]) == 0
    table = capsys.readouterr().out.splitlines()
    rows = [line.rsplit(maxsplit=4) for line in table[2:]]
    assert [row[0] for row in rows] == list(STATES)
    assert all(float(row[1]) > 0 and float(row[3]) > 0 for row in rows)
