"""Entry point of the ``memory`` backend: registers ``memory://`` for stores and
publishers."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from esrc_core.capabilities import Capability
from esrc_core.plugins import Backend, hookimpl

__all__ = [
    "esrc_publisher_backends",
    "esrc_store_backends",
    "open_async_publisher",
    "open_async_store",
    "open_publisher",
    "open_store",
]


def _name(url: str) -> str | None:
    parts = urlsplit(url)
    name = (parts.netloc + parts.path).strip("/")
    return name or None


def open_store(url: str, **options: Any) -> Any:
    """Open ``memory://`` (a private store) or ``memory://name`` (shared by name)."""
    from esrc_memory.store import MemoryEventStore

    if options:
        raise TypeError(f"the memory store takes no options, got {sorted(options)}")
    return MemoryEventStore(_name(url))


def open_async_store(url: str, **options: Any) -> Any:
    """The async face of :func:`open_store`'s store (the same data under the same
    name: ``memory://name`` opened by both APIs is one store)."""
    from esrc_core.async_store import BridgedEventStore

    store = open_store(url, **options)
    return BridgedEventStore(store, what=f"the store {store!r}")


def open_publisher(url: str, **options: Any) -> Any:
    """Open ``memory://`` or ``memory://name`` (subscribers shared by name)."""
    from esrc_memory.publisher import MemoryPublisher

    if options:
        raise TypeError(f"the memory publisher takes no options, got {sorted(options)}")
    return MemoryPublisher(_name(url))


def open_async_publisher(url: str, **options: Any) -> Any:
    """The async face of :func:`open_publisher`'s publisher (the same subscribers under
    the same name); its calls run inline, as delivering in process waits on nothing."""
    from esrc_core.async_relay import InlinePublisher

    return InlinePublisher(open_publisher(url, **options))


@hookimpl
def esrc_store_backends() -> list[Backend]:
    """The in-memory event store."""
    return [
        Backend(
            name="memory",
            kind="store",
            schemes=("memory",),
            factory=open_store,
            async_factory=open_async_store,
            capabilities=frozenset(
                {
                    Capability.SNAPSHOTS,
                    Capability.OUTBOX,
                    Capability.THREADS,
                    Capability.RELAY_LOCK,
                    Capability.INSPECT,
                    Capability.STREAMING,
                    Capability.READ_AHEAD,
                    Capability.UNITS_OF_WORK,
                    Capability.DELETE_STREAMS,
                }
            ),
            description="in-process event store with outbox (memory:// or memory://name)",
        )
    ]


@hookimpl
def esrc_publisher_backends() -> list[Backend]:
    """The in-process publisher."""
    return [
        Backend(
            name="memory",
            kind="publisher",
            schemes=("memory",),
            factory=open_publisher,
            async_factory=open_async_publisher,
            capabilities=frozenset({Capability.BATCH}),
            description="delivers to subscribers in this process (memory:// or memory://name)",
        )
    ]
