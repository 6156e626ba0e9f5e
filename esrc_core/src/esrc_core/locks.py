"""Relay locks: at most one active relay per name on a store, across processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["HasRelayLock", "InspectsRelayLocks", "RelayLock"]


@runtime_checkable
class RelayLock(Protocol):
    """The exclusive right to run relay ``name`` against one store.

    A lock is held by one process (and one ``RelayLock`` object) at a time. It must be
    released when its holder dies (a crashed process never blocks the next relay
    forever): database locks tied to a session, or file locks the kernel drops, do
    this. Not thread-safe: one thread drives one lock.
    """

    @property
    def name(self) -> str:
        """The relay name this lock guards."""
        ...

    def acquire(self, timeout: float = 0.0) -> bool:
        """Try to take the lock for up to ``timeout`` seconds (0: try once).

        Returns whether it is now held. Taking a lock this object already holds
        returns ``True``. Raises :class:`~esrc_core.errors.StoreUnavailableError` when
        the store cannot be reached.
        """
        ...

    def held(self) -> bool:
        """Whether the lock is still held; ``False`` after :meth:`release` or once it
        was lost (the session holding it died). A relay checks this before each batch."""
        ...

    def release(self) -> None:
        """Give the lock up. Releasing a lock not held is harmless."""
        ...


@runtime_checkable
class HasRelayLock(Protocol):
    """A store capability: it can lock a relay name across processes."""

    def relay_lock(self, name: str) -> RelayLock:
        """A new, not yet acquired lock for relay ``name``."""
        ...


@runtime_checkable
class InspectsRelayLocks(Protocol):
    """Optional, next to :class:`HasRelayLock`: telling who holds relay locks without
    taking them (the web console's relays page)."""

    def relay_lock_holders(self, names: Sequence[str]) -> dict[str, str | None]:
        """For each of ``names`` the store can tell about: a description of the lock's
        holder (a server session, this process), or ``None`` when the lock is free.
        Names it cannot tell about without taking their lock are left out. Takes no
        lock and writes nothing."""
        ...
