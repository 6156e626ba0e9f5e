"""The read side of the relay: FastStream subscribers that turn relayed messages back
into :class:`~esrc_core.relay.RelayEvent` objects and apply each one once.

A :class:`Projection` maps event names to handlers. ``subscribe_rabbitmq``,
``subscribe_nats`` and ``subscribe_redis`` attach it to a FastStream broker with one
subscriber that receives every event of the projection in the order the broker
delivers it, and dispatches by event name in the process. (One subscriber per event
name would let a ``Deposited`` overtake the ``Opened`` of the same account.)

At-least-once delivery means a message can arrive twice. :class:`SeenMessages` records
the message ids already applied so a handler runs once per event;
:class:`MemorySeenMessages` is the in-process default, and a read model that lives in a
database implements :meth:`SeenMessages.apply_once` with the same transaction as its
projection, so "applied" and "recorded" commit together.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar, runtime_checkable

from esrc_core.relay import RelayEvent
from faststream import Context
from faststream.message import StreamMessage

from esrc_faststream.headers import BODY_FIELD, relay_event_from

if TYPE_CHECKING:
    from faststream.nats import NatsBroker
    from faststream.rabbit import RabbitBroker
    from faststream.redis import RedisBroker

__all__ = [
    "Handler",
    "MemorySeenMessages",
    "Projection",
    "SeenMessages",
    "subscribe_nats",
    "subscribe_rabbitmq",
    "subscribe_redis",
]

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
        id stays unrecorded.
        """
        handler = self._handlers.get(event.event.name)
        if handler is None:
            return False
        return self.seen.apply_once(event.message_id, lambda: handler(event))

    async def handle_message(self, headers: Mapping[str, object], body: bytes) -> bool:
        """Decode a received message (see :func:`~esrc_faststream.headers.relay_event_from`)
        and :meth:`handle` it in a worker thread, so a blocking handler does not stall
        the broker's event loop."""
        event = relay_event_from(headers, body)
        return await asyncio.to_thread(self.handle, event)


Message = Annotated[StreamMessage[Any], Context("message")]


def subscribe_rabbitmq(
    broker: RabbitBroker,
    projection: Projection,
    *,
    queue: str,
    exchange: str = "esrc",
    routing_key: str = "#",
    durable: bool = True,
    auto_delete: bool = False,
    prefetch: int = 1,
) -> Any:
    """Subscribe ``projection`` to the events RabbitMQ routes to ``queue``.

    Declares the durable topic ``exchange`` (as the publisher does) and ``queue``
    (durable unless ``durable=False``; deleted with its last consumer if
    ``auto_delete=True``), bound with ``routing_key`` (default: every
    event). Messages are acknowledged after the handler returns and rejected back to
    the queue if it raises. Returns the FastStream subscriber.

    The client runs each delivered message in its own task, so only ``prefetch=1``
    (the default: one unacknowledged message at a time) applies events in queue order;
    a larger prefetch trades that order for throughput.
    """
    from faststream.rabbit import Channel, ExchangeType, RabbitExchange, RabbitQueue

    subscriber = broker.subscriber(
        RabbitQueue(queue, durable=durable, auto_delete=auto_delete, routing_key=routing_key),
        RabbitExchange(exchange, type=ExchangeType.TOPIC, durable=True),
        channel=Channel(prefetch_count=prefetch),
    )

    async def receive(message: Message) -> None:
        raw = message.raw_message
        await projection.handle_message(dict(raw.headers or {}), raw.body)

    return subscriber(receive)


def subscribe_nats(
    broker: NatsBroker,
    projection: Projection,
    *,
    durable: str,
    stream: str = "ESRC",
    subject: str = "esrc.>",
) -> Any:
    """Subscribe ``projection`` to the JetStream ``stream``'s messages on ``subject``
    through the durable consumer ``durable``, from the first message it holds.

    The stream must exist (the publisher creates it). Messages of the subscription are
    handled one at a time, in stream order, and acknowledged after the handler returns.
    Returns the FastStream subscriber.
    """
    from faststream.nats import DeliverPolicy, JStream

    with warnings.catch_warnings():
        # FastStream warns that a durable push consumer cannot be scaled out across
        # instances; an ordered projection is one consumer on purpose. (Its pull
        # consumer handles a fetched batch concurrently, which would reorder events.)
        warnings.simplefilter("ignore", RuntimeWarning)
        subscriber = broker.subscriber(
            subject,
            stream=JStream(stream, declare=False),
            durable=durable,
            deliver_policy=DeliverPolicy.ALL,
        )

    async def receive(message: Message) -> None:
        raw = message.raw_message
        await projection.handle_message(dict(raw.headers or {}), raw.data)

    return subscriber(receive)


def subscribe_redis(
    broker: RedisBroker,
    projection: Projection,
    *,
    group: str,
    consumer: str,
    stream: str = "esrc",
) -> Any:
    """Subscribe ``projection`` to the Redis ``stream`` as ``consumer`` of the consumer
    group ``group`` (created from the start of the stream if missing).

    Entries are acknowledged (``XACK``) after the handler returns. Returns the
    FastStream subscriber.
    """
    from faststream.redis import StreamSub

    subscriber = broker.subscriber(
        stream=StreamSub(stream, group=group, consumer=consumer, last_id="0")
    )

    async def receive(message: Message) -> None:
        fields = message.raw_message["data"]
        text = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in fields.items()}
        body = text.pop(BODY_FIELD, b"")
        await projection.handle_message(text, body if isinstance(body, bytes) else body.encode())

    return subscriber(receive)
