"""esrc relay publisher for Redis Streams: ``open_publisher("redis://host:6379/0")``.

- :mod:`esrc_redis.publisher`: :class:`RedisPublisher`.
- :mod:`esrc_redis.consumer`: ``subscribe``, a projection on a FastStream broker.
- :mod:`esrc_redis.destination`: :class:`~esrc_redis.destination.RedisDestination`, the
  names one relay uses on the broker (registered under ``esrc.faststream``).
- :mod:`esrc_redis.testing`: :class:`~esrc_redis.testing.RedisReader`, reading relayed
  messages back in tests.

Importing this package does not import the client; :class:`RedisPublisher` is loaded
on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esrc_redis.publisher import RedisPublisher

__all__ = ["RedisPublisher"]


def __getattr__(name: str) -> Any:
    if name == "RedisPublisher":
        from esrc_redis.publisher import RedisPublisher

        return RedisPublisher
    raise AttributeError(f"module 'esrc_redis' has no attribute {name!r}")
