"""A relay's place on NATS JetStream: the stream ``<NAME>`` (the name upper-cased)
capturing the subjects ``<name>.>``, and the durable consumer ``<name>-<consumer>`` of
each consumer."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from esrc_faststream.consumer import Projection
from esrc_faststream.destination import Destination
from esrc_faststream.loop import LoopThread

from esrc_nats._client import connect

if TYPE_CHECKING:
    from esrc_nats.testing import NatsReader

__all__ = ["NatsDestination"]


class NatsDestination(Destination):
    """The stream :attr:`stream`, subjects :attr:`subjects`, one durable consumer per
    consumer. See :class:`~esrc_faststream.destination.Destination`."""

    backend = "nats"
    label = "NATS JetStream"

    @property
    def stream(self) -> str:
        """The JetStream stream: the name upper-cased."""
        return self.name.upper()

    @property
    def subjects(self) -> str:
        """The subject filter the stream captures: ``<name>.>``."""
        return f"{self.name}.>"

    @property
    def subject_rule(self) -> str:
        """The publisher's subject rule: ``<name>.{aggregate_type}.{event_name}``."""
        return self.name + ".{aggregate_type}.{event_name}"

    def durable(self, consumer: str) -> str:
        """The durable consumer of ``consumer``."""
        return f"{self.name}-{consumer}"

    def publisher_options(self) -> dict[str, str]:
        """``stream``, ``subjects`` and ``subject``."""
        return {"stream": self.stream, "subjects": self.subjects, "subject": self.subject_rule}

    def faststream_broker(self, **options: Any) -> Any:
        """A ``NatsBroker`` for the destination's URL."""
        from faststream.nats import NatsBroker

        return NatsBroker(self.url, **options)

    def subscribe(self, broker: Any, projection: Projection, consumer: str) -> Any:
        """:func:`esrc_nats.consumer.subscribe` as the consumer's durable consumer;
        the stream must exist (open the publisher first)."""
        from esrc_nats.consumer import subscribe

        return subscribe(
            broker,
            projection,
            durable=self.durable(consumer),
            stream=self.stream,
            subject=self.subjects,
        )

    def reader(self, loop: LoopThread) -> NatsReader:
        """A :class:`~esrc_nats.testing.NatsReader` of the stream."""
        from esrc_nats.testing import NatsReader

        return NatsReader(self.url, self.stream, self.subjects, loop)

    async def _delete(self, consumers: Sequence[str]) -> None:
        import nats.js.errors

        client = await connect(self.url, timeout=5)
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await client.jetstream().delete_stream(self.stream)  # and its consumers
        finally:
            await client.close()
