"""The relay: publishes every stored event to a broker, in the outbox's one order.

Guarantees (each backend's outbox keeps them; ``esrc_testkit`` checks them):

- **One total order**: :meth:`EventStoreOutbox.unpublished_events` returns committed
  events in one fixed order, the same on every call and after restarts, consistent
  with each aggregate's version order.
- **Nothing skipped**: an event whose transaction commits late is still returned,
  after everything already returned (the order is not necessarily commit order).
- **Durable, monotonic progress**: :meth:`EventStoreOutbox.mark_events_as_published`
  persists progress; marking twice is harmless; progress never goes backwards.
- **At least once**: a crash between publish and mark gives a duplicate with the same
  :attr:`RelayEvent.message_id`, never a loss.
- The relay stops a batch at the first failure and marks only what was published.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from esrc_core import _telemetry as otel
from esrc_core._telemetry import TELEMETRY
from esrc_core.errors import PublishError
from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId, encode_id
from esrc_core.store import check_int

__all__ = [
    "AsyncBatchPublisher",
    "AsyncPublisher",
    "BatchPublisher",
    "EventStoreOutbox",
    "HasOutbox",
    "Publisher",
    "ReadAheadOutbox",
    "Relay",
    "RelayEvent",
    "WaitingOutbox",
    "message_id",
]

log = logging.getLogger("esrc.relay")


def message_id(aggregate_type: str, aggregate_id: AggregateId, version: int) -> str:
    """The deterministic id of an event: ``<type>/<encoded id>/<version>``.

    The same event always gets the same id, so brokers and consumers can drop
    duplicates that at-least-once delivery produces.
    """
    return f"{aggregate_type}/{encode_id(aggregate_id)}/{version}"


@dataclass(frozen=True, slots=True, init=False)
class RelayEvent:
    """A stored event on its way to a broker.

    ``RelayEvent(aggregate_type, aggregate_id, version, position, event)``.
    ``position`` is the event's global sequence number in the store: unique, but the
    outbox's order is the order of the list it returns, not necessarily by position.
    """

    aggregate_type: str
    aggregate_id: AggregateId
    version: int
    position: int
    event: RawEvent

    def __init__(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        version: int,
        position: int,
        event: RawEvent,
    ) -> None:
        # An outbox builds one per event it reads: setting the slots directly costs a
        # third of the frozen dataclass's generated __init__.
        _set_aggregate_type(self, aggregate_type)
        _set_aggregate_id(self, aggregate_id)
        _set_version(self, version)
        _set_position(self, position)
        _set_event(self, event)

    @property
    def message_id(self) -> str:
        """The deterministic message id (see :func:`message_id`)."""
        return message_id(self.aggregate_type, self.aggregate_id, self.version)


# The slots' own setters, which the frozen class's __setattr__ does not guard.
_set_aggregate_type: Callable[[RelayEvent, str], None] = RelayEvent.__dict__[
    "aggregate_type"
].__set__
_set_aggregate_id: Callable[[RelayEvent, AggregateId], None] = RelayEvent.__dict__[
    "aggregate_id"
].__set__
_set_version: Callable[[RelayEvent, int], None] = RelayEvent.__dict__["version"].__set__
_set_position: Callable[[RelayEvent, int], None] = RelayEvent.__dict__["position"].__set__
_set_event: Callable[[RelayEvent, RawEvent], None] = RelayEvent.__dict__["event"].__set__


@runtime_checkable
class EventStoreOutbox(Protocol):
    """One named relay's view of the store: the events it has not yet published.

    Both methods are safe to call from several threads, but one relay name should
    have one active consumer at a time.
    """

    @property
    def name(self) -> str:
        """The relay name whose progress this outbox tracks."""
        ...

    def unpublished_events(self, limit: int) -> list[RelayEvent]:
        """Up to ``limit`` committed events not yet marked, first in the total order.

        Never skips an event: one that commits after later ones were returned is still
        returned, in its place in the order, which is after everything already handed
        out. The order is each backend's, consistent with every aggregate's versions
        and not necessarily commit order (see "Nothing skipped" in the relay guide: on
        PostgreSQL it is the order in which the writing transactions took their ids).
        A ``limit`` below 1 or above
        :data:`~esrc_core.store.INT64_MAX` raises
        :class:`~esrc_core.errors.OutOfRangeError`.
        """
        ...

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        """Durably record that ``events`` (a prefix of :meth:`unpublished_events`) were
        published. Marking events already marked is a no-op; progress never goes back."""
        ...


@runtime_checkable
class ReadAheadOutbox(Protocol):
    """An outbox capability: read the events that follow one already handed out, before
    that one is marked, so that a relay reads the next batch while it publishes this one.
    """

    def unpublished_events_after(self, event: RelayEvent, limit: int) -> list[RelayEvent]:
        """Up to ``limit`` committed events that follow ``event`` in the outbox order,
        whatever the checkpoint says.

        ``event`` is one this outbox handed out (by :meth:`EventStoreOutbox.unpublished_events`
        or by this method); the result is what :meth:`EventStoreOutbox.unpublished_events`
        would return once everything up to ``event`` were marked, with the same
        guarantee: an event whose transaction commits late is still returned, after
        ``event``. Reading ahead is a read: nothing is marked. A relay that fails to
        publish goes back to the checkpoint (:meth:`EventStoreOutbox.unpublished_events`)
        and drops what it read ahead, so nothing is skipped. Raises ``ValueError`` for an
        event the outbox never handed out.
        """
        ...


@runtime_checkable
class WaitingOutbox(Protocol):
    """An outbox capability: block until new events may be there, instead of polling."""

    def wait_for_events(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until there may be unpublished events.

        Returns ``True`` then (a hint, not a promise) and ``False`` on timeout. Raises
        :class:`~esrc_core.errors.StoreUnavailableError` when the store is away.
        """
        ...


