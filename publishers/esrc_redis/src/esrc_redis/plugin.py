"""Entry point of the ``redis`` publisher: registers ``redis://`` and ``rediss://``
(Redis Streams).

Light on purpose: the client library is imported only when a publisher is opened.
"""

from __future__ import annotations

from esrc_core.plugins import Backend, hookimpl
from esrc_faststream.backends import BrokerPublisherSpec
from esrc_faststream.options import Converter, flag, optional_int

__all__ = ["SPEC", "esrc_publisher_backends"]

_OPTIONS: dict[str, Converter] = {
    "stream": str,
    "maxlen": optional_int,
    "approximate": flag,
    "timeout": float,
    "max_in_flight": int,
}


SPEC = BrokerPublisherSpec(
    publisher="esrc_redis.publisher:RedisPublisher",
    known=_OPTIONS,
    broker="Redis",
    distribution="esrc-redis",
)
"""How the publisher is opened: ``SPEC.open(url, options)``, or its async face with
``await SPEC.open_async(url, options)``; options come from the URL's query string and
``options``."""


@hookimpl
def esrc_publisher_backends() -> list[Backend]:
    """The Redis Streams publisher."""
    return [
        SPEC.backend(
            name="redis",
            schemes=("redis", "rediss"),
            description="Redis stream via XADD (redis://host:6379/0?stream=esrc)",
        )
    ]
