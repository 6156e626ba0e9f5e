"""The NATS JetStream publisher against the real server (ESRC_TEST_NATS_URL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import unquote

import nats
import pytest
from esrc_core.errors import BrokerUnavailableError
from esrc_core.plugins import open_publisher
from esrc_core.relay import Publisher, RelayEvent
from esrc_faststream.headers import header_value, relay_event_from
from esrc_faststream.loop import LoopThread
from esrc_testkit.publishers import PublisherAcceptance, Received, relay_events
from nats.aio.client import Client
from nats.js.api import RawStreamMsg, StreamConfig

from esrc_testkit import capabilities_of


class _Reader:
    """Reads the test's stream message by message, by sequence number."""

    def __init__(self, client: Client, stream: str) -> None:
        self.client = client
        self.js = client.jetstream()
        self.stream = stream
        self.next_seq = 1

    @classmethod
    async def open(cls, url: str, stream: str) -> _Reader:
        return cls(await nats.connect(url), stream)

    async def read(self, n: int, timeout: float) -> list[RawStreamMsg]:
        got: list[RawStreamMsg] = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            info = await self.js.stream_info(self.stream)
            if info.state.last_seq >= self.next_seq:
                got.append(await self.js.get_msg(self.stream, self.next_seq))
                self.next_seq += 1
            elif time.monotonic() >= deadline:
                break
            else:
                await asyncio.sleep(0.02)
        return got

    async def close(self, delete: bool) -> None:
        if delete:
            await self.js.delete_stream(self.stream)
        await self.client.close()


def _received(message: RawStreamMsg) -> Received:
    headers: dict[str, Any] = dict(message.headers or {})
    message_id = unquote(headers.get("Nats-Msg-Id", ""))
    return Received(message_id, relay_event_from(headers, message.data or b""), headers)


def _url(base: str, unique: str) -> str:
    return (
        f"{base}?stream=ESRC_TEST_{unique}&subjects=esrc-test-{unique}.>"
        f"&subject=esrc-test-{unique}.{{aggregate_type}}.{{event_name}}"
    )


class TestNatsPublisher(PublisherAcceptance):
    """The publisher contract on NATS JetStream."""

    capabilities = capabilities_of("nats://", "publisher")

    deduplicates = True
    open_options: ClassVar[dict[str, Any]] = {"timeout": 2}

    @pytest.fixture
    def publisher(self, nats_url: str, loop: LoopThread, unique: str) -> Iterator[Publisher]:
        self.loop = loop
        self.stream = f"ESRC_TEST_{unique}"
        publisher = open_publisher(_url(nats_url, unique))
        self.reader = loop.run(_Reader.open(nats_url, self.stream), 10)
        try:
            yield publisher
        finally:
            publisher.close()
            loop.run(self.reader.close(delete=True), 10)

    def read(self, n: int, timeout: float) -> list[RawStreamMsg]:
        return self.loop.run(self.reader.read(n, timeout), timeout + 10)

    def received(self, n: int, timeout: float) -> list[Received]:
        return [_received(m) for m in self.read(n, timeout)]

    def unreachable_url(self) -> str:
        return "nats://esrc:secret-password@127.0.0.1:9"

    def refused_event(self) -> RelayEvent | None:
        [event] = relay_events(1)
        return RelayEvent(
            event.aggregate_type,
            event.aggregate_id,
            event.version,
            event.position,
            type(event.event)(event.event.name, b"x" * (8 * 1024 * 1024)),
        )

    def test_message_headers_and_subject(self, publisher: Publisher) -> None:
        """Nats-Msg-Id is the message id; the subject follows the rule."""
        [event] = relay_events(1)
        publisher.publish(event)
        [message] = self.read(1, timeout=0)
        assert message.headers is not None
        assert message.headers["Nats-Msg-Id"] == header_value(event.message_id)
        assert (message.subject or "").endswith(f".Account.{event.event.name}")


def test_stream_with_other_subjects_is_refused(
    nats_url: str, loop: LoopThread, unique: str
) -> None:
    """An existing stream that does not capture the publisher's subjects fails opening."""

    async def create() -> None:
        client = await nats.connect(nats_url)
        try:
            await client.jetstream().add_stream(
                StreamConfig(name=f"ESRC_TEST_{unique}", subjects=[f"other-{unique}.>"])
            )
        finally:
            await client.close()

    async def delete() -> None:
        client = await nats.connect(nats_url)
        try:
            await client.jetstream().delete_stream(f"ESRC_TEST_{unique}")
        finally:
            await client.close()

    loop.run(create(), 10)
    try:
        with pytest.raises(BrokerUnavailableError, match=f"ESRC_TEST_{unique}"):
            open_publisher(_url(nats_url, unique), timeout=5)
    finally:
        loop.run(delete(), 10)


def test_missing_stream_without_create_fails(nats_url: str, unique: str) -> None:
    """create_stream=false requires the stream to exist."""
    with pytest.raises(BrokerUnavailableError, match="does not exist"):
        open_publisher(_url(nats_url, unique) + "&create_stream=false", timeout=5)
