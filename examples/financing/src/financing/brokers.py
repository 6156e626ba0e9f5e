"""Connecting the relay to the consumers: in process, or through RabbitMQ, NATS
JetStream or Redis Streams.

:func:`connect` opens the publisher the relay writes to and starts one subscription
per consumer (the choreography, the read models), each receiving every event in relay
order:

- ``memory://``: the in-process publisher calls the consumers synchronously.
- ``amqp://``: a topic exchange ``<name>`` and a durable queue ``<name>.<consumer>``
  per consumer, bound to every routing key.
- ``nats://``: a JetStream stream ``<NAME>`` capturing ``<name>.>`` and a durable
  consumer ``<name>-<consumer>`` per consumer.
- ``redis://``: a stream ``<name>`` and a consumer group ``<name>-<consumer>`` per
  consumer.

Queues, durable consumers and groups outlive the process, so a consumer that stops
resumes where it was. :func:`reset_broker` deletes them (and the stream or exchange)
for a fresh start.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from esrc_core.urls import url_scheme
from esrc_faststream.consumer import (
    Projection,
    subscribe_nats,
    subscribe_rabbitmq,
    subscribe_redis,
)
from esrc_faststream.loop import LoopThread

from esrc_core import BrokerUnavailableError, Publisher, mask_url, open_publisher

__all__ = ["Transport", "broker_kind", "connect", "reset_broker"]

_KINDS = {
    "memory": "memory",
    "amqp": "rabbitmq",
    "amqps": "rabbitmq",
    "nats": "nats",
    "nats+tls": "nats",
    "redis": "redis",
    "rediss": "redis",
}
_TIMEOUT = 30.0
_log = logging.getLogger("financing.consumers")
"""The consumers' broker clients log here (FastStream logs each message at INFO)."""


def broker_kind(url: str) -> str:
    """``"memory"``, ``"rabbitmq"``, ``"nats"`` or ``"redis"`` for a publisher URL;
    raises ``ValueError`` for any other scheme."""
    kind = _KINDS.get(url_scheme(url) or "")
    if kind is None:
        raise ValueError(
            f"unsupported publisher URL {mask_url(url)!r}: use memory://, amqp://, "
            "nats:// or redis://"
        )
    return kind


