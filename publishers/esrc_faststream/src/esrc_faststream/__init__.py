"""The shared part of esrc's broker publishers (RabbitMQ, NATS JetStream, Redis
Streams) and the consumer side of the relay for CQRS read models.

- :mod:`esrc_faststream.headers`: the headers every relayed message carries, and
  :func:`relay_event_from` to turn a received message back into a ``RelayEvent``.
- :mod:`esrc_faststream.publisher`: :class:`AsyncBrokerPublisher`, the synchronous
  publisher facade over an asyncio client running in its own event loop thread.
- :mod:`esrc_faststream.consumer`: FastStream subscribers that decode relayed events and
  apply each message once (:class:`SeenMessages`).
- :mod:`esrc_faststream.backends`: the backend descriptor and URL factory each
  publisher distribution's entry point module builds from its own names and options.
"""

from esrc_faststream.headers import RoutingRule, relay_event_from, relay_headers, route
from esrc_faststream.loop import LoopThread
from esrc_faststream.publisher import AsyncBrokerPublisher, PartialPublish

__all__ = [
    "AsyncBrokerPublisher",
    "LoopThread",
    "PartialPublish",
    "RoutingRule",
    "relay_event_from",
    "relay_headers",
    "route",
]
