"""The text report: the machine and settings, then one table per backend with each figure,
its raw counterpart, the ratio, and the target beside it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.results import BackendResult, Figure

__all__ = ["describe_run", "format_ratio", "format_value", "render_backend", "render_summary"]


def format_value(value: float | None, unit: str) -> str:
    """A figure as text: rates without decimals, times with two, sizes with one."""
    if value is None:
        return "-"
    if unit.startswith("ms"):
        return f"{value:,.2f}"
    if unit == "MiB":
        return f"{value:,.1f}"
    return f"{value:,.0f}"


def format_ratio(figure: Figure, ratio: float | None = None) -> str:
    """esrc over raw: a percentage for rates (``65%``), a multiple for times (``1.40x``).
    ``ratio`` defaults to the figure's own (against the autocommit raw side)."""
    if ratio is None:
        ratio = figure.ratio
    if ratio is None:
        return "-"
    return f"{ratio:.0%}" if figure.higher_is_better else f"{ratio:.2f}x"


def _raw_txn(figure: Figure) -> str:
    """The explicit-transaction raw figure and esrc's ratio to it, or ``""``."""
    if figure.raw_txn is None:
        return ""
    ratio = format_ratio(figure, figure.ratio_txn)
    return f"{format_value(figure.raw_txn, figure.unit)} ({ratio})"


def _spread(runs: Sequence[float]) -> str:
    """Half the range of the runs, relative to their mean: how much to trust a figure."""
    if len(runs) < 2:
        return ""
    mean = sum(runs) / len(runs)
    return f" ±{(max(runs) - min(runs)) / 2 / mean:.0%}" if mean else ""


def _status(figure: Figure, backend: str) -> str:
    if figure.target is None:
        return ""
    met = figure.target.met(figure)
    word = "n/a" if met is None else "met" if met else "MISSED"
    if figure.target.backend != backend:
        return f"({word.lower()})"
    return word


def _table(rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def render_backend(result: BackendResult) -> str:
    """One backend's section of the report."""
    lines = [f"== {result.label}: {result.url}"]
    if result.status == "skipped":
        lines.append(f"  skipped: {result.reason}")
        return "\n".join(lines)
    if result.server:
        server = ", ".join(f"{k} {v}" for k, v in result.server.items() if k != "server")
        lines.append(f"  server: {server}")
    if result.driver:
        lines.append("  driver: " + ", ".join(f"{k} {v}" for k, v in result.driver.items()))
    if result.status == "failed":
        lines.append(f"  failed: {result.reason}")
    if not result.figures:
        return "\n".join(lines)
    targets_here = any(f.target and f.target.backend == result.name for f in result.figures)
    header = "target" if targets_here else "target (set for PostgreSQL)"
    rows: list[list[str]] = [
        ["figure", "level", "unit", "esrc", "raw", "ratio", header, "", "raw txn (ratio)"]
    ]
    for figure in result.figures:
        rows.append(
            [
                figure.title,
                figure.level,
                figure.unit,
                format_value(figure.esrc, figure.unit) + _spread(figure.esrc_runs),
                format_value(figure.raw, figure.unit) + _spread(figure.raw_runs),
                format_ratio(figure),
                figure.target.describe(figure.unit) if figure.target else "",
                _status(figure, result.name),
                _raw_txn(figure),
            ]
        )
    keep = [i for i in range(len(rows[0])) if i == 0 or any(row[i] for row in rows[1:])]
    right = {keep.index(i) for i in (3, 4, 5, 8) if i in keep}
    lines.append("")
    lines.extend(_table([[row[i] for i in keep] for row in rows], right=right))
    if any(figure.raw_txn_runs for figure in result.figures):
        lines.append(
            "  raw: one autocommitted statement per append; raw txn: the same in an "
            "explicit transaction with a commit (the raw side of schema 1 results)"
        )
    for figure in result.figures:
        if figure.error:
            lines.append(f"  ! {figure.title}: {figure.error}")
        lines.extend(f"  * {figure.title}: {note}" for note in dict.fromkeys(figure.notes))
        if figure.raw_skipped and figure is result.figures[0]:
            lines.append(f"  * raw side skipped: {figure.raw_skipped}")
    return "\n".join(lines)


def _against_target(figure: Figure) -> str:
    """What the target compares, and the target: ``65% (target >= 60% of raw)``."""
    if figure.target is None:
        return ""
    if figure.target.kind in ("min_value", "max_value"):
        shown = f"{format_value(figure.esrc, figure.unit)} {figure.unit}"
    else:
        shown = (
            f"{format_ratio(figure)} of raw" if figure.higher_is_better else format_ratio(figure)
        )
    return f"{shown} (target {figure.target.describe(figure.unit)})"


def render_summary(results: Sequence[BackendResult]) -> str:
    """Which targets were met, on each backend they are set for."""
    lines = ["== targets"]
    for result in results:
        figures = [f for f in result.figures if f.target and f.target.backend == result.name]
        if not figures:
            continue
        met = sum(1 for f in figures if f.target_met(result.name))
        lines.append(f"  {result.label}: {met} of {len(figures)} met")
        for figure in figures:
            status = _status(figure, result.name)
            where = f"{figure.level}: " if figure.level else ""
            lines.append(f"    {status:<6}  {where}{figure.title}: {_against_target(figure)}")
    if len(lines) == 1:
        lines.append("  none evaluated (they are set for PostgreSQL, which did not run)")
    return "\n".join(lines)


def describe_run(
    machine: dict[str, Any], software: dict[str, Any], settings: dict[str, Any]
) -> str:
    """The header: machine, software versions and settings."""
    packages = ", ".join(f"{k} {v}" for k, v in software["packages"].items() if v)
    sizes = ", ".join(f"{k}={v:,}" for k, v in settings["sizes"].items())
    mode = "quick (smoke run, figures not meaningful)" if settings["quick"] else "full"
    lines = [
        "esrc benchmark",
        f"  machine: {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"{machine['memory']}, {machine['cpu_model']}, {machine['os']}",
        f"  python: {software['implementation']} {software['python']}; {packages}; "
        f"SQLite library {software['sqlite_library']}",
        f"  commit: {software['git_commit'] or 'unknown'}",
        f"  run: {mode}; median of {settings['repeat']} run(s) per side, "
        f"{settings['threads']} threads, batch size {settings['batch_size']}",
        f"  sizes: {sizes}",
    ]
    return "\n".join(lines)