@dataclass
class Transport:
    """The publisher the relay writes to and the running subscriptions; :meth:`close`
    stops both."""

    publisher: Publisher
    kind: str
    _stops: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Close the publisher, stop the subscriptions and their event loop. Calling it
        twice is harmless."""
        stops, self._stops = self._stops, []
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                stop()


def _stream_name(name: str) -> str:
    return name.upper()


def connect(
    url: str,
    name: str,
    consumers: Sequence[tuple[str, Projection]],
    *,
    fresh: bool = False,
) -> Transport:
    """Open the publisher for ``url`` and subscribe each ``(consumer name,
    projection)`` to everything it publishes; broker objects are named after ``name``
    (letters, digits, ``_`` and ``-``). With ``fresh``, :func:`reset_broker` runs first.

    Raises ``ValueError`` for an unsupported URL and
    :class:`~esrc_core.BrokerUnavailableError` when the broker cannot be reached.
    """
    kind = broker_kind(url)
    if kind == "memory":
        publisher = open_publisher(url)
        for _, projection in consumers:
            publisher.subscribe(projection.handle)  # type: ignore[attr-defined]
        transport = Transport(publisher, kind)
        transport._stops.append(publisher.close)
        return transport
    if fresh:
        reset_broker(url, name, [consumer for consumer, _ in consumers])
    loop = LoopThread(name=f"{name}-consumers")
    stops: list[Callable[[], None]] = [loop.close]
    try:
        publisher = _open(url, kind=kind, name=name, consumers=consumers, loop=loop, stops=stops)
    except BaseException:
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                stop()
        raise
    transport = Transport(publisher, kind)
    transport._stops.extend(stops)
    return transport


def _open(
    url: str,
    *,
    kind: str,
    name: str,
    consumers: Sequence[tuple[str, Projection]],
    loop: LoopThread,
    stops: list[Callable[[], None]],
) -> Publisher:
    broker: Any
    if kind == "rabbitmq":
        from faststream.rabbit import RabbitBroker

        broker = RabbitBroker(url, logger=_log)
        for consumer, projection in consumers:
            subscribe_rabbitmq(broker, projection, queue=f"{name}.{consumer}", exchange=name)
        _start(loop, broker, url, stops)
        publisher = open_publisher(url, exchange=name)
    elif kind == "nats":
        from faststream.nats import NatsBroker

        stream = _stream_name(name)
        # The publisher creates the stream the subscriptions read.
        publisher = open_publisher(
            url,
            stream=stream,
            subjects=f"{name}.>",
            subject=name + ".{aggregate_type}.{event_name}",
        )
        stops.append(publisher.close)
        broker = NatsBroker(url, logger=_log)
        for consumer, projection in consumers:
            subscribe_nats(
                broker, projection, durable=f"{name}-{consumer}", stream=stream, subject=f"{name}.>"
            )
        _start(loop, broker, url, stops)
        return publisher
    else:
        from faststream.redis import RedisBroker

        broker = RedisBroker(url, logger=_log)
        for consumer, projection in consumers:
            subscribe_redis(
                broker, projection, group=f"{name}-{consumer}", consumer="demo", stream=name
            )
        _start(loop, broker, url, stops)
        publisher = open_publisher(url, stream=name)
    stops.append(publisher.close)
    return publisher


def _start(loop: LoopThread, broker: Any, url: str, stops: list[Callable[[], None]]) -> None:
    try:
        loop.run(broker.start(), _TIMEOUT)
    except Exception as err:
        with contextlib.suppress(Exception):
            loop.run(broker.stop(), _TIMEOUT)
        raise BrokerUnavailableError(
            f"start the consumers on {mask_url(url)}: {type(err).__name__}: {err}"
        ) from err
    stops.append(lambda: loop.run(broker.stop(), _TIMEOUT))


def reset_broker(url: str, name: str, consumers: Sequence[str]) -> None:
    """Delete what :func:`connect` creates for ``name`` and these consumer names:
    RabbitMQ queues and exchange, the NATS stream (and its consumers), the Redis
    stream (and its groups). Missing ones are fine; ``memory://`` has nothing to delete.

    Raises :class:`~esrc_core.BrokerUnavailableError` when the broker cannot be reached.
    """
    kind = broker_kind(url)
    work: Coroutine[Any, Any, None]
    if kind == "memory":
        return
    if kind == "rabbitmq":
        work = _reset_rabbitmq(url, name, [f"{name}.{c}" for c in consumers])
    elif kind == "nats":
        work = _reset_nats(url, _stream_name(name))
    else:
        work = _reset_redis(url, name)
    loop = LoopThread(name=f"{name}-reset")
    try:
        loop.run(work, _TIMEOUT)
    except Exception as err:
        raise BrokerUnavailableError(
            f"delete the {name!r} queues and streams on {mask_url(url)}: "
            f"{type(err).__name__}: {err}"
        ) from err
    finally:
        loop.close()


async def _reset_rabbitmq(url: str, exchange: str, queues: Sequence[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)


async def _reset_nats(url: str, stream: str) -> None:
    import nats
    import nats.js.errors

    client = await nats.connect(
        [server.strip() for server in url.split(",") if server.strip()],
        connect_timeout=5,
        allow_reconnect=False,
        max_reconnect_attempts=1,  # else the first connect keeps trying
        error_cb=_ignore,
    )
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


async def _ignore(_: Exception) -> None:
    """nats-py reports connection errors to a callback (and logs them with a traceback
    by default); the caller gets the exception from ``connect`` anyway."""


async def _reset_redis(url: str, stream: str) -> None:
    import redis.asyncio

    client = redis.asyncio.from_url(url)
    try:
        await client.delete(stream)
    finally:
        await client.aclose()
