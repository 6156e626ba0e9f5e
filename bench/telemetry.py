"""``python -m bench.telemetry``: what esrc's OpenTelemetry instrumentation costs.

Measures ``Repository.add`` (a new counter with 2 events) and ``Repository.find_by_id``
(the same counter) on the in-memory store, in microseconds per operation, in five
states, each in a fresh interpreter:

- **absent**: OpenTelemetry made unimportable (an import blocker first on
  ``sys.meta_path``), as when the ``otel`` extra is not installed;
- **off**: the API installed, :func:`esrc_core.telemetry.uninstrument` called;
- **installed**: the API installed, never imported by the application (no provider);
- **no provider**: the application imported ``opentelemetry.trace`` but set no
  provider, so esrc looks at the global providers on each operation and finds the
  API's proxies;
- **recording**: an SDK ``TracerProvider`` (``BatchSpanProcessor`` to an exporter that
  drops the spans) and ``MeterProvider`` given with ``instrument()``: every span,
  trace context and metric is made.

Prints the median of ``--rounds`` rounds of ``--ops`` operations each, per state, and
the ratio to **absent**. The states run interleaved, round by round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Sequence

STATES = ("absent", "off", "installed", "no provider", "recording")

BLOCKER = """
import sys

class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, _Blocker())
"""

SETUP = {
    "absent": BLOCKER,
    "off": "from esrc_core.telemetry import uninstrument\nuninstrument()\n",
    "installed": "",
    "no provider": "import opentelemetry.trace, opentelemetry.metrics\n",
    "recording": """
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from esrc_core.telemetry import instrument


class _Drop(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


tracer_provider = TracerProvider()
tracer_provider.add_span_processor(BatchSpanProcessor(_Drop()))
instrument(
    tracer_provider=tracer_provider,
    meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
)
""",
}
"""What each state's interpreter runs before the measurement."""

MEASURE = """
import json, time
from esrc_core import Repository, open_event_store
from bench.telemetry import Counter, REGISTRY

store = open_event_store("memory://")
repo = Repository(store, Counter, REGISTRY, snapshot_every=0)
ops = {ops}


def add(start):
    for n in range(start, start + ops):
        counter = Counter(n)
        counter.increment()
        repo.add(counter)


def load(start):
    for n in range(start, start + ops):
        repo.find_by_id(n)


add(10_000_000)  # warm up
load(10_000_000)
started = time.perf_counter()
add(0)
added = time.perf_counter() - started
started = time.perf_counter()
load(0)
loaded = time.perf_counter() - started
print(json.dumps({{"add": added / ops * 1e6, "load": loaded / ops * 1e6}}))
"""


def _domain() -> tuple[type, object]:
    """The counter the measurement saves and loads (built here so the child processes
    import it without the test suite)."""
    from dataclasses import dataclass

    from esrc_core import EventRaiserAggregate, EventRegistry

    registry = EventRegistry()

    @registry.register
    @dataclass(frozen=True)
    class Created:
        counter_id: int

    @registry.register
    @dataclass(frozen=True)
    class Incremented:
        by: int = 1

    class Counter(EventRaiserAggregate):
        value = 0

        def __init__(self, counter_id: int) -> None:
            super().__init__()
            self.raise_event(Created(counter_id))

        def increment(self) -> None:
            self.raise_event(Incremented())

        def on_event(self, event: object) -> None:
            match event:
                case Created(counter_id=counter_id):
                    self.id = counter_id
                case Incremented(by=by):
                    self.value += by

    return Counter, registry


Counter, REGISTRY = _domain()


def measure(state: str, ops: int) -> dict[str, float]:
    """One round of ``state`` in a fresh interpreter: microseconds per add and load."""
    script = SETUP[state] + MEASURE.format(ops=ops)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=600
    )
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurement and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry", description=__doc__)
    parser.add_argument("--ops", type=int, default=20_000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per state")
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, float]]] = {state: [] for state in STATES}
    for round_ in range(args.rounds):
        for state in STATES:
            results[state].append(measure(state, args.ops))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    medians = {
        state: {op: statistics.median(r[op] for r in rounds) for op in ("add", "load")}
        for state, rounds in results.items()
    }
    base = medians["absent"]
    print(f"Repository on memory://, {args.ops} ops x {args.rounds} rounds, median µs per op")
    print(f"{'state':<12} {'add':>8} {'x absent':>9} {'load':>8} {'x absent':>9}")
    for state, figures in medians.items():
        print(
            f"{state:<12} {figures['add']:8.2f} {figures['add'] / base['add']:9.3f} "
            f"{figures['load']:8.2f} {figures['load'] / base['load']:9.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
