"""Relay locks on SQL databases: at most one active relay per name, across processes,
released by the database when the holder's session (or process) dies.

How each database holds one is its dialect's business
(:meth:`~esrc_sqlalchemy.dialects.base.SqlDialect.relay_lock`): PostgreSQL a session
advisory lock, MariaDB/MySQL a named lock, a SQLite file the write lock of a small
lock database beside it, ``sqlite://`` a lock within the process. Each held lock keeps
one connection of its own, outside the store's pool.
"""

from __future__ import annotations

import time

from esrc_sqlalchemy._executor import StoreExecutor
from esrc_sqlalchemy.dialects.base import RelayLockHolder

__all__ = ["SqlRelayLock"]

_POLL = 0.05


class SqlRelayLock:
    """A :class:`esrc_core.locks.RelayLock` for relay ``name`` of a
    :class:`~esrc_sqlalchemy.store.SqlEventStore` (see the module docstring for how
    each database holds it). Not thread-safe: one thread drives one lock.

    Made by :meth:`SqlEventStore.relay_lock
    <esrc_sqlalchemy.store.SqlEventStore.relay_lock>`, with the store's executor.
    """

    def __init__(self, executor: StoreExecutor, name: str, *, owner: str) -> None:
        self._executor = executor
        self._name = name
        self._owner = owner
        self.holder: RelayLockHolder = executor.dialect.relay_lock(name)
        """The database's way of holding this lock (internal; for
        :mod:`esrc_sqlalchemy.testing`)."""

    def __repr__(self) -> str:
        return f"SqlRelayLock({self._owner}, {self._name!r})"

    @property
    def name(self) -> str:
        """The relay name this lock guards."""
        return self._name

    def acquire(self, timeout: float = 0.0) -> bool:
        """See :meth:`esrc_core.locks.RelayLock.acquire`: try every 50 ms for up to
        ``timeout`` seconds."""
        if self.holder.engaged and self.held():
            return True
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if self._try():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._executor.sleep(min(_POLL, remaining))

    def held(self) -> bool:
        """See :meth:`esrc_core.locks.RelayLock.held`: asks the database (one query),
        so a lock lost with its session reads as not held."""
        return self.holder.held()

    def release(self) -> None:
        """See :meth:`esrc_core.locks.RelayLock.release`: ends the lock's session."""
        self.holder.release()

    def _try(self) -> bool:
        try:
            return self.holder.try_acquire()
        except Exception as err:
            failure = self._executor.driver_failure(
                err, f"lock relay {self._name!r} of {self._executor.url}"
            )
            if failure is None:
                raise
            raise failure from err
