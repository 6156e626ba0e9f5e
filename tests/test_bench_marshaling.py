"""The marshaling benchmark in a smoke run: it measures both paths of both events and
prints a line per figure. What the figures are is never checked here."""

from __future__ import annotations

import pytest

from bench.marshaling import main


def test_quick_run_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seconds", "0.05"]) == 0
    lines = capsys.readouterr().out.splitlines()
    figures = [line.split()[-4:] for line in lines[1:]]
    assert [f[0] for f in figures] == ["encode", "decode", "encode", "decode"], lines
