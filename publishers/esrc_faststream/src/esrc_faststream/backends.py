"""What a broker publisher's entry point module needs: its :class:`Backend` descriptor
and the factory that opens the publisher from a URL.

Each distribution (esrc-rabbitmq, esrc-nats, esrc-redis) keeps its own entry point
module; that module calls these two functions with its own names and options. The
publisher class is named as ``"module:Class"`` and imported only when a publisher is
opened, so listing backends never loads a broker client.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from esrc_core.capabilities import Capability
from esrc_core.errors import BackendUnavailableError
from esrc_core.plugins import Backend

from esrc_faststream.options import Converter, split_options

__all__ = ["open_broker_publisher", "publisher_backend"]


def open_broker_publisher(
    url: str,
    options: Mapping[str, Any],
    *,
    publisher: str,
    known: Mapping[str, Converter],
    broker: str,
    distribution: str,
) -> Any:
    """Import the publisher class ``publisher`` (``"module:Class"``) and open it on
    ``url``.

    The ``known`` options are taken out of the URL's query string and merged with
    ``options`` (see :func:`~esrc_faststream.options.split_options`, which raises
    ``TypeError`` and ``ValueError``); the class gets the rest of the URL and the merged
    options. When the class or its broker client cannot be imported, raises
    :class:`~esrc_core.errors.BackendUnavailableError` naming what is missing, the
    ``broker`` and the ``distribution`` to install.
    """
    module_name, _, class_name = publisher.partition(":")
    try:
        publisher_class = getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise BackendUnavailableError(
            f"the {broker} publisher cannot import {err.name or err}; "
            f"install it with: pip install {distribution}"
        ) from err
    broker_url, merged = split_options(url, known, options)
    return publisher_class(broker_url.rstrip("?"), **merged)


def publisher_backend(
    *,
    name: str,
    schemes: tuple[str, ...],
    factory: Callable[..., Any],
    description: str,
    distribution: str,
) -> Backend:
    """The descriptor of a broker publisher backend: kind ``publisher``, the ``batch``
    capability (every :class:`~esrc_faststream.publisher.AsyncBrokerPublisher` is a
    :class:`~esrc_core.relay.BatchPublisher`), opened by ``factory``, installed with
    ``pip install <distribution>``."""
    return Backend(
        name=name,
        kind="publisher",
        schemes=schemes,
        factory=factory,
        capabilities=frozenset({Capability.BATCH}),
        description=description,
        install_hint=f"pip install {distribution}",
    )
