"""A relay's place on Redis Streams: the stream key ``<name>``, and the consumer group
``<name>-<consumer>`` of each consumer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from esrc_faststream.consumer import Projection
from esrc_faststream.destination import Destination
from esrc_faststream.loop import LoopThread

if TYPE_CHECKING:
    from esrc_redis.testing import RedisReader

__all__ = ["RedisDestination"]


class RedisDestination(Destination):
    """The stream :attr:`stream` (``name``) and one consumer group per consumer. See
    :class:`~esrc_faststream.destination.Destination`."""

    backend = "redis"
    label = "Redis Streams"

    @property
    def stream(self) -> str:
        """The stream key the publisher adds to."""
        return self.name

    def group(self, consumer: str) -> str:
        """The consumer group of ``consumer``."""
        return f"{self.name}-{consumer}"

    def publisher_options(self) -> dict[str, str]:
        """``stream=<name>``."""
        return {"stream": self.stream}

    def faststream_broker(self, **options: Any) -> Any:
        """A ``RedisBroker`` for the destination's URL."""
        from faststream.redis import RedisBroker

        return RedisBroker(self.url, **options)

    def subscribe(self, broker: Any, projection: Projection, consumer: str) -> Any:
        """:func:`esrc_redis.consumer.subscribe` in the consumer's group (whose one
        member is named ``consumer`` too)."""
        from esrc_redis.consumer import subscribe

        return subscribe(
            broker, projection, group=self.group(consumer), consumer=consumer, stream=self.stream
        )

    def reader(self, loop: LoopThread) -> RedisReader:
        """A :class:`~esrc_redis.testing.RedisReader` of the stream."""
        from esrc_redis.testing import RedisReader

        return RedisReader(self.url, self.stream, loop)

    async def _delete(self, consumers: Sequence[str]) -> None:
        import redis.asyncio

        client = redis.asyncio.from_url(self.url)
        try:
            await client.delete(self.stream)  # and its groups
        finally:
            await client.aclose()
