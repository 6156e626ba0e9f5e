"""Entry point of the ``redis`` publisher: registers ``redis://`` and ``rediss://``
(Redis Streams).

Light on purpose: the client library is imported only when a publisher is opened.
"""

from __future__ import annotations

from typing import Any

from esrc_core.plugins import Backend, hookimpl
from esrc_faststream.backends import open_broker_publisher, publisher_backend
from esrc_faststream.options import Converter, flag, optional_int

__all__ = ["esrc_publisher_backends", "open_publisher"]

_OPTIONS: dict[str, Converter] = {
    "stream": str,
    "maxlen": optional_int,
    "approximate": flag,
    "timeout": float,
    "max_in_flight": int,
}


def open_publisher(url: str, **options: Any) -> Any:
    """Open a :class:`~esrc_redis.publisher.RedisPublisher` for ``url``; options come
    from the query string (``?stream=orders&maxlen=100000``) and ``options``."""
    return open_broker_publisher(
        url,
        options,
        publisher="esrc_redis.publisher:RedisPublisher",
        known=_OPTIONS,
        broker="Redis",
        distribution="esrc-redis",
    )


@hookimpl
def esrc_publisher_backends() -> list[Backend]:
    """The Redis Streams publisher."""
    return [
        publisher_backend(
            name="redis",
            schemes=("redis", "rediss"),
            factory=open_publisher,
            description="Redis stream via XADD (redis://host:6379/0?stream=esrc)",
            distribution="esrc-redis",
        )
    ]
