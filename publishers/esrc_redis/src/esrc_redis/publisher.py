"""The Redis Streams publisher: ``XADD`` through redis-py, pipelined, one entry per
event with the esrc headers and the event bytes as fields."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis.asyncio
from esrc_core.errors import BackendConfigError
from esrc_core.relay import RelayEvent
from esrc_core.urls import mask_url
from esrc_faststream.headers import BODY_FIELD, relay_headers
from esrc_faststream.options import check_server_url
from esrc_faststream.publisher import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_TIMEOUT,
    AsyncBrokerPublisher,
    PartialPublish,
)
from redis.typing import EncodableT, FieldT

__all__ = ["DEFAULT_STREAM", "SCHEMES", "RedisPublisher"]

DEFAULT_STREAM = "esrc"
"""The stream key entries are added to unless ``stream=`` says otherwise."""
SCHEMES = ("redis", "rediss", "unix")
"""The URL schemes the publisher connects with."""


class RedisPublisher(AsyncBrokerPublisher):
    """Appends relayed events to a Redis stream with ``XADD``.

    - ``url``: ``redis://[user:password@]host:6379/0`` (``rediss://`` for TLS); query
      parameters other than the options below go to redis-py.
    - ``stream``: the stream key (default ``esrc``). A key that holds another type
      than a stream makes opening raise :class:`~esrc_core.errors.BackendConfigError`.
    - ``maxlen``: trim the stream to about this many entries on each add (``None``, the
      default, never trims); ``approximate=False`` trims exactly.
    - ``timeout``, ``max_in_flight``: see
      :class:`~esrc_faststream.publisher.AsyncBrokerPublisher`; a batch is sent in
      pipelines of ``max_in_flight`` commands.

    Each entry's fields are the esrc headers (``esrc-message-id``, ...) and ``data``,
    the raw event bytes. Redis runs the commands of a connection in order and answers
    each ``XADD`` once the entry is in the stream, so entry ids follow publish order.
    Redis does not drop duplicates: a consumer does, by ``esrc-message-id``.
    """

    broker = "Redis"

    def __init__(
        self,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = None,
        approximate: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        check_server_url(url, schemes=SCHEMES, broker=self.broker)
        where = f"open {self.broker} publisher {mask_url(url)!r}"
        if not stream:
            raise BackendConfigError(f"{where}: the stream must be a non-empty key")
        if maxlen is not None and maxlen < 1:
            raise BackendConfigError(f"{where}: maxlen must be positive or None, got {maxlen}")
        self.stream = stream
        self.maxlen = maxlen
        self.approximate = approximate
        self._client: redis.asyncio.Redis | None = None
        super().__init__(url, timeout=timeout, max_in_flight=max_in_flight)

    async def _start(self) -> None:
        # No socket_timeout: every command already runs under asyncio.wait_for with
        # ``timeout`` (a per-read timeout as well cost about 5% of publishing).
        self._client = redis.asyncio.from_url(
            self.url, socket_connect_timeout=self.timeout, decode_responses=False
        )
        await self._client.ping()
        found = await self._client.type(self.stream)
        kind = found.decode() if isinstance(found, bytes) else found
        if kind not in {"stream", "none"}:
            raise BackendConfigError(
                f"open {self.broker} publisher {self.masked_url!r}: key {self.stream!r} "
                f"holds a {kind}, not a stream; delete it, or name another stream"
            )

    async def _stop(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def _publish_all(self, events: Sequence[RelayEvent]) -> None:
        confirmed = 0
        for start in range(0, len(events), self.max_in_flight):
            chunk = events[start : start + self.max_in_flight]
            try:
                results = await asyncio.wait_for(self._add(chunk), self.timeout)
            except Exception as err:
                raise PartialPublish(confirmed) from err
            for result in results:
                if isinstance(result, Exception):
                    raise PartialPublish(confirmed) from result
                confirmed += 1

    async def _add(self, events: Sequence[RelayEvent]) -> list[object]:
        if self._client is None:
            raise RuntimeError("the Redis connection is closed")
        async with self._client.pipeline(transaction=False) as pipe:
            for event in events:
                fields: dict[FieldT, EncodableT] = relay_headers(event)  # type: ignore[assignment]
                fields[BODY_FIELD] = event.event.data
                pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=self.approximate)
            return list(await pipe.execute(raise_on_error=False))