@runtime_checkable
class HasOutbox(Protocol):
    """A store capability: it keeps an outbox per relay name."""

    def outbox(self, name: str = "default") -> EventStoreOutbox:
        """The outbox of relay ``name``; independent names progress independently."""
        ...


@runtime_checkable
class Publisher(Protocol):
    """Delivers relayed events to a broker.

    :meth:`publish` returns only once the broker has accepted the event (a publisher
    confirm or equivalent) and raises on failure. Publishing the same event twice must
    give the broker the same message id.
    """

    def publish(self, event: RelayEvent) -> None:
        """Deliver one event; raise if the broker did not accept it."""
        ...

    def close(self) -> None:
        """Release the broker connection. Calling it twice is harmless."""
        ...


@runtime_checkable
class BatchPublisher(Publisher, Protocol):
    """A publisher capability: deliver many events at once, in order."""

    def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        """Deliver ``events`` in order; on failure raise :class:`PublishError` whose
        ``published`` counts the leading events the broker did accept."""
        ...


@runtime_checkable
class AsyncPublisher(Protocol):
    """:class:`~esrc_core.relay.Publisher`'s contract with coroutines: :meth:`publish`
    returns once the broker accepted the event and raises on failure; the same event
    published twice carries the same message id. Used from one event loop."""

    async def publish(self, event: RelayEvent) -> None:
        """Deliver one event; raise if the broker did not accept it."""
        ...

    async def close(self) -> None:
        """Release the broker connection. Calling it twice is harmless."""
        ...


@runtime_checkable
class AsyncBatchPublisher(AsyncPublisher, Protocol):
    """The ``batch`` capability of an async publisher:
    :class:`~esrc_core.relay.BatchPublisher`'s contract with a coroutine."""

    async def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        """Deliver ``events`` in order; on failure raise
        :class:`~esrc_core.errors.PublishError` whose ``published`` counts the leading
        events the broker accepted."""
        ...


class Relay:
    """Moves one batch of events from an outbox to a publisher, in order.

    :meth:`run_once` relays one batch. To keep relaying until stopped (waiting for new
    events, retrying failures, one relay per name) use
    :class:`~esrc_core.runner.RelayRunner`, which calls :meth:`run_once` in its loop.
    One ``Relay`` is driven by one thread at a time.
    """

    def __init__(
        self,
        outbox: EventStoreOutbox,
        publisher: Publisher,
        *,
        batch_size: int = 500,
    ) -> None:
        check_int(batch_size, "batch_size", doing="create a Relay", minimum=1)
        self.outbox = outbox
        self._publisher = publisher
        # Whether the publisher has the 'batch' capability, decided once. This module
        # defines the capability's protocol, so it asks the protocol itself: the
        # capability table (esrc_core.capabilities) is built on top of this module.
        self._batch = publisher if isinstance(publisher, BatchPublisher) else None
        self.batch_size = batch_size

    @property
    def publisher(self) -> Publisher:
        """The publisher events go to (``publish_batch`` when it has the ``batch``
        capability, else ``publish`` per event)."""
        return self._publisher

    def run_once(self) -> int:
        """Publish one batch of unpublished events and mark what was published.

        Returns the number of events published. If the publisher fails, marks the
        events it did publish before the failure, then raises the error.
        """
        if TELEMETRY.on and (live := TELEMETRY.instruments()) is not None:
            started = time.time_ns()
            events = self.outbox.unpublished_events(self.batch_size)
            if not events:
                return 0
            with live.relay_batch(self.outbox.name, events, (started, time.time_ns())):
                return self.publish(events)
        return self.publish(self.outbox.unpublished_events(self.batch_size))

    def publish(self, events: Sequence[RelayEvent]) -> int:
        """Publish ``events``, in order, and mark what was published.

        ``events`` are the outbox's next unpublished events, in its order (what
        :meth:`EventStoreOutbox.unpublished_events` or
        :meth:`ReadAheadOutbox.unpublished_events_after` returned after the last batch
        published). Returns the number published; if the publisher fails, marks the
        events it did publish before the failure, then raises the error.
        """
        if not events:
            return 0
        published = 0
        try:
            with self._publishing(events):
                if self._batch is not None:
                    try:
                        self._batch.publish_batch(events)
                    except PublishError as err:
                        # Trust the count only within the batch: a negative count would
                        # otherwise mark events[:-k], events that were never published.
                        published = max(0, min(err.published, len(events)))
                        raise
                    published = len(events)
                else:
                    publish = self._publisher.publish
                    for event in events:
                        publish(event)
                        published += 1
        finally:
            if published:
                self.outbox.mark_events_as_published(events[:published])
                log.debug(
                    "relay %s: published %d events",
                    self.outbox.name,
                    published,
                    extra={
                        "relay": self.outbox.name,
                        "events": published,
                        "position": events[published - 1].position,
                    },
                )
        return published

    def _publishing(self, events: Sequence[RelayEvent]) -> AbstractContextManager[Any]:
        """The ``esrc.publish`` span around handing ``events`` to the publisher, or
        nothing when telemetry does not record."""
        if TELEMETRY.on and (live := TELEMETRY.instruments()) is not None:
            attributes = {otel.RELAY_NAME: self.outbox.name, otel.EVENTS_COUNT: len(events)}
            return live.span(otel.PUBLISH, attributes, kind="PRODUCER")
        return nullcontext()
