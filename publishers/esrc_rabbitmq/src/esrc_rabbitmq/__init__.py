"""esrc relay publisher for RabbitMQ: ``open_publisher("amqp://user@host/vhost")``.

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
