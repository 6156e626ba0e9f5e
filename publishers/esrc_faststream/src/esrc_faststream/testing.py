"""Reading relayed messages back from a broker, for tests, benchmarks and tools.

A :class:`BrokerReader` is opened on a destination (usually with
:meth:`esrc_faststream.destination.Destination.reader`) before anything is published
there, and receives every message published after that, each as a
:class:`ReceivedMessage` with its headers. Each broker distribution implements one
(:mod:`esrc_rabbitmq.testing`, :mod:`esrc_nats.testing`, :mod:`esrc_redis.testing`);
this module holds what they share.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from esrc_core.relay import RelayEvent

from esrc_faststream.headers import relay_event_from
from esrc_faststream.loop import LoopThread

__all__ = ["BrokerReader", "ReceivedMessage"]

_POLL = 0.02
"""Seconds between two looks at a broker that had nothing new."""


@dataclass(frozen=True)
class ReceivedMessage:
    """One message as the broker delivered it.

    ``message_id`` is the broker-level message id (AMQP ``message_id``, JetStream
    ``Nats-Msg-Id``; the ``esrc-message-id`` field on Redis), decoded; ``destination``
    the routing key, subject or stream key; ``headers`` the message's headers (on
    Redis, the entry's fields but ``data``) as the client gives them; ``body`` the
    event's bytes; ``raw`` the client's own message object, for broker-specific checks.
    """

    message_id: str
    destination: str
    headers: Mapping[str, Any]
    body: bytes
    raw: Any = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def event(self) -> RelayEvent:
        """The relay event rebuilt from the headers and body
        (:func:`~esrc_faststream.headers.relay_event_from`, which raises
        :class:`~esrc_core.errors.InvalidEventError` for a malformed message)."""
        return relay_event_from(self.headers, self.body)


class BrokerReader(abc.ABC):
    """Reads back what was published to a destination, synchronously, with the
    broker's own client running on ``loop``.

    Opening connects and declares what the reader needs to see every later message
    (on RabbitMQ, a queue bound to the exchange), within ``timeout`` seconds; the
    client's errors propagate. Use it from one thread at a time; :meth:`close` (or a
    ``with`` block) disconnects. Subclasses implement the ``_`` coroutines, which run
    on ``loop``.
    """

    def __init__(self, loop: LoopThread, *, timeout: float = 30) -> None:
        self.loop = loop
        self.timeout = timeout
        self._closed = False
        try:
            self.loop.run(self._open(), timeout)
        except BaseException:
            self.close()
            raise

    def read(self, count: int, timeout: float) -> list[ReceivedMessage]:
        """Up to ``count`` messages, in the order the broker holds them, each returned
        once per reader.

        Returns as soon as ``count`` were read, or after ``timeout`` seconds with what
        was read so far. With ``timeout=0`` it reads only what the broker already holds
        (a confirmed publish is held), without waiting for anything in flight.
        """
        return self.loop.run(self._read(count, timeout), timeout + self.timeout)

    def read_all(
        self, at_least: int, *, quiet: float = 1.0, timeout: float = 60.0
    ) -> list[ReceivedMessage]:
        """Every message until at least ``at_least`` were read and nothing more came for
        ``quiet`` seconds (so repeats after the expected ones are read too); after
        ``timeout`` seconds, what was read so far."""

        async def read_all() -> list[ReceivedMessage]:
            got: list[ReceivedMessage] = []
            last = time.monotonic()
            deadline = last + timeout
            while True:
                more = await self._fetch(10_000)
                now = time.monotonic()
                if more:
                    got.extend(more)
                    last = now
                elif now >= deadline or (len(got) >= at_least and now - last >= quiet):
                    return got
                else:
                    await asyncio.sleep(_POLL)

        return self.loop.run(read_all(), timeout + self.timeout)

    async def _read(self, count: int, timeout: float) -> list[ReceivedMessage]:
        got: list[ReceivedMessage] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            more = await self._fetch(count - len(got))
            if more:
                got.extend(more)
            elif time.monotonic() >= deadline:
                break
            else:
                await asyncio.sleep(_POLL)
        return got

    def listen(self, on_message: Callable[[ReceivedMessage], None]) -> Callable[[], None]:
        """Call ``on_message`` on the reader's loop for each message as soon as it
        arrives (instead of :meth:`read`); return a function that stops listening.

        ``on_message`` must be quick: it holds up the reader's loop. A message
        :meth:`listen` delivered is not returned by :meth:`read`.
        """
        stop = self.loop.run(self._listen(on_message), self.timeout)
        return lambda: self.loop.run(stop(), self.timeout)

    def purge(self) -> None:
        """Drop every message the destination holds, read or not, so the next
        :meth:`read` starts with what is published after this call."""
        self.loop.run(self._purge(), self.timeout)

    def close(self) -> None:
        """Disconnect; what the reader declared for itself goes with it (the
        destination stays: ``Destination.delete`` removes it). Calling it twice is
        harmless."""
        if not self._closed:
            self._closed = True
            self.loop.run(self._close(), self.timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @abc.abstractmethod
    async def _open(self) -> None:
        """Connect and declare what the reader needs."""

    @abc.abstractmethod
    async def _fetch(self, limit: int) -> list[ReceivedMessage]:
        """Up to ``limit`` messages the broker holds and this reader has not returned
        yet, without waiting for new ones (empty if there are none)."""

    @abc.abstractmethod
    async def _listen(
        self, on_message: Callable[[ReceivedMessage], None]
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        """Start delivering messages to ``on_message``; return the coroutine function
        that stops it."""

    @abc.abstractmethod
    async def _purge(self) -> None:
        """Delete what the destination holds and skip past it."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Disconnect; called once, also after a failed :meth:`_open`."""
