"""The NATS JetStream publisher: nats-py's JetStream context, with ``Nats-Msg-Id`` set
from the message id so JetStream drops duplicates, and every PubAck awaited."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import nats.errors
import nats.js.errors
from esrc_core.errors import BackendConfigError
from esrc_core.relay import RelayEvent
from esrc_core.urls import mask_url
from esrc_faststream.headers import (
    HEADERS,
    MESSAGE_ID,
    RoutingRule,
    check_routing_rule,
    relay_headers,
    route,
)
from esrc_faststream.options import check_server_url
from esrc_faststream.publisher import DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT, AsyncBrokerPublisher
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck, StreamConfig

__all__ = [
    "DEFAULT_STREAM",
    "DEFAULT_SUBJECT",
    "DEFAULT_SUBJECTS",
    "MSG_ID_HEADER",
    "SCHEMES",
    "NatsPublisher",
    "StreamMismatchError",
    "servers",
]

DEFAULT_STREAM = "ESRC"
"""The JetStream stream events are stored in unless ``stream=`` says otherwise."""
DEFAULT_SUBJECTS = "esrc.>"
"""The subjects the stream is created with."""
DEFAULT_SUBJECT = "esrc.{aggregate_type}.{event_name}"
"""The default subject rule, e.g. ``esrc.Account.MoneyDeposited``."""

SCHEMES = ("nats", "tls", "ws", "wss")
"""The URL schemes of the servers the publisher connects to."""

_NOT_IN_STREAM_NAMES = frozenset(".*>/\\")
"""Characters JetStream refuses in a stream name (besides white space)."""

MSG_ID_HEADER = "Nats-Msg-Id"
"""The JetStream header whose value the server deduplicates on."""

_HEADER_NAMES_SIZE = sum(len(name) + 4 for name in (*HEADERS, MSG_ID_HEADER)) + 12
"""The bytes of every header line but its value (``name: value\r\n``), plus the
``NATS/1.0\r\n`` line."""


class StreamMismatchError(BackendConfigError):
    """The publisher's stream cannot be used as configured: it captures other subjects
    than ``subjects``, it is missing while ``create_stream`` is false, or JetStream
    refused to create it."""


def servers(url: str) -> list[str]:
    """The server URLs of a publisher URL (several separated by commas; a server
    without a scheme is ``nats://``).

    Raises :class:`~esrc_core.errors.BackendConfigError` naming the masked URL when
    there is none or one is malformed.
    """
    found = [server.strip() for server in url.split(",") if server.strip()]
    if not found:
        raise BackendConfigError(
            f"NATS URL {mask_url(url)!r}: name a server, e.g. nats://host:4222"
        )
    for server in found:
        check_server_url(
            server if "://" in server else f"nats://{server}", schemes=SCHEMES, broker="NATS"
        )
    return found


class NatsPublisher(AsyncBrokerPublisher):
    """Publishes relayed events to a NATS JetStream stream and awaits each PubAck.

    - ``url``: ``nats://host:4222`` (``nats://user:password@host:4222``,
      ``nats://token@host:4222``; several servers separated by commas).
    - ``stream``: the stream name (default ``ESRC``); ``subjects``: the subject
      filter it captures (default ``esrc.>``). With ``create_stream=True`` (the default)
      a missing stream is created with those subjects (and ``duplicate_window`` seconds
      of deduplication, if given; JetStream's default is two minutes); an existing one
      must list ``subjects`` among its subjects. Otherwise, or when the stream is
      missing and ``create_stream`` is false, or JetStream refuses to create it (its
      subjects overlap another stream's, say), opening raises
      :class:`StreamMismatchError`, a :class:`~esrc_core.errors.BackendConfigError`.
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
        self._servers = servers(url)
        if not stream or any(c in _NOT_IN_STREAM_NAMES or c.isspace() for c in stream):
            raise BackendConfigError(
                f"open {self.broker} publisher {mask_url(url)!r}: stream {stream!r} is not "
                "a JetStream stream name; use letters, digits, '-' and '_'"
            )
        check_routing_rule(subject, option="subject", where=mask_url(url))
        self.stream = stream
        self.subjects = subjects
        self.subject = subject
        self.create_stream = create_stream
        self.duplicate_window = duplicate_window
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        super().__init__(url, timeout=timeout, max_in_flight=max_in_flight)

    async def _start(self) -> None:
        self._nc = await nats.connect(
            self._servers,
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
        where = f"open {self.broker} publisher {self.masked_url!r}: stream {self.stream!r}"
        try:
            info = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            if not self.create_stream:
                raise StreamMismatchError(
                    f"{where} does not exist; create it with subjects {self.subjects!r}, "
                    "or open with create_stream=true"
                ) from None
            config = StreamConfig(name=self.stream, subjects=[self.subjects])
            if self.duplicate_window is not None:
                config.duplicate_window = self.duplicate_window
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError as err:
                raise StreamMismatchError(
                    f"{where} cannot be created with subjects {self.subjects!r}: "
                    f"{err.description or err}; change stream or subjects"
                ) from err
            return
        captured = info.config.subjects or []
        if self.subjects not in captured:
            raise StreamMismatchError(
                f"{where} captures {', '.join(captured) or 'no subjects'}, not "
                f"{self.subjects!r}; set subjects to one of those (and a subject rule "
                "under it), or use another stream"
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
