"""In-memory backend for esrc: ``memory://`` event store with outbox, and an
in-process publisher. Registered through the ``esrc`` entry point group."""

from esrc_memory.publisher import MemoryPublisher, Subscriber
from esrc_memory.store import MemoryEventStore, MemoryOutbox, MemoryRelayLock

__all__ = [
    "MemoryEventStore",
    "MemoryOutbox",
    "MemoryPublisher",
    "MemoryRelayLock",
    "Subscriber",
]
