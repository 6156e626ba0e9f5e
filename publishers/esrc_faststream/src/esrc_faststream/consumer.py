"""The read side of the relay: FastStream subscribers that turn relayed messages back
into :class:`~esrc_core.relay.RelayEvent` objects and apply each one once.

A :class:`Projection` maps event names to handlers. Each broker distribution's
``subscribe`` (:func:`esrc_rabbitmq.consumer.subscribe`,
:func:`esrc_nats.consumer.subscribe`, :func:`esrc_redis.consumer.subscribe`) attaches
it to a FastStream broker with one subscriber that receives every event of the
projection in the order the broker delivers it, and dispatches by event name in the
process. (One subscriber per event name would let a ``Deposited`` overtake the
``Opened`` of the same account.)

At-least-once delivery means a message can arrive twice. :class:`SeenMessages` records
the message ids already applied so a handler runs once per event;
:class:`MemorySeenMessages` is the in-process default, and a read model that lives in a
database implements :meth:`SeenMessages.apply_once` with the same transaction as its
projection, so "applied" and "recorded" commit together.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Protocol, TypeAlias, TypeVar, runtime_checkable

from esrc_core.correlation import handling
from esrc_core.relay import RelayEvent
from esrc_core.telemetry import processing
from faststream import Context
from faststream.message import StreamMessage

from esrc_faststream.headers import relay_event_from

__all__ = ["CurrentMessage", "Handler", "MemorySeenMessages", "Projection", "SeenMessages"]

Handler = Callable[[RelayEvent], None]
"""A function that applies one relayed event to a read model."""

H = TypeVar("H", bound=Handler)


@runtime_checkable
class SeenMessages(Protocol):
    """Remembers which message ids were applied, so each is applied once.

    Implementations must be safe to call from several threads.
    """

    def apply_once(self, message_id: str, apply: Callable[[], None]) -> bool:
        """Call ``apply`` unless ``message_id`` is recorded; record it if ``apply``
        returns. Return whether ``apply`` ran.

        If ``apply`` raises, the id is not recorded (the next delivery retries) and the
        exception propagates. A database-backed implementation records the id in the
        transaction ``apply`` writes in, so both commit or neither does.
        """
        ...


class MemorySeenMessages:
    """A :class:`SeenMessages` kept in this process's memory (lost on restart: use it
    for read models that are rebuilt from scratch on start)."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def __contains__(self, message_id: object) -> bool:
        with self._lock:
            return message_id in self._ids

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def apply_once(self, message_id: str, apply: Callable[[], None]) -> bool:
        """See :meth:`SeenMessages.apply_once`; ``apply`` runs under a lock, so two
        deliveries of one id never both apply."""
        with self._lock:
            if message_id in self._ids:
                return False
            apply()
            self._ids.add(message_id)
            return True


class Projection:
    """Handlers for relayed events, chosen by event name and applied once per message.

    Register handlers with :meth:`on`; feed events with :meth:`handle` (the subscribe
    functions do it for received messages). Events without a handler are ignored.
    """

    def __init__(self, seen: SeenMessages | None = None) -> None:
        self.seen: SeenMessages = seen if seen is not None else MemorySeenMessages()
        self._handlers: dict[str, Handler] = {}

    @property
    def event_names(self) -> frozenset[str]:
        """The event names that have a handler."""
        return frozenset(self._handlers)

    def on(self, *event_names: str) -> Callable[[H], H]:
        """Decorator: ``handler`` applies the events named ``event_names``.

        Raises ``ValueError`` when no name is given or a name already has a handler.
        """
        if not event_names:
            raise ValueError("name at least one event")

        def register(handler: H) -> H:
            taken = [name for name in event_names if name in self._handlers]
            if taken:
                raise ValueError(f"events {', '.join(taken)} already have a handler")
            for name in event_names:
                self._handlers[name] = handler
            return handler

        return register

    def handle(self, event: RelayEvent) -> bool:
        """Apply ``event`` with its handler unless its message id was applied before.

        Returns whether a handler ran. A handler's exception propagates and the message
        id stays unrecorded. The handler runs inside
        :func:`esrc_core.correlation.handling`: the events it stores carry ``event``'s
        correlation id and its message id as causation. With esrc's telemetry
        recording, each event that has a handler is handled in an ``esrc.process``
        span linked to the command that stored it
        (:func:`esrc_core.telemetry.processing`).
        """
        handler = self._handlers.get(event.event.name)
        if handler is None:
            return False
        with processing(event) as span, handling(event):
            ran = self.seen.apply_once(event.message_id, lambda: handler(event))
            span.applied(ran)
        return ran

    async def handle_message(self, headers: Mapping[str, object], body: bytes) -> bool:
        """Decode a received message (see :func:`~esrc_faststream.headers.relay_event_from`)
        and :meth:`handle` it in a worker thread, so a blocking handler does not stall
        the broker's event loop."""
        event = relay_event_from(headers, body)
        return await asyncio.to_thread(self.handle, event)


CurrentMessage: TypeAlias = Annotated[StreamMessage[Any], Context("message")]
"""The annotation of a FastStream handler's parameter that receives the message being
handled, with the client's raw message as ``raw_message`` (what a broker's
``subscribe`` reads the esrc headers and the body from)."""
