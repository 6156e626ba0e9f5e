"""What a broker publisher's entry point module needs: a :class:`BrokerPublisherSpec`,
which opens the publisher from a URL (sync, and its async face) and builds the
backend's :class:`~esrc_core.plugins.Backend` descriptor.

Each distribution (esrc-rabbitmq, esrc-nats, esrc-redis) keeps its own entry point
module with its own spec. The publisher class is named as ``"module:Class"`` and
imported only when a publisher is opened, so listing backends never loads a broker
client.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from esrc_core.capabilities import Capability
from esrc_core.errors import BackendUnavailableError
from esrc_core.plugins import Backend

from esrc_faststream.options import Converter, split_options
from esrc_faststream.publisher import AsyncBrokerFace

__all__ = ["BrokerPublisherSpec"]


@dataclass(frozen=True)
class BrokerPublisherSpec:
    """How a broker distribution opens its publisher.

    - ``publisher``: the :class:`~esrc_faststream.publisher.AsyncBrokerPublisher`
      subclass as ``"module:Class"``, imported on first use;
    - ``known``: the options the URL's query string may carry, with their converters;
    - ``broker``: the broker's name in messages (``"RabbitMQ"``);
    - ``distribution``: what to ``pip install`` when the class or its client library
      cannot be imported.
    """

    publisher: str
    known: Mapping[str, Converter]
    broker: str
    distribution: str

    def open(self, url: str, options: Mapping[str, Any]) -> Any:
        """Open the publisher on ``url``: the ``known`` options are taken out of the
        URL's query string and merged with ``options`` (see
        :func:`~esrc_faststream.options.split_options`, which raises ``TypeError`` and
        ``ValueError``); the class gets the rest of the URL and the merged options.
        Raises :class:`~esrc_core.errors.BackendUnavailableError` naming what is
        missing and the distribution to install when the class or its broker client
        cannot be imported."""
        publisher_class, broker_url, merged = self._resolve(url, options)
        return publisher_class(broker_url, **merged)

    async def open_async(self, url: str, options: Mapping[str, Any]) -> AsyncBrokerFace:
        """:meth:`open`'s async twin: the same class, URL and options, opened as an
        :class:`~esrc_faststream.publisher.AsyncBrokerFace` on the running loop."""
        publisher_class, broker_url, merged = self._resolve(url, options)
        return await AsyncBrokerFace.open(publisher_class, broker_url, **merged)

    def _resolve(self, url: str, options: Mapping[str, Any]) -> tuple[Any, str, dict[str, Any]]:
        module_name, _, class_name = self.publisher.partition(":")
        try:
            publisher_class = getattr(importlib.import_module(module_name), class_name)
        except ImportError as err:
            raise BackendUnavailableError(
                f"the {self.broker} publisher cannot import {err.name or err}; "
                f"install it with: pip install {self.distribution}"
            ) from err
        broker_url, merged = split_options(url, self.known, options)
        return publisher_class, broker_url.rstrip("?"), merged

    def backend(self, *, name: str, schemes: tuple[str, ...], description: str) -> Backend:
        """The backend's descriptor: kind ``publisher``, the ``batch`` capability
        (every :class:`~esrc_faststream.publisher.AsyncBrokerPublisher` is a
        :class:`~esrc_core.relay.BatchPublisher`), opened by :meth:`open` and its async
        face by :meth:`open_async`, installed with ``pip install <distribution>``."""

        def factory(url: str, **options: Any) -> Any:
            return self.open(url, options)

        async def async_factory(url: str, **options: Any) -> AsyncBrokerFace:
            return await self.open_async(url, options)

        return Backend(
            name=name,
            kind="publisher",
            schemes=schemes,
            factory=factory,
            capabilities=frozenset({Capability.BATCH}),
            description=description,
            install_hint=f"pip install {self.distribution}",
            async_factory=async_factory,
        )
