"""Reading relayed messages back from RabbitMQ in tests and benchmarks:
:class:`RabbitReader`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from esrc_faststream.loop import LoopThread
from esrc_faststream.testing import BrokerReader, ReceivedMessage

__all__ = ["RabbitReader"]

_PREFETCH = 1000
"""Unacknowledged messages a listening reader may hold."""


class RabbitReader(BrokerReader):
    """A :class:`~esrc_faststream.testing.BrokerReader` of the RabbitMQ ``exchange`` at
    ``url``: an exclusive queue (gone with the reader's connection) bound with ``#`` to
    the exchange, which it declares as the publisher does (durable topic).

    :meth:`read` takes messages with ``basic.get``; :meth:`listen` consumes them;
    :meth:`purge` purges the queue. ``ReceivedMessage.raw`` is the
    ``aio_pika.abc.AbstractIncomingMessage``.
    """

    def __init__(self, url: str, exchange: str, loop: LoopThread, *, timeout: float = 30):
        self.url = url
        self.exchange = exchange
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        super().__init__(loop, timeout=timeout)

    async def _open(self) -> None:
        self._connection = await aio_pika.connect(self.url, timeout=self.timeout)
        self._channel = await self._connection.channel()
        exchange = await self._channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._queue = await self._channel.declare_queue(exclusive=True)
        await self._queue.bind(exchange, "#")

    def _ready(self) -> AbstractQueue:
        if self._queue is None:
            raise RuntimeError("the RabbitMQ reader is closed")
        return self._queue

    async def _fetch(self, limit: int) -> list[ReceivedMessage]:
        queue = self._ready()
        got: list[ReceivedMessage] = []
        while len(got) < limit:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                break
            got.append(_received(message))
        return got

    async def _listen(
        self, on_message: Callable[[ReceivedMessage], None]
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        queue = self._ready()
        assert self._channel is not None
        await self._channel.set_qos(prefetch_count=_PREFETCH)

        async def deliver(message: AbstractIncomingMessage) -> None:
            on_message(_received(message))

        tag = await queue.consume(deliver, no_ack=True)

        async def stop() -> None:
            await queue.cancel(tag)

        return stop

    async def _purge(self) -> None:
        await self._ready().purge()

    async def _close(self) -> None:
        connection, self._connection, self._channel, self._queue = (
            self._connection,
            None,
            None,
            None,
        )
        if connection is not None:
            await connection.close()


def _received(message: AbstractIncomingMessage) -> ReceivedMessage:
    headers: dict[str, Any] = dict(message.headers or {})
    return ReceivedMessage(
        message.message_id or "", message.routing_key or "", headers, message.body, message
    )
