"""esrc relay publisher for NATS JetStream: ``open_publisher("nats://host:4222")``.

- :mod:`esrc_nats.publisher`: :class:`NatsPublisher`.
- :mod:`esrc_nats.consumer`: ``subscribe``, a projection on a FastStream broker.
- :mod:`esrc_nats.destination`: :class:`~esrc_nats.destination.NatsDestination`, the
  names one relay uses on the broker (registered under ``esrc.faststream``).
- :mod:`esrc_nats.testing`: :class:`~esrc_nats.testing.NatsReader`, reading relayed
  messages back in tests.

Importing this package does not import the client; :class:`NatsPublisher` is loaded on
first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esrc_nats.publisher import NatsPublisher

__all__ = ["NatsPublisher"]


def __getattr__(name: str) -> Any:
    if name == "NatsPublisher":
        from esrc_nats.publisher import NatsPublisher

        return NatsPublisher
    raise AttributeError(f"module 'esrc_nats' has no attribute {name!r}")
