"""esrc relay publisher for RabbitMQ: ``open_publisher("amqp://user@host/vhost")``.

- :mod:`esrc_rabbitmq.publisher`: :class:`RabbitPublisher`.
- :mod:`esrc_rabbitmq.consumer`: ``subscribe``, a projection on a FastStream broker.
- :mod:`esrc_rabbitmq.destination`: :class:`~esrc_rabbitmq.destination.RabbitDestination`, the
  names one relay uses on the broker (registered under ``esrc.faststream``).
- :mod:`esrc_rabbitmq.testing`: :class:`~esrc_rabbitmq.testing.RabbitReader`, reading relayed
  messages back in tests.

Importing this package does not import the client; :class:`RabbitPublisher` is loaded
on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esrc_rabbitmq.publisher import RabbitPublisher

__all__ = ["RabbitPublisher"]


def __getattr__(name: str) -> Any:
    if name == "RabbitPublisher":
        from esrc_rabbitmq.publisher import RabbitPublisher

        return RabbitPublisher
    raise AttributeError(f"module 'esrc_rabbitmq' has no attribute {name!r}")
