"""esrc's OpenTelemetry instrumentation: the state behind :mod:`esrc_core.telemetry`
and the helpers the repository, the relay and the consumers call.

OpenTelemetry is optional (the ``otel`` extra installs ``opentelemetry-api``). Every
instrumentation point starts with ``if TELEMETRY.on``: when the API is not installed,
or :func:`~esrc_core.telemetry.uninstrument` was called, that attribute check is all
it costs. When it is installed the API is imported only once something in the process
imported it (an application that configures OpenTelemetry does) or once
:func:`~esrc_core.telemetry.instrument` was given a provider; until then
:meth:`Telemetry.instruments` answers ``None`` after one dictionary look-up. Without
an SDK provider set (the API's default proxies) it answers ``None`` too, so an
installed but unconfigured API costs no spans.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, MeterProvider
    from opentelemetry.trace import Link, Span, Tracer, TracerProvider


__all__ = [
    "AGGREGATE_ID",
    "AGGREGATE_TYPE",
    "APPEND",
    "APPEND_CONFLICTS",
    "APPEND_DURATION",
    "ERROR_TYPE",
    "EVENTS_COUNT",
    "EVENT_NAME",
    "LOAD",
    "LOAD_EVENTS",
    "MESSAGE_DUPLICATE",
    "MESSAGE_ID",
    "OUTBOX_READ",
    "PROCESS",
    "PUBLISH",
    "READ_AHEAD",
    "RELAY_BATCH",
    "RELAY_BATCH_SIZE",
    "RELAY_LAG",
    "RELAY_NAME",
    "SNAPSHOT",
    "SNAPSHOT_USED",
    "STREAM_VERSION",
    "TELEMETRY",
    "TRACEPARENT",
    "TRACESTATE",
    "Instruments",
    "Processing",
    "Telemetry",
    "id_attribute",
]

# --- names (documented in docs/observability.md) ---------------------------------------

APPEND = "esrc.append"
LOAD = "esrc.load"
SNAPSHOT = "esrc.snapshot"
OUTBOX_READ = "esrc.outbox.read"
RELAY_BATCH = "esrc.relay.batch"
PUBLISH = "esrc.publish"
PROCESS = "esrc.process"

AGGREGATE_TYPE = "esrc.aggregate.type"
AGGREGATE_ID = "esrc.aggregate.id"
STREAM_VERSION = "esrc.stream.version"
EVENTS_COUNT = "esrc.events.count"
SNAPSHOT_USED = "esrc.snapshot.used"
RELAY_NAME = "esrc.relay.name"
RELAY_BATCH_SIZE = "esrc.relay.batch.size"
READ_AHEAD = "esrc.outbox.read_ahead"
EVENT_NAME = "esrc.event.name"
MESSAGE_ID = "messaging.message.id"
MESSAGE_DUPLICATE = "esrc.message.duplicate"
ERROR_TYPE = "error.type"

APPEND_DURATION = "esrc.append.duration"
APPEND_CONFLICTS = "esrc.append.conflicts"
LOAD_EVENTS = "esrc.load.events"
RELAY_LAG = "esrc.relay.lag"

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_SCOPE = "esrc"


def id_attribute(aggregate_id: AggregateId) -> str | int:
    """An aggregate id as a span attribute value: ints stay ints, the rest is text."""
    return aggregate_id if isinstance(aggregate_id, int | str) else str(aggregate_id)


def _installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.trace") is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class _Api:
    """The OpenTelemetry API modules and classes, imported once."""

    trace: Any
    metrics: Any
    propagator: Any
    proxy_tracer_provider: type[Any]


def _import_api() -> _Api:
    trace = importlib.import_module("opentelemetry.trace")
    metrics = importlib.import_module("opentelemetry.metrics")
    tracecontext = importlib.import_module("opentelemetry.trace.propagation.tracecontext")
    return _Api(
        trace=trace,
        metrics=metrics,
        propagator=tracecontext.TraceContextTextMapPropagator(),
        proxy_tracer_provider=trace.ProxyTracerProvider,
    )


class Instruments:
    """The tracer and the metric instruments of one pair of providers, and the helpers
    the instrumentation points use while telemetry records."""

    def __init__(self, api: _Api, tracer_provider: TracerProvider, meter_provider: MeterProvider):
        try:
            version = importlib.metadata.version("esrc-core")
        except importlib.metadata.PackageNotFoundError:
            version = ""
        self.api = api
        self.tracer: Tracer = tracer_provider.get_tracer(_SCOPE, version)
        meter = meter_provider.get_meter(_SCOPE, version)
        self.append_duration: Histogram = meter.create_histogram(
            APPEND_DURATION, unit="s", description="Time the event store took to append"
        )
        self.append_conflicts: Counter = meter.create_counter(
            APPEND_CONFLICTS,
            unit="{conflict}",
            description="Appends refused because the stream moved on or already exists",
        )
        self.load_events: Histogram = meter.create_histogram(
            LOAD_EVENTS, unit="{event}", description="Events replayed per aggregate load"
        )
        self.relay_lag: Any = meter.create_gauge(
            RELAY_LAG, unit="{event}", description="Events stored but not yet relayed"
        )

    def span(
        self,
        name: str,
        attributes: Mapping[str, Any],
        *,
        kind: str = "INTERNAL",
        links: Sequence[Link] = (),
    ) -> AbstractContextManager[Span]:
        """Start span ``name`` as the current span; an exception leaving the block is
        recorded on it and sets its status to error."""
        return self.tracer.start_as_current_span(
            name,
            kind=self.api.trace.SpanKind[kind],
            attributes=attributes,
            links=links or None,
        )

    def trace_context(self, span: Span) -> dict[str, str]:
        """The W3C trace context of ``span`` (``traceparent``, ``tracestate`` when it has
        one) when it records, else nothing."""
        if not span.is_recording():
            return {}
        carrier: dict[str, str] = {}
        self.api.propagator.inject(carrier, self.api.trace.set_span_in_context(span))
        return carrier

    def links_from(self, metadata: Mapping[str, str]) -> list[Link]:
        """A link to the span context ``metadata`` carries (see :meth:`trace_context`),
        or none when it carries no valid one."""
        if TRACEPARENT not in metadata:
            return []
        context = self.api.propagator.extract(metadata)
        span_context = self.api.trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return []
        return [self.api.trace.Link(span_context)]

    @contextmanager
    def relay_batch(
        self,
        relay: str,
        events: Sequence[object],
        read: tuple[int, int],
        *,
        read_ahead: bool = False,
    ) -> Iterator[Span]:
        """The ``esrc.relay.batch`` span of relay ``relay`` publishing ``events``, begun
        when they were read, with the ``esrc.outbox.read`` span of that read (``read``
        holds its start and end in ``time.time_ns()``) inside it. Both are made once
        the read returned events, so a relay polling an empty outbox makes no spans."""
        trace = self.api.trace
        count = len(events)
        batch = self.tracer.start_span(
            RELAY_BATCH, attributes={RELAY_NAME: relay, RELAY_BATCH_SIZE: count}, start_time=read[0]
        )
        with trace.use_span(batch, end_on_exit=True, record_exception=True) as span:
            attributes: dict[str, Any] = {
                RELAY_NAME: relay,
                EVENTS_COUNT: count,
                READ_AHEAD: read_ahead,
            }
            self.tracer.start_span(OUTBOX_READ, attributes=attributes, start_time=read[0]).end(
                end_time=read[1]
            )
            yield span

    @staticmethod
    def failed(span: Span, err: BaseException) -> None:
        """Name the error's type on ``span`` (the exception itself is recorded by the
        span's block)."""
        span.set_attribute(ERROR_TYPE, type(err).__qualname__)


