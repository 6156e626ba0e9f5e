"""OpenTelemetry instrumentation (esrc_core.telemetry): the spans, attributes and
metrics of the repository and the relay, recorded by the SDK's in-memory exporter and
reader, and the trace context stored in the events' metadata.

Each test gives esrc providers of its own (``instrument(tracer_provider=...,
meter_provider=...)``) and returns it to the global ones afterwards: the global
providers are never set, so nothing leaks between tests.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from esrc_core.errors import OptimisticConcurrencyError
from esrc_core.events import RawEvent
from esrc_core.plugins import open_async_event_store
from esrc_core.relay import HasOutbox, Relay, RelayEvent
from esrc_core.runner import RelayRunner
from esrc_core.telemetry import (
    TRACEPARENT,
    TRACESTATE,
    instrument,
    instrumented,
    processing,
    uninstrument,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from opentelemetry.trace.span import TraceState

from esrc_core import AsyncRepository, EventStore, Repository, open_event_store
from tests.core.domain import Counter, registry


@dataclass
class Recorded:
    """What the test's providers recorded, and a tracer of the test's own for the
    application's spans ("the command")."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer: Tracer

    def finished(self, *names: str) -> list[ReadableSpan]:
        """The finished spans, in the order they ended; only ``names`` if given."""
        return [s for s in self.spans.get_finished_spans() if not names or s.name in names]

    def one(self, name: str) -> ReadableSpan:
        found = self.finished(name)
        assert len(found) == 1, f"want one {name} span, got {[s.name for s in self.finished()]}"
        return found[0]

    def points(self, name: str) -> list[Any]:
        """The data points of metric ``name`` (none when it was never recorded)."""
        data = self.metrics.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metrics])
    instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield Recorded(spans, metrics, tracer_provider.get_tracer("test"))
    finally:
        instrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()


