"""Counting what the relay published and what each consumer received, so a caller can
wait until every published event has been handled (the demo and the tests do).

Both classes wrap the real thing and change nothing about it: :class:`PublishLog`
wraps a :class:`~esrc_core.Publisher`, :class:`DeliveryLog` wraps a consumer's
:class:`~esrc_faststream.consumer.SeenMessages`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from esrc_faststream.consumer import SeenMessages

from esrc_core import BatchPublisher, Capability, Publisher, PublishError, RelayEvent, offered

__all__ = ["DeliveryLog", "PublishLog"]


class PublishLog:
    """A :class:`~esrc_core.BatchPublisher` that delivers through ``publisher`` and
    counts, per message id, how many times the broker accepted the message.

    A batch that fails part way counts the events the error says were published.
    Thread-safe.
    """

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self._published: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, events: Sequence[RelayEvent]) -> None:
        with self._lock:
            self._published.update(e.message_id for e in events)

    def publish(self, event: RelayEvent) -> None:
        """Publish one event and count it."""
        self.publisher.publish(event)
        self._count([event])

    def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        """Publish ``events`` in order and count those the broker accepted."""
        batch = offered(self.publisher, Capability.BATCH, BatchPublisher)
        if batch is not None:
            try:
                batch.publish_batch(events)
            except PublishError as err:
                self._count(events[: max(0, min(err.published, len(events)))])
                raise
            self._count(events)
            return
        for index, event in enumerate(events):
            try:
                self.publisher.publish(event)
            except Exception as err:
                self._count(events[:index])
                raise PublishError(f"publish {event.message_id}: {err}", published=index) from err
        self._count(events)

    def close(self) -> None:
        """Close the wrapped publisher."""
        self.publisher.close()

    def published(self) -> Counter[str]:
        """How many times each message id was published so far (a copy)."""
        with self._lock:
            return Counter(self._published)

    @property
    def total(self) -> int:
        """How many messages were published, duplicates included."""
        with self._lock:
            return self._published.total()


class DeliveryLog:
    """A :class:`~esrc_faststream.consumer.SeenMessages` that delegates to ``seen`` and
    counts, per message id, the deliveries the consumer finished handling (applied, or
    dropped as a duplicate). A delivery whose handler raised is not counted: the broker
    delivers it again. Thread-safe."""

    def __init__(self, seen: SeenMessages) -> None:
        self.seen = seen
        self._delivered: Counter[str] = Counter()
        self.applied = 0
        """Deliveries that ran the handler."""
        self.duplicates = 0
        """Deliveries dropped because their message id was applied before."""
        self._lock = threading.Lock()

    def apply_once(self, message_id: str, apply: Callable[[], None]) -> bool:
        """See :meth:`esrc_faststream.consumer.SeenMessages.apply_once`."""
        ran = self.seen.apply_once(message_id, apply)
        with self._lock:
            self._delivered[message_id] += 1
            if ran:
                self.applied += 1
            else:
                self.duplicates += 1
        return ran

    def caught_up(self, published: Iterable[str]) -> bool:
        """Whether every message id in ``published`` was handled at least once.

        (Not as often as it was published: a broker may drop a duplicate itself, as
        NATS JetStream does within its deduplication window.)"""
        with self._lock:
            return all(self._delivered[m] for m in published)
