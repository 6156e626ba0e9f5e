"""The relay: publishes every stored event to a broker, in the outbox's one order.

Guarantees (each backend's outbox keeps them; ``esrc_testkit`` checks them):

- **One total order**: :meth:`EventStoreOutbox.unpublished_events` returns committed
  events in one fixed order, the same on every call and after restarts, consistent
  with each aggregate's version order.
- **Nothing skipped**: an event whose transaction commits late is still returned.
- **Durable, monotonic progress**: :meth:`EventStoreOutbox.mark_events_as_published`
  persists progress; marking twice is harmless; progress never goes backwards.
- **At least once**: a crash between publish and mark gives a duplicate with the same
  :attr:`RelayEvent.message_id`, never a loss.
- The relay stops a batch at the first failure and marks only what was published.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from esrc_core.errors import PublishError
from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId, encode_id

__all__ = [
    "BatchPublisher",
    "EventStoreOutbox",
    "HasOutbox",
    "Publisher",
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
        returned (before anything that commits after it).
        """
        ...

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        """Durably record that ``events`` (a prefix of :meth:`unpublished_events`) were
        published. Marking events already marked is a no-op; progress never goes back."""
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


class Relay:
    """Moves events from an outbox to a publisher, in order.

    :meth:`run_once` relays one batch; :meth:`run` loops until stopped. One
    ``Relay`` is driven by one thread at a time.
    """

    def __init__(
        self,
        outbox: EventStoreOutbox,
        publisher: Publisher,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.2,
        max_backoff: float = 5.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.outbox = outbox
        self.publisher = publisher
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff

    def run_once(self) -> int:
        """Publish one batch of unpublished events and mark what was published.

        Returns the number of events published. If the publisher fails, marks the
        events it did publish before the failure, then raises the error.
        """
        events = self.outbox.unpublished_events(self.batch_size)
        if not events:
            return 0
        published = 0
        try:
            if isinstance(self.publisher, BatchPublisher):
                try:
                    self.publisher.publish_batch(events)
                except PublishError as err:
                    # Trust the count only within the batch: a negative count would
                    # otherwise mark events[:-k], events that were never published.
                    published = max(0, min(err.published, len(events)))
                    raise
                published = len(events)
            else:
                for event in events:
                    self.publisher.publish(event)
                    published += 1
        finally:
            if published:
                self.outbox.mark_events_as_published(events[:published])
                log.debug("relay %s: published %d events", self.outbox.name, published)
        return published

    def run(self, stop: threading.Event) -> int:
        """Relay until ``stop`` is set; returns the number of events published.

        Polls every ``poll_interval`` seconds while the outbox is empty. A failure is
        logged and retried with exponential backoff up to ``max_backoff`` seconds;
        nothing is skipped. The batch in flight when ``stop`` is set is finished.
        """
        total = 0
        backoff = self.poll_interval
        while not stop.is_set():
            try:
                count = self.run_once()
            except Exception:
                log.exception(
                    "relay %s: batch failed, retrying in %.2fs", self.outbox.name, backoff
                )
                stop.wait(backoff)
                backoff = min(self.max_backoff, max(backoff * 2, 0.05))
                continue
            backoff = self.poll_interval
            total += count
            if count < self.batch_size:
                stop.wait(self.poll_interval)
        return total
