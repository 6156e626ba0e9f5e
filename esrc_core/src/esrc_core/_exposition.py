"""The Prometheus text exposition format, version 0.0.4, as written for a scrape.

A page is a list of :class:`Family`: each is a ``# HELP`` line, a ``# TYPE`` line and
its samples, one line each, ``name{label="value",...} number``. Help text escapes
backslashes and line feeds; label values escape backslashes, double quotes and line
feeds. Counters are named with their ``_total`` suffix on every line, as Prometheus's
own client libraries write them in this format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CONTENT_TYPE", "Family", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The ``Content-Type`` of a page in this format."""

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


@dataclass(frozen=True)
class Family:
    """One metric: its name, whether it is a counter or a gauge, its help text, and its
    samples as ``(labels, value)`` pairs. A family without samples is written without
    them (its ``HELP`` and ``TYPE`` only). Raises ``ValueError`` for a name or label
    name Prometheus does not accept, or a counter whose name lacks ``_total``."""

    name: str
    kind: Literal["counter", "gauge"]
    help: str
    samples: list[tuple[Mapping[str, str], float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _METRIC_NAME.match(self.name):
            raise ValueError(f"not a metric name: {self.name!r}")
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} should end with _total")
        for labels, _ in self.samples:
            self._check(labels)

    def add(self, value: float, **labels: str) -> Family:
        """Add a sample with ``labels``; returns the family, for chaining."""
        self._check(labels)
        self.samples.append((labels, value))
        return self

    def _check(self, labels: Mapping[str, str]) -> None:
        bad = [name for name in labels if not _LABEL_NAME.match(name)]
        if bad:
            raise ValueError(f"metric {self.name}: not label names: {bad!r}")


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    """The page for ``families``, in their order, ending with a line feed."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            text = ",".join(f'{name}="{_label_value(v)}"' for name, v in labels.items())
            selector = f"{family.name}{{{text}}}" if text else family.name
            lines.append(f"{selector} {_number(value)}")
    return "\n".join(lines) + "\n"
