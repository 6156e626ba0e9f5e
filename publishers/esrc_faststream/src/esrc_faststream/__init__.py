"""The shared part of esrc's broker publishers (RabbitMQ, NATS JetStream, Redis
Streams) and the consumer side of the relay for CQRS read models.

- :mod:`esrc_faststream.headers`: the headers every relayed message carries, and
  :func:`relay_event_from` to turn a received message back into a ``RelayEvent``.
- :mod:`esrc_faststream.publisher`: :class:`AsyncBrokerPublisher`, the synchronous
  publisher facade over an asyncio client running in its own event loop thread.
- :mod:`esrc_faststream.consumer`: the
  :class:`~esrc_faststream.consumer.Projection` that decodes relayed events and applies
  each message once (:class:`~esrc_faststream.consumer.SeenMessages`); each broker
  distribution's ``consumer.subscribe`` attaches one to a FastStream broker.
- :mod:`esrc_faststream.destination`:
  :class:`~esrc_faststream.destination.Destination`, one relay's objects on a broker
  named after one name, and :func:`~esrc_faststream.destination.destination`, which
  finds the broker distribution's class from a publisher URL.
- :mod:`esrc_faststream.testing`: :class:`~esrc_faststream.testing.BrokerReader`,
  reading relayed messages back in tests and benchmarks.
- :mod:`esrc_faststream.backends`, :mod:`esrc_faststream.options`: the backend
  descriptor, URL factory and option parsing each publisher distribution's entry point
  module builds from its own names and options.

What is specific to one broker lives in its distribution (``esrc_rabbitmq``,
``esrc_nats``, ``esrc_redis``): the publisher, ``consumer.subscribe``, the
``Destination`` and the ``testing`` reader.
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
