"""The NATS JetStream publisher: nats-py's JetStream context, with ``Nats-Msg-Id`` set
from the message id so JetStream drops duplicates, and every PubAck awaited."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import nats.errors
import nats.js.errors
from esrc_core.relay import RelayEvent
from esrc_faststream.headers import HEADERS, MESSAGE_ID, RoutingRule, relay_headers, route
from esrc_faststream.publisher import DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT, AsyncBrokerPublisher
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck, StreamConfig

__all__ = [
    "DEFAULT_STREAM",
    "DEFAULT_SUBJECT",
    "DEFAULT_SUBJECTS",
    "NatsPublisher",
    "StreamMismatchError",
]

DEFAULT_STREAM = "ESRC"
"""The JetStream stream events are stored in unless ``stream=`` says otherwise."""
DEFAULT_SUBJECTS = "esrc.>"
"""The subjects the stream is created with."""
DEFAULT_SUBJECT = "esrc.{aggregate_type}.{event_name}"
"""The default subject rule, e.g. ``esrc.Account.MoneyDeposited``."""

MSG_ID_HEADER = "Nats-Msg-Id"
"""The JetStream header whose value the server deduplicates on."""

_HEADER_NAMES_SIZE = sum(len(name) + 4 for name in (*HEADERS, MSG_ID_HEADER)) + 12
"""The bytes of every header line but its value (``name: value\r\n``), plus the
``NATS/1.0\r\n`` line."""


class StreamMismatchError(Exception):
    """The stream exists but does not capture the publisher's subjects."""


class NatsPublisher(AsyncBrokerPublisher):
    """Publishes relayed events to a NATS JetStream stream and awaits each PubAck.

    - ``url``: ``nats://host:4222`` (``nats://user:password@host:4222``,
      ``nats://token@host:4222``; several servers separated by commas).
    - ``stream``: the stream name (default ``ESRC``); ``subjects``: the subject
      filter it captures (default ``esrc.>``). With ``create_stream=True`` (the default)
      a missing stream is created with those subjects (and ``duplicate_window`` seconds
      of deduplication, if given; JetStream's default is two minutes); an existing one
      must list ``subjects`` among its subjects, or opening fails.
    - ``subject``: the subject rule (:data:`~esrc_faststream.headers.RoutingRule`),
      default ``"esrc.{aggregate_type}.{event_name}"``; the subjects it gives must fall
      under ``subjects``.
    - ``timeout``, ``max_in_flight``: see
      :class:`~esrc_faststream.publisher.AsyncBrokerPublisher`.

    Every message carries the esrc headers plus ``Nats-Msg-Id`` (the message id), so
    JetStream stores an event published twice within the duplicate window once, and
    ``Nats-Expected-Stream``, so a subject captured by another stream is refused
    instead of stored elsewhere. Messages of one connection reach the server in the
    order they are written, and each is written before the next.

    The publisher does not reconnect: once its connection is lost, every publish raises
    :class:`~esrc_core.errors.PublishError`, and a new publisher must be opened (the
    ``esrc relay`` process does that by itself).
    """

    broker = "NATS JetStream"

    def __init__(
        self,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        subjects: str = DEFAULT_SUBJECTS,
        subject: RoutingRule = DEFAULT_SUBJECT,
        create_stream: bool = True,
        duplicate_window: float | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if not stream:
            raise ValueError("stream must be a non-empty name")
        self.stream = stream
        self.subjects = subjects
        self.subject = subject
        self.create_stream = create_stream
        self.duplicate_window = duplicate_window
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        super().__init__(url, timeout=timeout, max_in_flight=max_in_flight)

    async def _start(self) -> None:
        servers = [server.strip() for server in self.url.split(",") if server.strip()]
        self._nc = await nats.connect(
            servers,
            connect_timeout=max(1, round(self.timeout)),
            # No reconnecting: after a lost connection the client would flush what it
            # still buffered to the new one, ahead of earlier messages lost with the old
            # one, and the stream would hold them out of order. A lost connection
            # fails the batch; whoever publishes next opens a new publisher.
            allow_reconnect=False,
            error_cb=_ignore_errors,
        )
        self._js = self._nc.jetstream(
            timeout=self.timeout, publish_async_max_pending=self.max_in_flight
        )
        await self._ensure_stream(self._js)

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            info = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            if not self.create_stream:
                raise StreamMismatchError(
                    f"stream {self.stream!r} does not exist and create_stream is false"
                ) from None
            config = StreamConfig(name=self.stream, subjects=[self.subjects])
            if self.duplicate_window is not None:
                config.duplicate_window = self.duplicate_window
            await js.add_stream(config)
            return
        if self.subjects not in (info.config.subjects or []):
            raise StreamMismatchError(
                f"stream {self.stream!r} captures {info.config.subjects}, not {self.subjects!r}"
            )

    async def _stop(self) -> None:
        if self._nc is not None:
            nc, self._nc, self._js = self._nc, None, None
            if not nc.is_closed:
                await nc.close()

    async def _send(self, event: RelayEvent) -> asyncio.Future[PubAck]:
        if self._js is None:
            raise RuntimeError("the NATS connection is closed")
        headers: dict[str, Any] = relay_headers(event)
        headers[MSG_ID_HEADER] = headers[MESSAGE_ID]
        # Header values are ASCII (header_value), so len() counts their bytes.
        size = len(event.event.data) + sum(map(len, headers.values())) + _HEADER_NAMES_SIZE
        if self._nc is not None and size > self._nc.max_payload:
            # Refused before publish_async, which would otherwise hold a pending slot.
            raise ValueError(
                f"message of about {size} bytes exceeds the server's max_payload "
                f"({self._nc.max_payload} bytes)"
            )
        # publish_async returns once the message is written to the connection, with a
        # future of its PubAck: awaiting sends one by one keeps the order.
        return await self._js.publish_async(
            route(self.subject, event),
            event.event.data,
            stream=self.stream,
            headers=headers,
        )


async def _ignore_errors(err: Exception) -> None:
    """nats-py reports connection errors here as well as raising them; the publisher
    raises them itself, so the callback only keeps nats-py from logging each one."""
