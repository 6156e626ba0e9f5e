"""The in-process publisher: delivers relayed events to subscribers in this process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from esrc_core.closing import Closeable
from esrc_core.errors import PublishError
from esrc_core.relay import RelayEvent

__all__ = ["MemoryPublisher", "Subscriber"]

Subscriber = Callable[[RelayEvent], object]
"""A function called with each published event, in publish order."""


@dataclass
class _Topic:
    lock: threading.Lock = field(default_factory=threading.Lock)
    subscribers: list[Subscriber] = field(default_factory=list)


_topics: dict[str, _Topic] = {}
_topics_lock = threading.Lock()


def _topic(name: str) -> _Topic:
    with _topics_lock:
        return _topics.setdefault(name, _Topic())


class MemoryPublisher(Closeable):
    """A :class:`~esrc_core.relay.BatchPublisher` that calls subscribers synchronously.

    Publishers of the same ``name`` share their subscribers within the process
    (``memory://orders`` opened twice reaches the same subscribers); an unnamed one has
    its own. An event counts as published once every subscriber has returned; a
    subscriber that raises makes :meth:`publish` raise
    :class:`~esrc_core.errors.PublishError`, and so does publishing after
    :meth:`close` (or the end of a ``with`` block).
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self._topic = _topic(name) if name else _Topic()
        self._closed = False

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        with self._topic.lock:
            self._topic.subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._topic.lock:
                if subscriber in self._topic.subscribers:
                    self._topic.subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: RelayEvent) -> None:
        """Call every subscriber with ``event``; see :class:`esrc_core.relay.Publisher`."""
        self.publish_batch([event])

    def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        """Deliver ``events`` in order; see :class:`esrc_core.relay.BatchPublisher`."""
        if self._closed and events:
            raise PublishError(
                f"publish {events[0].message_id}: the publisher {self!r} is closed", published=0
            )
        with self._topic.lock:
            subscribers = list(self._topic.subscribers)
        for index, event in enumerate(events):
            for subscriber in subscribers:
                try:
                    subscriber(event)
                except Exception as err:
                    raise PublishError(
                        f"publish {event.message_id}: subscriber {subscriber!r} failed: {err}",
                        published=index,
                    ) from err

    def __repr__(self) -> str:
        return f"MemoryPublisher({self.name!r})" if self.name else "MemoryPublisher()"

    def close(self) -> None:
        """Stop publishing (there is nothing to release); other publishers of the same
        name keep their subscribers. Calling it twice is harmless."""
        self._closed = True
