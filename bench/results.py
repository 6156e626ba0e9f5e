"""What a run produces: figures (esrc beside raw), the targets they are held to, and the
JSON document that lets runs be compared."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["BackendResult", "Figure", "Target", "save_results", "write_json"]

SCHEMA = 2
"""Version of the JSON layout; bumped when a field changes meaning.

2: figure keys start with their level (``store_`` or ``repository_``; schema 1's
``append_*`` keys are today's ``store_append_*``, its ``load_*`` keys today's
``repository_load_*``); the raw side appends in autocommit mode, and the explicit
transaction of schema 1's raw side is kept as ``raw_txn`` (with ``ratio_txn``)."""


@dataclass(frozen=True)
class Target:
    """A goal for one figure on one backend. It is printed and recorded, never asserted.

    ``kind`` says what is compared with ``threshold``: ``min_ratio`` (esrc at least
    that fraction of raw), ``max_ratio`` (esrc at most that multiple of raw),
    ``min_value`` (esrc's own figure at least that much) or ``max_value`` (at most).
    """

    kind: Literal["min_ratio", "max_ratio", "min_value", "max_value"]
    threshold: float
    backend: str = "postgresql"

    def describe(self, unit: str) -> str:
        """The target in words, e.g. ``>= 60% of raw``."""
        if self.kind == "min_ratio":
            return f">= {self.threshold:.0%} of raw"
        if self.kind == "max_ratio":
            return f"<= {self.threshold:g}x raw"
        if self.kind == "max_value":
            return f"<= {self.threshold:,.0f} {unit}"
        return f">= {self.threshold:,.0f} {unit}"

    def met(self, figure: Figure) -> bool | None:
        """Whether ``figure`` meets the target; ``None`` when it cannot be told (no
        figure, or no raw figure for a ratio)."""
        value = figure.esrc if self.kind in ("min_value", "max_value") else figure.ratio
        if value is None:
            return None
        if self.kind in ("max_ratio", "max_value"):
            return value <= self.threshold
        return value >= self.threshold


@dataclass
class Figure:
    """One measurement: esrc's runs and the raw driver's runs of the same work.

    ``unit`` is what each run's value counts (``events/s``, ``ms/load``);
    ``higher_is_better`` says which way is good. Figures are medians of the runs.
    ``ratio`` is esrc's median divided by raw's: for a rate, the fraction of the raw
    speed esrc reaches; for a time, how many times longer esrc takes.
    ``level`` says what esrc's side calls: ``store`` (the event store, with prebuilt
    raw events), ``repository`` (the :class:`~esrc_core.Repository`, with the
    aggregate and the encoding), or ``""`` for figures of neither kind.
    ``raw_txn_runs`` holds, for appends, the raw driver's runs with an explicit
    transaction and commit per append (the raw side of schema 1), kept for comparison.
    """

    key: str
    title: str
    unit: str
    higher_is_better: bool
    work: dict[str, int]
    target: Target | None = None
    level: str = ""
    esrc_runs: list[float] = field(default_factory=list)
    raw_runs: list[float] = field(default_factory=list)
    raw_txn_runs: list[float] = field(default_factory=list)
    raw_skipped: str | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def esrc(self) -> float | None:
        """The median of esrc's runs, or ``None`` if none finished."""
        return statistics.median(self.esrc_runs) if self.esrc_runs else None

    @property
    def raw(self) -> float | None:
        """The median of the raw driver's runs, or ``None`` if none finished."""
        return statistics.median(self.raw_runs) if self.raw_runs else None

    @property
    def raw_txn(self) -> float | None:
        """The median of the raw driver's explicit-transaction runs, or ``None``."""
        return statistics.median(self.raw_txn_runs) if self.raw_txn_runs else None

    @property
    def ratio(self) -> float | None:
        """esrc's median over raw's median, or ``None`` when either is missing."""
        return _ratio(self.esrc, self.raw)

    @property
    def ratio_txn(self) -> float | None:
        """esrc's median over the explicit-transaction raw median, or ``None``."""
        return _ratio(self.esrc, self.raw_txn)

    def target_met(self, backend: str) -> bool | None:
        """Whether the target is met on ``backend``; ``None`` if the figure has no
        target, the target is for another backend, or it cannot be told."""
        if self.target is None or self.target.backend != backend:
            return None
        return self.target.met(self)

    def to_json(self, backend: str) -> dict[str, Any]:
        """The figure as a JSON object."""
        target: dict[str, Any] | None = None
        if self.target is not None:
            target = {
                "kind": self.target.kind,
                "threshold": self.target.threshold,
                "backend": self.target.backend,
                "text": self.target.describe(self.unit),
                "met": self.target.met(self),
                "applies": self.target.backend == backend,
            }
        return {
            "key": self.key,
            "level": self.level,
            "title": self.title,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "work": self.work,
            "esrc": {"median": self.esrc, "runs": self.esrc_runs},
            "raw": {"median": self.raw, "runs": self.raw_runs, "skipped": self.raw_skipped},
            "ratio": self.ratio,
            "raw_txn": {"median": self.raw_txn, "runs": self.raw_txn_runs},
            "ratio_txn": self.ratio_txn,
            "target": target,
            "error": self.error,
            "notes": self.notes,
        }


def _ratio(esrc: float | None, raw: float | None) -> float | None:
    if esrc is None or raw is None or raw == 0:
        return None
    return esrc / raw


@dataclass
class BackendResult:
    """Everything measured on one backend, or why it was skipped."""

    name: str
    label: str
    url: str
    status: Literal["ok", "skipped", "failed"] = "ok"
    reason: str | None = None
    server: dict[str, str] = field(default_factory=dict)
    driver: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON object (``url`` is already masked)."""
        return {
            "name": self.name,
            "label": self.label,
            "url": self.url,
            "status": self.status,
            "reason": self.reason,
            "server": self.server,
            "driver": self.driver,
            "settings": self.settings,
            "figures": [f.to_json(self.name) for f in self.figures],
        }


def write_json(path: Path, document: dict[str, Any]) -> Path:
    """Write ``document`` (with the schema version added) to ``path``, or to a sibling
    with a numeric suffix if ``path`` exists; return the path written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, number = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        number += 1
    candidate.write_text(json.dumps({"schema": SCHEMA, **document}, indent=2) + "\n")
    return candidate


def save_results(
    directory: Path, started: dt.datetime, document: dict[str, Any], prefix: str = ""
) -> Path:
    """Write a run's ``document`` to ``directory/<prefix><start time>.json`` (see
    :func:`write_json`), say where on stderr, and return the path."""
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    path = write_json(directory / f"{prefix}{stamp}.json", document)
    print(f"\nresults written to {path}", file=sys.stderr)
    return path
