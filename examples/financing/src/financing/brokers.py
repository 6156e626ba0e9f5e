"""Connecting the relay to the consumers: in process, or through RabbitMQ, NATS
JetStream or Redis Streams.

:func:`connect` opens the publisher the relay writes to and starts one subscription
per consumer (the choreography, the read models), each receiving every event in relay
order:

- ``memory://``: the in-process publisher calls the consumers synchronously.
- a broker URL (``amqp://``, ``nats://``, ``redis://``, or any other broker whose
  distribution registers a :class:`~esrc_faststream.destination.Destination`): the
  destination ``<name>`` on that broker, and one durable subscription per consumer:
  on RabbitMQ a topic exchange ``<name>`` and a queue ``<name>.<consumer>``; on NATS a
  JetStream stream ``<NAME>`` capturing ``<name>.>`` and a durable consumer
  ``<name>-<consumer>``; on Redis a stream ``<name>`` and a consumer group
  ``<name>-<consumer>``.

Queues, durable consumers and groups outlive the process, so a consumer that stops
resumes where it was. :func:`reset_broker` deletes them (and the stream or exchange)
for a fresh start.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from esrc_core.plugins import plugins
from esrc_faststream.consumer import Projection
from esrc_faststream.destination import Destination, destination
from esrc_faststream.loop import LoopThread

from esrc_core import BrokerUnavailableError, Publisher, mask_url, open_publisher

__all__ = ["Transport", "broker_kind", "connect", "reset_broker"]

_TIMEOUT = 30.0
_log = logging.getLogger("financing.consumers")
"""The consumers' broker clients log here (FastStream logs each message at INFO)."""


def broker_kind(url: str) -> str:
    """``"memory"`` or the name of the broker's publisher backend (``"rabbitmq"``,
    ``"nats"``, ``"redis"``) for a publisher URL; raises ``LookupError``
    (:class:`~esrc_core.UnknownBackendError`) for a URL no installed publisher
    handles."""
    backend, _ = plugins().resolve(url, "publisher")
    return backend.name


@dataclass
class Transport:
    """The publisher the relay writes to and the running subscriptions; :meth:`close`
    stops both."""

    publisher: Publisher
    kind: str
    stops: list[Callable[[], None]] = field(default_factory=list, repr=False)
    """What :meth:`close` calls, last first: closing the publisher, stopping the
    subscriptions and their event loop."""

    def close(self) -> None:
        """Call :attr:`stops`, last first, ignoring their errors. Calling it twice is
        harmless."""
        stops, self.stops = self.stops, []
        _stop_all(stops)


def _stop_all(stops: Sequence[Callable[[], None]]) -> None:
    for stop in reversed(stops):
        with contextlib.suppress(Exception):
            stop()


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

    Raises ``LookupError`` for an unsupported URL, ``ValueError``
    (:class:`~esrc_core.BackendConfigError`) for a bad name or broker setup, and
    :class:`~esrc_core.BrokerUnavailableError` when the broker cannot be reached.
    """
    if broker_kind(url) == "memory":
        publisher = open_publisher(url)
        for _, projection in consumers:
            publisher.subscribe(projection.handle)  # type: ignore[attr-defined]
        return Transport(publisher, "memory", [publisher.close])
    place = destination(url, name)
    if fresh:
        _delete(place, [consumer for consumer, _ in consumers])
    loop = LoopThread(name=f"{name}-consumers")
    stops: list[Callable[[], None]] = [loop.close]
    try:
        # The publisher first: it creates the stream or exchange the consumers read.
        publisher = place.open_publisher()
        stops.append(publisher.close)
        _subscribe(place, consumers, loop, stops)
    except BaseException:
        _stop_all(stops)
        raise
    return Transport(publisher, place.backend, stops)


def _subscribe(
    place: Destination,
    consumers: Sequence[tuple[str, Projection]],
    loop: LoopThread,
    stops: list[Callable[[], None]],
) -> None:
    broker = place.faststream_broker(logger=_log)
    for consumer, projection in consumers:
        place.subscribe(broker, projection, consumer)
    try:
        loop.run(broker.start(), _TIMEOUT)
    except Exception as err:
        with contextlib.suppress(Exception):
            loop.run(broker.stop(), _TIMEOUT)
        raise BrokerUnavailableError(
            f"start the consumers on {mask_url(place.url)}: {type(err).__name__}: {err}"
        ) from err
    stops.append(lambda: loop.run(broker.stop(), _TIMEOUT))


def reset_broker(url: str, name: str, consumers: Sequence[str]) -> None:
    """Delete what :func:`connect` creates for ``name`` and these consumer names:
    RabbitMQ queues and exchange, the NATS stream (and its consumers), the Redis
    stream (and its groups). Missing ones are fine; ``memory://`` has nothing to delete.

    Raises :class:`~esrc_core.BrokerUnavailableError` when the broker cannot be reached.
    """
    if broker_kind(url) != "memory":
        _delete(destination(url, name), consumers)


def _delete(place: Destination, consumers: Sequence[str]) -> None:
    try:
        place.delete(consumers, timeout=_TIMEOUT)
    except Exception as err:
        raise BrokerUnavailableError(
            f"delete the {place.name!r} queues and streams on {mask_url(place.url)}: "
            f"{type(err).__name__}: {err}"
        ) from err
