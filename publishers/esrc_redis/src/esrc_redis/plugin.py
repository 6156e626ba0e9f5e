"""Entry point of the ``redis`` publisher: registers ``redis://`` and ``rediss://``
(Redis Streams).

Light on purpose: the client library is imported only when a publisher is opened.
"""

from __future__ import annotations

from typing import Any

from esrc_core.errors import BackendUnavailableError
from esrc_core.plugins import Backend, Capability, hookimpl
from esrc_faststream.options import Converter, flag, optional_int, split_options

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
    try:
        from esrc_redis.publisher import RedisPublisher
    except ImportError as err:
        raise BackendUnavailableError(
            f"the Redis publisher cannot import {err.name or err}; "
            "install it with: pip install esrc-redis"
        ) from err
    broker_url, merged = split_options(url, _OPTIONS, options)
    return RedisPublisher(broker_url, **merged)


@hookimpl
def esrc_publisher_backends() -> list[Backend]:
    """The Redis Streams publisher."""
    return [
        Backend(
            name="redis",
            kind="publisher",
            schemes=("redis", "rediss"),
            factory=open_publisher,
            capabilities=frozenset({Capability.BATCH}),
            description="Redis stream via XADD (redis://host:6379/0?stream=esrc)",
            install_hint="pip install esrc-redis",
        )
    ]
