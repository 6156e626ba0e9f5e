"""Opening the store a command line names, with the options it gives."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, cast

from esrc_core.capabilities import Capability, offered
from esrc_core.errors import BackendConfigError, EsrcError, NotSupportedError
from esrc_core.inspection import Inspectable
from esrc_core.plugins import plugins
from esrc_core.store import EventStore
from esrc_core.urls import mask_url

__all__ = ["InspectableStore", "inspectable", "open_store"]


class InspectableStore(EventStore, Inspectable, Protocol):
    """An event store that offers inspection."""


def open_store(
    url: str, options: Mapping[str, Any] | None = None, *, inspecting: bool = False
) -> EventStore:
    """Open the store ``url`` names with ``options``; when ``inspecting``, with the
    backend's ``inspect_options`` under them, so that nothing is created.

    A ``TypeError`` or ``ValueError`` of the backend's factory (an option it does not
    take, a value it cannot use) is raised as
    :class:`~esrc_core.errors.BackendConfigError` naming the URL and the backend.
    """
    registry = plugins()
    backend, _ = registry.resolve(url, "store")
    given = {**backend.inspect_options, **(options or {})} if inspecting else dict(options or {})
    try:
        return registry.open_event_store(url, **given)
    except EsrcError:
        raise
    except (TypeError, ValueError) as err:
        raise BackendConfigError(
            f"open {mask_url(url)} with the {backend.name} backend: {err}"
        ) from err


@contextlib.contextmanager
def inspectable(url: str, options: Mapping[str, Any] | None) -> Iterator[InspectableStore]:
    """Open the store ``url`` names for inspection and close it at the end.

    Raises :class:`~esrc_core.errors.NotSupportedError` naming the installed
    backends that offer inspection when this one does not.
    """
    store = open_store(url, options, inspecting=True)
    try:
        if offered(store, Capability.INSPECT, Inspectable) is None:
            registry = plugins()
            backend, _ = registry.resolve(url, "store")
            able = [
                b.name for b in registry.backends("store") if Capability.INSPECT in b.capabilities
            ]
            raise NotSupportedError(
                f"cannot inspect {mask_url(url)}: the {backend.name} backend "
                f"({backend.distribution or 'unknown distribution'}) does not offer the "
                f"'{Capability.INSPECT}' capability; backends that do: "
                f"{', '.join(able) or 'none installed'}"
            )
        yield cast(InspectableStore, store)
    finally:
        store.close()
