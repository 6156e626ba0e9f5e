"""The read side on Redis Streams: :func:`subscribe` attaches a
:class:`~esrc_faststream.consumer.Projection` to a FastStream ``RedisBroker``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from esrc_faststream.consumer import CurrentMessage, Projection
from esrc_faststream.headers import BODY_FIELD
from faststream.redis import RedisBroker, StreamSub

__all__ = ["entry_headers", "subscribe"]


def entry_headers(fields: Mapping[Any, Any]) -> tuple[dict[str, Any], bytes]:
    """A stream entry's fields as the esrc headers (names decoded to ``str``, values
    as Redis gives them) and the event's bytes (the ``data`` field)."""
    headers = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in fields.items()}
    body = headers.pop(BODY_FIELD, b"")
    return headers, body if isinstance(body, bytes) else str(body).encode()


def subscribe(
    broker: RedisBroker,
    projection: Projection,
    *,
    group: str,
    consumer: str,
    stream: str = "esrc",
) -> Any:
    """Subscribe ``projection`` to the Redis ``stream`` as ``consumer`` of the consumer
    group ``group`` (created from the start of the stream if missing).

    Entries are acknowledged (``XACK``) after the handler returns. Returns the
    FastStream subscriber.
    """
    subscriber = broker.subscriber(
        stream=StreamSub(stream, group=group, consumer=consumer, last_id="0")
    )

    async def receive(message: CurrentMessage) -> None:
        headers, body = entry_headers(message.raw_message["data"])
        await projection.handle_message(headers, body)

    return subscriber(receive)
