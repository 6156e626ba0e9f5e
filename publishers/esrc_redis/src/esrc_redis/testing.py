"""Reading relayed messages back from Redis Streams in tests and benchmarks:
:class:`RedisReader`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import unquote

import redis.asyncio
from esrc_faststream.headers import MESSAGE_ID
from esrc_faststream.loop import LoopThread
from esrc_faststream.testing import BrokerReader, ReceivedMessage

from esrc_redis.consumer import entry_headers

__all__ = ["RedisReader"]

_BLOCK_MS = 200
"""How long one ``XREAD`` of a listening reader blocks, in milliseconds."""


class RedisReader(BrokerReader):
    """A :class:`~esrc_faststream.testing.BrokerReader` of the Redis ``stream`` at
    ``url``: reads the stream after the last entry it held when the reader opened.

    :meth:`read` uses ``XRANGE``, :meth:`listen` a blocking ``XREAD`` loop; :meth:`purge`
    deletes the stream. ``ReceivedMessage.raw`` is the entry's ``(id, fields)``.
    """

    def __init__(self, url: str, stream: str, loop: LoopThread, *, timeout: float = 30):
        self.url = url
        self.stream = stream
        self._client: redis.asyncio.Redis | None = None
        self._after = b"0-0"
        super().__init__(loop, timeout=timeout)

    async def _open(self) -> None:
        self._client = redis.asyncio.from_url(self.url, socket_connect_timeout=self.timeout)
        self._after = await self._last_id()

    def _ready(self) -> redis.asyncio.Redis:
        if self._client is None:
            raise RuntimeError("the Redis reader is closed")
        return self._client

    async def _last_id(self) -> bytes:
        last: Any = await self._ready().xrevrange(self.stream, count=1)
        return bytes(last[0][0]) if last else b"0-0"

    async def _fetch(self, limit: int) -> list[ReceivedMessage]:
        entries: Any = await self._ready().xrange(self.stream, min=b"(" + self._after, count=limit)
        if entries:
            self._after = bytes(entries[-1][0])
        return [self._received(entry) for entry in entries]

    async def _listen(
        self, on_message: Callable[[ReceivedMessage], None]
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        client = self._ready()
        stream = self.stream
        stopping = asyncio.Event()
        last = await self._last_id()

        async def read() -> None:
            nonlocal last
            while not stopping.is_set():
                found: Any = await client.xread({stream: last}, block=_BLOCK_MS, count=1000)
                for _key, entries in found or []:
                    for entry in entries:
                        last = entry[0]
                        on_message(self._received(entry))

        task = asyncio.ensure_future(read())

        async def stop() -> None:
            stopping.set()
            await task

        return stop

    async def _purge(self) -> None:
        await self._ready().delete(self.stream)
        self._after = b"0-0"

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _received(self, entry: Any) -> ReceivedMessage:
        headers, body = entry_headers(entry[1])
        message_id = headers.get(MESSAGE_ID, b"")
        if isinstance(message_id, bytes):
            message_id = message_id.decode()
        return ReceivedMessage(
            unquote(message_id), self.stream, headers, body, (entry[0], entry[1])
        )