@pytest.fixture(params=["memory", "sqlite"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """The in-memory store and the SQL store on a SQLite file."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/events.db"
    opened = open_event_store(url)
    yield opened
    opened.close()


def _traceparent(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _span_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


def _traced(metadata: Mapping[str, str]) -> dict[str, str]:
    """``metadata`` but its ``correlation_id``, which every saved event has (see
    esrc_core.correlation); only the trace context and the keys given remain."""
    rest = dict(metadata)
    assert rest.pop("correlation_id", None), f"no correlation_id in {metadata!r}"
    return rest


def test_append_span_and_trace_context_in_metadata(
    recorded: Recorded, any_store: EventStore
) -> None:
    """An add inside the application's span makes an esrc.append child span with the
    aggregate's attributes, and every stored event carries that span's traceparent."""
    repo = Repository(any_store, Counter, registry)
    counter = Counter("c1")
    counter.increment()
    with recorded.tracer.start_as_current_span("command") as command:
        repo.add(counter, metadata={"user": "ann"})

    append = recorded.one("esrc.append")
    assert _parent_id(append) == command.get_span_context().span_id
    assert dict(append.attributes or {}) == {
        "esrc.aggregate.type": "Counter",
        "esrc.aggregate.id": "c1",
        "esrc.stream.version": 2,
        "esrc.events.count": 2,
    }
    assert append.status.status_code is StatusCode.UNSET
    stored = any_store.events("Counter", "c1")
    assert [_traced(e.metadata) for e in stored] == [
        {"user": "ann", TRACEPARENT: _traceparent(append)}
    ] * 2


def test_tracestate_travels_too(recorded: Recorded) -> None:
    """A trace state set on the application's span is stored under ``tracestate``."""
    store = open_event_store("memory://")
    repo = Repository(store, Counter, registry)
    with recorded.tracer.start_as_current_span("command") as command:
        parent = command.get_span_context()
        from opentelemetry.trace import NonRecordingSpan, SpanContext, set_span_in_context

        state = SpanContext(
            parent.trace_id, parent.span_id, False, parent.trace_flags, TraceState([("k", "v")])
        )
        with recorded.tracer.start_as_current_span(
            "with state", context=set_span_in_context(NonRecordingSpan(state))
        ):
            repo.add(Counter("c1"))
    (event,) = store.events("Counter", "c1")
    assert event.metadata[TRACESTATE] == "k=v"
    assert event.metadata[TRACEPARENT] == _traceparent(recorded.one("esrc.append"))


def test_metadata_given_wins_over_the_trace_context(recorded: Recorded) -> None:
    store = open_event_store("memory://")
    repo = Repository(store, Counter, registry)
    repo.add(Counter("c1"), metadata={TRACEPARENT: "given"})
    assert _traced(store.events("Counter", "c1")[0].metadata) == {TRACEPARENT: "given"}


def test_no_trace_context_when_the_span_does_not_record(recorded: Recorded) -> None:
    """A sampler that drops the trace: the append still works, no metadata is added."""
    store = open_event_store("memory://")
    instrument(tracer_provider=TracerProvider(sampler=ALWAYS_OFF))
    Repository(store, Counter, registry).add(Counter("c1"))
    assert _traced(store.events("Counter", "c1")[0].metadata) == {}


def test_uninstrument_records_nothing(recorded: Recorded) -> None:
    store = open_event_store("memory://")
    repo = Repository(store, Counter, registry)
    uninstrument()
    assert not instrumented()
    with recorded.tracer.start_as_current_span("command"):
        repo.add(Counter("c1"))
        repo.find_by_id("c1")
    assert [s.name for s in recorded.finished()] == ["command"]
    assert _traced(store.events("Counter", "c1")[0].metadata) == {}
    assert recorded.points("esrc.append.duration") == []
    instrument()
    assert instrumented()


def test_global_providers_unset_record_nothing() -> None:
    """Instrumented but following the global providers, which the tests never set:
    nothing is written into the metadata."""
    instrument()
    store = open_event_store("memory://")
    Repository(store, Counter, registry).add(Counter("c1"))
    assert _traced(store.events("Counter", "c1")[0].metadata) == {}


def test_load_span_counts_events_and_snapshot_use(
    recorded: Recorded, any_store: EventStore
) -> None:
    """esrc.load says how many events were replayed and whether a snapshot was used;
    the snapshot the policy takes is an esrc.snapshot span beside the append."""
    repo = Repository(any_store, Counter, registry, snapshot_every=3)
    counter = Counter("c1")
    counter.increment()
    repo.add(counter)
    with recorded.tracer.start_as_current_span("command") as command:
        loaded = repo.find_by_id("c1")
        loaded.increment()
        loaded.increment()
        repo.update(loaded)  # crosses version 3: a snapshot at 4
    loaded = repo.find_by_id("c1")
    loaded.increment()
    repo.update(loaded)
    repo.find_by_id("c1")

    loads = recorded.finished("esrc.load")
    assert [dict(s.attributes or {}) for s in loads] == [
        {
            "esrc.aggregate.type": "Counter",
            "esrc.aggregate.id": "c1",
            "esrc.stream.version": version,
            "esrc.events.count": count,
            "esrc.snapshot.used": used,
        }
        for version, count, used in [(2, 2, False), (4, 0, True), (5, 1, True)]
    ]
    command_id = command.get_span_context().span_id
    snapshot = recorded.one("esrc.snapshot")
    assert _parent_id(snapshot) == command_id
    assert dict(snapshot.attributes or {})["esrc.stream.version"] == 4
    in_command = [s.name for s in recorded.finished() if _parent_id(s) == command_id]
    assert in_command == ["esrc.load", "esrc.append", "esrc.snapshot"]

    (loaded_events,) = recorded.points("esrc.load.events")
    assert loaded_events.attributes == {"esrc.aggregate.type": "Counter"}
    assert (loaded_events.count, loaded_events.sum) == (3, 3)


def test_missing_aggregate_load_span_is_an_error(recorded: Recorded) -> None:
    repo = Repository(open_event_store("memory://"), Counter, registry)
    with pytest.raises(LookupError):
        repo.find_by_id("nobody")
    load = recorded.one("esrc.load")
    assert load.status.status_code is StatusCode.ERROR
    assert dict(load.attributes or {})["error.type"] == "AggregateNotFound"


def test_conflicts_and_append_duration_are_measured(recorded: Recorded) -> None:
    store = open_event_store("memory://")
    repo = Repository(store, Counter, registry)
    repo.add(Counter("c1"))
    first, second = repo.find_by_id("c1"), repo.find_by_id("c1")
    first.increment()
    second.increment()
    repo.update(first)
    with pytest.raises(OptimisticConcurrencyError):
        repo.update(second)

    failed = recorded.finished("esrc.append")[-1]
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(failed.attributes or {})["error.type"] == "OptimisticConcurrencyError"
    assert [e.name for e in failed.events] == ["exception"]
    (conflicts,) = recorded.points("esrc.append.conflicts")
    assert (conflicts.value, conflicts.attributes) == (1, {"esrc.aggregate.type": "Counter"})
    durations = {
        tuple(sorted(p.attributes.items())): p for p in recorded.points("esrc.append.duration")
    }
    ok = durations[(("esrc.aggregate.type", "Counter"),)]
    refused = durations[
        (("error.type", "OptimisticConcurrencyError"), ("esrc.aggregate.type", "Counter"))
    ]
    assert (ok.count, refused.count) == (2, 1)
    assert 0 < ok.sum < 10


def test_async_repository_spans_are_children_of_the_task_span(
    recorded: Recorded, tmp_path: Path
) -> None:
    """The bridge carries the task's context into the sync repository, on the async
    SQL store (SQLAlchemy's greenlets) as on the in-memory one."""

    async def main(url: str) -> tuple[int, list[RawEvent]]:
        store = await open_async_event_store(url)
        try:
            repo = AsyncRepository(store, Counter, registry)
            with recorded.tracer.start_as_current_span("command") as command:
                await repo.add(Counter("c1"))
                await repo.find_by_id("c1")
            return command.get_span_context().span_id, list(await store.events("Counter", "c1"))
        finally:
            await store.close()

    for url in ("memory://", f"sqlite+aiosqlite:///{tmp_path}/events.db"):
        recorded.spans.clear()
        command_id, events = asyncio.run(main(url))
        append, load = recorded.one("esrc.append"), recorded.one("esrc.load")
        assert (_parent_id(append), _parent_id(load)) == (command_id, command_id), url
        assert _traced(events[0].metadata) == {TRACEPARENT: _traceparent(append)}, url


def _add_counters(store: EventStore, count: int) -> None:
    for n in range(count):
        store.add_aggregate("Counter", f"c{n}", [RawEvent("CounterCreated", b"{}")])


class _Recording:
    """A batch publisher that records what it is given and may stop a runner."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.batches: list[list[RelayEvent]] = []
        self.runner: RelayRunner | None = None
        self.stop_after = stop_after

    def publish(self, event: RelayEvent) -> None:
        self.publish_batch([event])

    def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        self.batches.append(list(events))
        if self.runner is not None and len(self.batches) == self.stop_after:
            self.runner.stop()

    def close(self) -> None:
        pass


def test_relay_batch_spans(recorded: Recorded) -> None:
    """Each batch read is an esrc.relay.batch span holding the esrc.outbox.read and the
    esrc.publish spans; an empty read makes no span."""
    store = open_event_store("memory://")
    assert isinstance(store, HasOutbox)
    _add_counters(store, 3)
    relay = Relay(store.outbox("projection"), _Recording(), batch_size=2)
    assert [relay.run_once() for _ in range(3)] == [2, 1, 0]

    batches = recorded.finished("esrc.relay.batch")
    assert [dict(s.attributes or {}) for s in batches] == [
        {"esrc.relay.name": "projection", "esrc.relay.batch.size": size} for size in (2, 1)
    ]
    for batch, size in zip(batches, (2, 1), strict=True):
        inside = [s for s in recorded.finished() if _parent_id(s) == _span_id(batch)]
        assert [s.name for s in inside] == ["esrc.outbox.read", "esrc.publish"]
        read, publish = inside
        assert dict(read.attributes or {}) == {
            "esrc.relay.name": "projection",
            "esrc.events.count": size,
            "esrc.outbox.read_ahead": False,
        }
        assert read.start_time == batch.start_time
        assert publish.kind is SpanKind.PRODUCER
        assert dict(publish.attributes or {}) == {
            "esrc.relay.name": "projection",
            "esrc.events.count": size,
        }


@pytest.mark.parametrize("read_ahead", [False, True])
def test_runner_batches_and_lag(recorded: Recorded, tmp_path: Path, read_ahead: bool) -> None:
    """The runner's batches are spans too (read ahead or not), and esrc.relay.lag is
    the store's count of pending events after a full batch, 0 after a short one."""
    store = open_event_store(f"sqlite:///{tmp_path}/events.db")
    _add_counters(store, 5)
    publisher = _Recording(stop_after=2)
    runner = RelayRunner(store, publisher, batch_size=2, log_interval=0, read_ahead=read_ahead)
    publisher.runner = runner
    _run(runner)
    assert [len(b) for b in publisher.batches] == [2, 2]
    batches = recorded.finished("esrc.relay.batch")
    assert [dict(s.attributes or {})["esrc.relay.batch.size"] for s in batches] == [2, 2]
    reads = recorded.finished("esrc.outbox.read")
    assert [dict(s.attributes or {})["esrc.outbox.read_ahead"] for s in reads] == [
        False,
        read_ahead,
    ]
    lags = recorded.points("esrc.relay.lag")
    if read_ahead:
        # The marks land on the runner's second thread: after either batch, the store
        # may not know of one yet, and nothing is measured then.
        assert [p.value for p in lags] in ([], [3], [1])
    else:
        # Measured after the first batch (3 pending); the second came within the
        # interval.
        assert [(p.value, p.attributes) for p in lags] == [(3, {"esrc.relay.name": "default"})]

    publisher = _Recording(stop_after=1)
    runner = RelayRunner(store, publisher, batch_size=2, log_interval=0)
    publisher.runner = runner
    _run(runner)
    assert [len(b) for b in publisher.batches] == [1]
    (lag,) = recorded.points("esrc.relay.lag")
    assert lag.value == 0
    store.close()


def _run(runner: RelayRunner) -> None:
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "the runner did not stop"


def test_processing_links_to_the_append(recorded: Recorded) -> None:
    """A consumer's esrc.process span is a child of its own current span and links to
    the esrc.append span of the command that stored the event."""
    store = open_event_store("memory://")
    assert isinstance(store, HasOutbox)
    with recorded.tracer.start_as_current_span("command"):
        Repository(store, Counter, registry).add(Counter("c1"))
    (event,) = store.outbox("projection").unpublished_events(10)
    with recorded.tracer.start_as_current_span("delivery") as delivery, processing(event) as done:
        done.applied(True)

    append, process = recorded.one("esrc.append"), recorded.one("esrc.process")
    assert process.kind is SpanKind.CONSUMER
    assert _parent_id(process) == delivery.get_span_context().span_id
    (link,) = process.links
    assert (link.context.trace_id, link.context.span_id) == (
        append.context.trace_id,
        append.context.span_id,
    )
    assert link.context.is_remote
    assert dict(process.attributes or {}) == {
        "esrc.aggregate.type": "Counter",
        "esrc.aggregate.id": "c1",
        "esrc.stream.version": 1,
        "esrc.event.name": "CounterCreated",
        "messaging.message.id": "Counter/s:c1/1",
        "esrc.message.duplicate": False,
    }


def test_processing_without_trace_context_has_no_link(recorded: Recorded) -> None:
    event = RelayEvent("Counter", "c1", 1, 1, RawEvent("CounterCreated", b"{}", {}))
    broken = RelayEvent(
        "Counter", "c1", 1, 1, RawEvent("CounterCreated", b"{}", {TRACEPARENT: "x"})
    )
    for each in (event, broken):
        with processing(each):
            pass
    assert [list(s.links) for s in recorded.finished("esrc.process")] == [[], []]


BLOCKER = """
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Blocker())
"""
"""Makes OpenTelemetry unimportable, as if the extra were not installed."""


def test_without_the_api_nothing_is_imported_and_instrument_names_the_extra() -> None:
    script = BLOCKER + (
        "from esrc_core import Repository, open_event_store\n"
        "from esrc_core.telemetry import instrument, instrumented\n"
        "from tests.core.domain import Counter, registry\n"
        "store = open_event_store('memory://')\n"
        "Repository(store, Counter, registry).add(Counter('c1'))\n"
        "meta = dict(store.events('Counter', 'c1')[0].metadata)\n"
        "print(instrumented(), sorted(meta))\n"
        "print(any(m.startswith('opentelemetry') for m in sys.modules))\n"
        "try:\n"
        "    instrument()\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == [
        "False ['correlation_id']",
        "False",
        "esrc telemetry needs the OpenTelemetry API: install esrc-core[otel] "
        "(pip install 'esrc-core[otel]')",
    ]
