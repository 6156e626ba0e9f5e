"""The Redis Streams publisher against the real server (ESRC_TEST_REDIS_URL)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import redis.asyncio
from esrc_core.errors import BackendConfigError
from esrc_core.plugins import open_publisher
from esrc_core.relay import BatchPublisher, Publisher
from esrc_faststream.headers import BODY_FIELD, HEADERS, header_value
from esrc_faststream.loop import LoopThread
from esrc_redis.destination import RedisDestination
from esrc_testkit.async_publishers import AsyncPublisherAcceptance
from esrc_testkit.publishers import relay_events

from esrc_testkit import capabilities_of

from .destinations import DestinationAcceptance, reading


class TestRedisPublisher(DestinationAcceptance):
    """The publisher contract on Redis Streams."""

    url_fixture = "redis_url"
    capabilities = capabilities_of("redis://", "publisher")
    open_options: ClassVar[dict[str, Any]] = {"timeout": 3}

    def unreachable_url(self) -> str:
        return "redis://esrc:secret-password@127.0.0.1:9/0"

    def test_entry_fields(self, publisher: Publisher) -> None:
        """An entry holds exactly the esrc headers and the event bytes."""
        [event] = relay_events(1)
        publisher.publish(event)
        [message] = self.read(1, timeout=0)
        _, fields = message.raw
        assert sorted(fields) == sorted(name.encode() for name in (*HEADERS, BODY_FIELD))
        assert fields[BODY_FIELD.encode()] == event.event.data
        assert fields[b"esrc-message-id"] == header_value(event.message_id).encode()


class TestRedisPublisherAsync(AsyncPublisherAcceptance, TestRedisPublisher):
    """The same contract (and the Redis-specific cases above) on the publisher's async face
    (``open_async_publisher``), run on the caller's event loop."""


def test_maxlen_trims_the_stream(redis_url: str, loop: LoopThread, unique: str) -> None:
    """maxlen with approximate=false keeps exactly the newest maxlen entries."""
    destination = RedisDestination(redis_url, f"esrc-test-{unique}")
    with reading(destination, loop) as reader:
        events = relay_events(30)
        publisher = open_publisher(destination.publisher_url(maxlen="10", approximate="false"))
        assert isinstance(publisher, BatchPublisher)
        try:
            publisher.publish(events[0])
            publisher.publish_batch(events[1:])
        finally:
            publisher.close()
        assert [m.event for m in reader.read(30, 0)] == events[-10:]


def test_key_of_another_type_is_a_config_error(
    redis_url: str, loop: LoopThread, unique: str
) -> None:
    """A stream key that holds a string fails opening with a BackendConfigError naming
    the key, not a retryable unavailability."""
    destination = RedisDestination(redis_url, f"esrc-test-{unique}")

    async def set_string() -> None:
        client = redis.asyncio.from_url(redis_url)
        try:
            await client.set(destination.stream, b"not a stream")
        finally:
            await client.aclose()

    loop.run(set_string(), 10)
    try:
        with pytest.raises(BackendConfigError, match=f"'esrc-test-{unique}' holds a string"):
            open_publisher(destination.publisher_url(), timeout=5)
    finally:
        destination.delete(loop=loop)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("redis://esrc:secret@127.0.0.1:6379/0?maxlen=0", "maxlen must be positive"),
        ("redis://esrc:secret@127.0.0.1:6379/0?stream=", "non-empty key"),
        ("redis://esrc:secret@127.0.0.1:x/0", "Port could not be cast"),
    ],
)
def test_bad_url_or_options_are_config_errors(url: str, match: str) -> None:
    """Options and URLs that cannot work fail before connecting, password masked."""
    with pytest.raises(BackendConfigError, match=match) as caught:
        open_publisher(url)
    assert "secret" not in str(caught.value)
