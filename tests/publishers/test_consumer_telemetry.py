"""Trace context end to end through a real broker: a command's esrc.append span is
stored in the events' metadata, the relay publishes it in the ``esrc-metadata``
header, and the consumer helper's esrc.process span links to the command's append."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from esrc_core.events import RawEvent
from esrc_core.plugins import open_event_store
from esrc_core.relay import HasOutbox, Relay, RelayEvent
from esrc_core.repository import Repository
from esrc_core.telemetry import TRACEPARENT
from esrc_faststream.consumer import Projection
from esrc_faststream.destination import destination
from esrc_faststream.loop import LoopThread
from opentelemetry.trace import SpanKind

from tests.core.domain import Counter, registry
from tests.core.test_telemetry import Recorded, recorded

__all__ = ["recorded"]  # the fixture, used by name

BROKERS = {"rabbitmq": "amqp_url", "nats": "nats_url", "redis": "redis_url"}
"""Each broker, and the fixture that gives its URL."""


def _wait_until(done: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_consumer_span_links_to_the_command(
    request: pytest.FixtureRequest, broker: str, loop: LoopThread, unique: str, recorded: Recorded
) -> None:
    url: str = request.getfixturevalue(BROKERS[broker])
    place = destination(url, f"esrc-test-{unique}")
    publisher = place.open_publisher()
    applied: list[RelayEvent] = []
    projection = Projection()
    projection.on("CounterCreated", "Incremented")(applied.append)
    consumer = place.faststream_broker(logger=None)
    place.subscribe(consumer, projection, "projection")
    store = open_event_store("memory://")
    assert isinstance(store, HasOutbox)
    try:
        loop.run(consumer.start(), 20)
        counter = Counter("c1")
        counter.increment()
        with recorded.tracer.start_as_current_span("command"):
            Repository(store, Counter, registry).add(counter)
        store.add_aggregate("Counter", "untraced", [RawEvent("CounterCreated", b"{}")])
        relay = Relay(store.outbox("projection"), publisher)
        while relay.run_once():
            pass
        assert _wait_until(lambda: len(applied) >= 3), f"applied {len(applied)} of 3 events"
        assert _wait_until(lambda: len(recorded.finished("esrc.process")) >= 3)
    finally:
        publisher.close()
        loop.run(consumer.stop(), 20)
        place.delete(["projection"], loop=loop)
        store.close()

    append = recorded.one("esrc.append")
    traceparent = applied[0].event.metadata[TRACEPARENT]
    assert traceparent.split("-")[1:3] == [
        f"{append.context.trace_id:032x}",
        f"{append.context.span_id:016x}",
    ]
    processed = recorded.finished("esrc.process")
    by_id = {str(dict(s.attributes or {})["messaging.message.id"]): s for s in processed}
    assert sorted(by_id) == ["Counter/s:c1/1", "Counter/s:c1/2", "Counter/s:untraced/1"]
    for message_id in ("Counter/s:c1/1", "Counter/s:c1/2"):
        span = by_id[message_id]
        assert span.kind is SpanKind.CONSUMER
        (link,) = span.links
        assert (link.context.trace_id, link.context.span_id) == (
            append.context.trace_id,
            append.context.span_id,
        )
        # Linked, not parented: the consumer's work is a trace of its own.
        assert span.context.trace_id != append.context.trace_id
    assert list(by_id["Counter/s:untraced/1"].links) == []
