"""The Redis Streams publisher against the real server (ESRC_TEST_REDIS_URL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any, ClassVar, cast
from urllib.parse import unquote

import pytest
import redis.asyncio
from esrc_core.plugins import open_publisher
from esrc_core.relay import BatchPublisher, Publisher
from esrc_faststream.headers import BODY_FIELD, HEADERS, header_value, relay_event_from
from esrc_faststream.loop import LoopThread
from esrc_testkit.publishers import PublisherAcceptance, Received, relay_events

from esrc_testkit import capabilities_of

Entry = tuple[bytes, dict[bytes, bytes]]


class _Reader:
    """Reads the test's stream with XRANGE, after the last entry read."""

    def __init__(self, url: str, stream: str) -> None:
        self.client = redis.asyncio.from_url(url)
        self.stream = stream
        self.after = b"-"

    async def read(self, n: int, timeout: float) -> list[Entry]:
        got: list[Entry] = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            start = self.after if self.after == b"-" else b"(" + self.after
            entries = await self.client.xrange(self.stream, min=start, count=n - len(got))
            if entries:
                got.extend(cast(list[Entry], entries))
                self.after = got[-1][0]
            elif time.monotonic() >= deadline:
                break
            else:
                await asyncio.sleep(0.02)
        return got

    async def close(self) -> None:
        await self.client.delete(self.stream)
        await self.client.aclose()


def _received(entry: Entry) -> Received:
    fields = {key.decode(): value for key, value in entry[1].items()}
    body = fields.pop(BODY_FIELD)
    headers: dict[str, Any] = {key: value.decode() for key, value in fields.items()}
    message_id = unquote(headers["esrc-message-id"])
    return Received(message_id, relay_event_from(headers, body), headers)


class TestRedisPublisher(PublisherAcceptance):
    """The publisher contract on Redis Streams."""

    capabilities = capabilities_of("redis://", "publisher")

    open_options: ClassVar[dict[str, Any]] = {"timeout": 3}

    @pytest.fixture
    def publisher(self, redis_url: str, loop: LoopThread, unique: str) -> Iterator[Publisher]:
        self.loop = loop
        self.stream = f"esrc-test-{unique}"
        self.reader = _Reader(redis_url, self.stream)
        publisher = open_publisher(redis_url, stream=self.stream)
        try:
            yield publisher
        finally:
            publisher.close()
            loop.run(self.reader.close(), 10)

    def read(self, n: int, timeout: float) -> list[Entry]:
        return self.loop.run(self.reader.read(n, timeout), timeout + 10)

    def received(self, n: int, timeout: float) -> list[Received]:
        return [_received(entry) for entry in self.read(n, timeout)]

    def unreachable_url(self) -> str:
        return "redis://esrc:secret-password@127.0.0.1:9/0"

    def test_entry_fields(self, publisher: Publisher) -> None:
        """An entry holds exactly the esrc headers and the event bytes."""
        [event] = relay_events(1)
        publisher.publish(event)
        [(_, fields)] = self.read(1, timeout=0)
        assert sorted(fields) == sorted(name.encode() for name in (*HEADERS, BODY_FIELD))
        assert fields[BODY_FIELD.encode()] == event.event.data
        assert fields[b"esrc-message-id"] == header_value(event.message_id).encode()


def test_maxlen_trims_the_stream(redis_url: str, loop: LoopThread, unique: str) -> None:
    """maxlen with approximate=false keeps exactly the newest maxlen entries."""
    stream = f"esrc-test-{unique}"
    reader = _Reader(redis_url, stream)
    try:
        events = relay_events(30)
        publisher = open_publisher(f"{redis_url}?stream={stream}&maxlen=10&approximate=false")
        assert isinstance(publisher, BatchPublisher)
        try:
            publisher.publish(events[0])
            publisher.publish_batch(events[1:])
        finally:
            publisher.close()
        got = [_received(entry).event for entry in loop.run(reader.read(30, 0), 10)]
        assert got == events[-10:]
    finally:
        loop.run(reader.close(), 10)