class Processing:
    """What :func:`esrc_core.telemetry.processing` yields: call :meth:`applied` with
    whether the handler ran (``False`` for a message applied before)."""

    __slots__ = ("_span",)

    def __init__(self, span: Span | None) -> None:
        self._span = span

    def applied(self, ran: bool) -> None:
        """Record on the span whether the handler ran."""
        if self._span is not None:
            self._span.set_attribute(MESSAGE_DUPLICATE, not ran)


class Telemetry:
    """The process-wide telemetry switch and providers; :data:`TELEMETRY` is the one
    instance.

    :attr:`on` is what every instrumentation point checks first: ``False`` when the
    OpenTelemetry API is not installed or telemetry was turned off. Thread-safe.
    """

    def __init__(self) -> None:
        self.on: bool = _installed()
        """Whether instrumentation points ask :meth:`instruments` at all."""
        self._tracer_provider: TracerProvider | None = None
        self._meter_provider: MeterProvider | None = None
        self._api: _Api | None = None
        self._cached: tuple[object, object, Instruments | None] | None = None
        self._lock = threading.Lock()

    def configure(
        self,
        *,
        on: bool,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        """Turn telemetry on (with these providers, ``None`` following the global ones)
        or off. Raises ``ImportError`` when turning it on without the API installed."""
        if on and not _installed():
            raise ImportError(
                "esrc telemetry needs the OpenTelemetry API: install esrc-core[otel] "
                "(pip install 'esrc-core[otel]')"
            )
        with self._lock:
            self._tracer_provider = tracer_provider
            self._meter_provider = meter_provider
            self._cached = None
            self.on = on

    def _api_now(self, explicit: bool) -> _Api | None:
        """The API modules: imported when a provider was given or when something in the
        process has imported OpenTelemetry; ``None`` otherwise."""
        api = self._api
        if api is None:
            modules = sys.modules
            if (
                not explicit
                and "opentelemetry.trace" not in modules
                and "opentelemetry.metrics" not in modules
            ):
                return None
            with self._lock:
                api = self._api = self._api or _import_api()
        return api

    def instruments(self) -> Instruments | None:
        """The instruments to record with now, or ``None`` when nothing would record
        (no provider given, and the global ones are the API's unconfigured proxies)."""
        tracer_provider, meter_provider = self._tracer_provider, self._meter_provider
        api = self._api_now(tracer_provider is not None or meter_provider is not None)
        if api is None:
            return None
        if tracer_provider is None:
            tracer_provider = api.trace.get_tracer_provider()
        if meter_provider is None:
            meter_provider = api.metrics.get_meter_provider()
        cached = self._cached
        if cached is not None and cached[0] is tracer_provider and cached[1] is meter_provider:
            return cached[2]
        # Before an application sets its providers, the API hands out proxies that
        # record nothing; the meter's proxy class is private, hence its name here.
        idle = isinstance(tracer_provider, api.proxy_tracer_provider) and (
            type(meter_provider).__name__ == "_ProxyMeterProvider"
        )
        live = None if idle else Instruments(api, tracer_provider, meter_provider)
        self._cached = (tracer_provider, meter_provider, live)
        return live

    def processing(self, event: Relayed) -> AbstractContextManager[Processing]:
        """The ``esrc.process`` span of a consumer handling ``event``, linked to the span
        context in its metadata; a shared no-op when telemetry does not record."""
        live = self.instruments() if self.on else None
        if live is None:
            return _NOT_PROCESSING
        return _processing(live, event)


@contextmanager
def _processing(live: Instruments, event: Relayed) -> Iterator[Processing]:
    attributes = {
        AGGREGATE_TYPE: event.aggregate_type,
        AGGREGATE_ID: id_attribute(event.aggregate_id),
        STREAM_VERSION: event.version,
        EVENT_NAME: event.event.name,
        MESSAGE_ID: event.message_id,
    }
    links = live.links_from(event.event.metadata)
    with live.span(PROCESS, attributes, kind="CONSUMER", links=links) as span:
        yield Processing(span)


class Relayed(Protocol):
    """What a consumer's span needs of a relayed event: an
    :class:`~esrc_core.relay.RelayEvent` (stated as a protocol so that the relay, which
    records its own spans here, and this module do not import each other)."""

    @property
    def aggregate_type(self) -> str: ...
    @property
    def aggregate_id(self) -> AggregateId: ...
    @property
    def version(self) -> int: ...
    @property
    def event(self) -> RawEvent: ...
    @property
    def message_id(self) -> str: ...


class _NotProcessing:
    """The shared no-op :class:`Processing` context."""

    __slots__ = ()

    def __enter__(self) -> Processing:
        return _NO_PROCESSING

    def __exit__(self, *exc: object) -> None:
        return None


_NO_PROCESSING = Processing(None)
_NOT_PROCESSING = _NotProcessing()

TELEMETRY = Telemetry()
"""The process's telemetry state (see :class:`Telemetry`)."""
