"""A relay's place on RabbitMQ: the topic exchange ``<name>``, and the durable queue
``<name>.<consumer>`` of each consumer, bound to every routing key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from esrc_faststream.consumer import Projection
from esrc_faststream.destination import Destination
from esrc_faststream.loop import LoopThread

if TYPE_CHECKING:
    from esrc_rabbitmq.testing import RabbitReader

__all__ = ["RabbitDestination"]


class RabbitDestination(Destination):
    """The exchange :attr:`exchange` (``name``) and one queue per consumer,
    ``<name>.<consumer>``. See :class:`~esrc_faststream.destination.Destination`."""

    backend = "rabbitmq"
    label = "RabbitMQ"

    @property
    def exchange(self) -> str:
        """The topic exchange the publisher sends to."""
        return self.name

    def queue(self, consumer: str) -> str:
        """The queue of ``consumer``."""
        return f"{self.name}.{consumer}"

    def publisher_options(self) -> dict[str, str]:
        """``exchange=<name>``."""
        return {"exchange": self.exchange}

    def faststream_broker(self, **options: Any) -> Any:
        """A ``RabbitBroker`` for the destination's URL."""
        from faststream.rabbit import RabbitBroker

        return RabbitBroker(self.url, **options)

    def subscribe(self, broker: Any, projection: Projection, consumer: str) -> Any:
        """:func:`esrc_rabbitmq.consumer.subscribe` on the consumer's durable queue."""
        from esrc_rabbitmq.consumer import subscribe

        return subscribe(broker, projection, queue=self.queue(consumer), exchange=self.exchange)

    def reader(self, loop: LoopThread) -> RabbitReader:
        """A :class:`~esrc_rabbitmq.testing.RabbitReader` of the exchange."""
        from esrc_rabbitmq.testing import RabbitReader

        return RabbitReader(self.url, self.exchange, loop)

    async def _delete(self, consumers: Sequence[str]) -> None:
        import aio_pika

        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            for consumer in consumers:
                await channel.queue_delete(self.queue(consumer))
            await channel.exchange_delete(self.exchange)
