"""The read side on NATS JetStream: :func:`subscribe` attaches a
:class:`~esrc_faststream.consumer.Projection` to a FastStream ``NatsBroker``."""

from __future__ import annotations

import warnings
from typing import Any

from esrc_faststream.consumer import CurrentMessage, Projection
from faststream.nats import DeliverPolicy, JStream, NatsBroker

__all__ = ["subscribe"]


def subscribe(
    broker: NatsBroker,
    projection: Projection,
    *,
    durable: str,
    stream: str = "ESRC",
    subject: str = "esrc.>",
) -> Any:
    """Subscribe ``projection`` to the JetStream ``stream``'s messages on ``subject``
    through the durable consumer ``durable``, from the first message it holds.

    The stream must exist (the publisher creates it). Messages of the subscription are
    handled one at a time, in stream order, and acknowledged after the handler returns.
    Returns the FastStream subscriber.
    """
    with warnings.catch_warnings():
        # FastStream warns that a durable push consumer cannot be scaled out across
        # instances; an ordered projection is one consumer on purpose. (Its pull
        # consumer handles a fetched batch concurrently, which would reorder events.)
        warnings.simplefilter("ignore", RuntimeWarning)
        subscriber = broker.subscriber(
            subject,
            stream=JStream(stream, declare=False),
            durable=durable,
            deliver_policy=DeliverPolicy.ALL,
        )

    async def receive(message: CurrentMessage) -> None:
        raw = message.raw_message
        await projection.handle_message(dict(raw.headers or {}), raw.data)

    return subscriber(receive)
