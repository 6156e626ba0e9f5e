"""OpenTelemetry traces and metrics of esrc (the ``otel`` extra:
``pip install 'esrc-core[otel]'``).

With ``opentelemetry-api`` installed, esrc records through the providers the
application sets globally (``opentelemetry.trace.set_tracer_provider``,
``opentelemetry.metrics.set_meter_provider``); :func:`instrument` gives it providers
of its own instead, and :func:`uninstrument` turns it off. Without the API, or before
any provider is set, every instrumentation point is one attribute check.

Spans: ``esrc.append``, ``esrc.load``, ``esrc.snapshot`` (the repository),
``esrc.outbox.read``, ``esrc.relay.batch``, ``esrc.publish`` (the relay) and
``esrc.process`` (a consumer handling a relayed event, see :func:`processing`).
Metrics: ``esrc.append.duration``, ``esrc.append.conflicts``, ``esrc.load.events``,
``esrc.relay.lag``. An append made while a span records stores the W3C trace context
of its ``esrc.append`` span in each new event's metadata under :data:`TRACEPARENT`
(and :data:`TRACESTATE`), so that consumers link their work to the command. The
names, attributes and units are listed in the user guide's Observability page.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from esrc_core._telemetry import TELEMETRY, TRACEPARENT, TRACESTATE, Processing

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from esrc_core.relay import RelayEvent

__all__ = [
    "TRACEPARENT",
    "TRACESTATE",
    "Processing",
    "instrument",
    "instrumented",
    "processing",
    "uninstrument",
]


def instrument(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Record esrc's spans with ``tracer_provider`` and its metrics with
    ``meter_provider``; each one not given is the global provider of the time of each
    operation (the default state, so ``instrument()`` undoes an earlier call or
    :func:`uninstrument`).

    Takes effect for every repository, relay and consumer of the process at once.
    Raises ``ImportError`` naming the extra when ``opentelemetry-api`` is not
    installed.
    """
    TELEMETRY.configure(on=True, tracer_provider=tracer_provider, meter_provider=meter_provider)


def uninstrument() -> None:
    """Stop recording: no spans, no metrics, no trace context written into events'
    metadata, until :func:`instrument` is called."""
    TELEMETRY.configure(on=False)


def instrumented() -> bool:
    """Whether esrc's instrumentation is on (the API is installed and
    :func:`uninstrument` was not called). It records once a provider is set."""
    return TELEMETRY.on


def processing(event: RelayEvent) -> AbstractContextManager[Processing]:
    """The span of a consumer handling ``event``: ``esrc.process``, of kind
    ``CONSUMER``, a child of the current span, with a link to the ``esrc.append`` span
    whose trace context the event's metadata carries.

    Use it as ``with processing(event) as handling: ...``, and call
    ``handling.applied(ran)`` to record whether the handler ran
    (``esrc.message.duplicate``). When telemetry does not record it is a shared no-op.
    A link, not a parent: the consumer's work happens later, may be retried or
    replayed, and belongs to the consumer's own trace (as OpenTelemetry's messaging
    conventions recommend), while the link leads from it to the command.
    """
    return TELEMETRY.processing(event)
