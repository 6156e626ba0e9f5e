"""The relay's capabilities on the async API: an async store's outboxes and relay locks
(:class:`AsyncHasOutbox`, :class:`AsyncHasRelayLock` and what they return), and the
faces that turn one kind into the other without a second copy of either:

- :func:`async_outbox` and :func:`async_relay_lock` give a sync store's outbox and lock
  (run through a bridge) the async face;
- :func:`sync_outbox` and :func:`sync_relay_lock` give an async store's outbox and lock
  a sync face whose every call waits for the coroutine (through a bridge's ``wait``, or
  a test's loop), so that esrc's sync relay logic runs on a native async store too.

Each face offers ``unpublished_events_after`` (read-ahead) and ``wait_for_events``
(wait) exactly when the outbox it wraps does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeAlias, TypeVar, cast, runtime_checkable

from esrc_core.capabilities import Capability, supports
from esrc_core.locks import RelayLock
from esrc_core.relay import EventStoreOutbox, ReadAheadOutbox, RelayEvent, WaitingOutbox

__all__ = [
    "AsyncEventStoreOutbox",
    "AsyncHasOutbox",
    "AsyncHasRelayLock",
    "AsyncReadAheadOutbox",
    "AsyncRelayLock",
    "AsyncWaitingOutbox",
    "async_outbox",
    "async_relay_lock",
    "sync_outbox",
    "sync_relay_lock",
]

T = TypeVar("T")

Call: TypeAlias = Callable[..., Awaitable[Any]]
"""How an async face runs a sync method: ``call(doing, fn, *args)`` runs ``fn(*args)``
through the store's bridge (raising :class:`~esrc_core.errors.StoreClosedError`, which
names ``doing``, once the store is closed)."""

Wait: TypeAlias = Callable[[Awaitable[Any]], Any]
"""How a sync face waits for a coroutine: a bridge's ``wait``, or a loop's ``run``."""

_LOCK_POLL = 0.05
"""Seconds between tries when an async relay lock waits for its holder."""


@runtime_checkable
class AsyncEventStoreOutbox(Protocol):
    """:class:`~esrc_core.relay.EventStoreOutbox`'s contract with coroutines: one
    relay's view of the store's unpublished events, in the store's one total order."""

    @property
    def name(self) -> str:
        """The relay name whose progress this outbox tracks."""
        ...

    async def unpublished_events(self, limit: int) -> list[RelayEvent]:
        """Up to ``limit`` events after the checkpoint, in order."""
        ...

    async def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        """Move the checkpoint past ``events`` (a leading part of what was handed out)."""
        ...


@runtime_checkable
class AsyncReadAheadOutbox(Protocol):
    """The ``read-ahead`` capability of an async outbox."""

    async def unpublished_events_after(self, event: RelayEvent, limit: int) -> list[RelayEvent]:
        """Up to ``limit`` events after ``event`` (handed out, not yet marked)."""
        ...


@runtime_checkable
class AsyncWaitingOutbox(Protocol):
    """The ``wait`` capability of an async outbox: wait on the loop until new events
    may be there, instead of polling."""

    async def wait_for_events(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; ``True`` when there may be events (a hint),
        ``False`` on timeout."""
        ...


@runtime_checkable
class AsyncHasOutbox(Protocol):
    """An async store that keeps an outbox per relay name."""

    def outbox(self, name: str = "default") -> AsyncEventStoreOutbox:
        """The outbox of relay ``name`` (making it does no I/O)."""
        ...


@runtime_checkable
class AsyncRelayLock(Protocol):
    """:class:`~esrc_core.locks.RelayLock`'s contract with coroutines: at most one
    holder per relay name across every process on the store."""

    @property
    def name(self) -> str:
        """The relay name this lock guards."""
        ...

    async def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lock, waiting (on the loop) up to ``timeout`` seconds; whether it
        is held now."""
        ...

    async def held(self) -> bool:
        """Whether this lock is still held (a lock lost with its session is not)."""
        ...

    async def release(self) -> None:
        """Give the lock up; harmless when not held."""
        ...


@runtime_checkable
class AsyncHasRelayLock(Protocol):
    """An async store that gives out relay locks."""

    def relay_lock(self, name: str) -> AsyncRelayLock:
        """The lock of relay ``name`` (making it does no I/O)."""
        ...


# --- the async face of a sync outbox and lock -----------------------------------------


class _AsyncOutbox:
    """The async face of a sync outbox, run through a bridge."""

    def __init__(self, outbox: EventStoreOutbox, call: Call) -> None:
        self._outbox = outbox
        self._call = call

    def __repr__(self) -> str:
        return f"async_outbox({self._outbox!r})"

    @property
    def name(self) -> str:
        """The relay name whose progress this outbox tracks."""
        return self._outbox.name

    @property
    def sync_outbox(self) -> EventStoreOutbox:
        """The sync outbox this face runs."""
        return self._outbox

    def _doing(self, what: str) -> str:
        return f"{what} of outbox {self._outbox.name!r}"

    async def unpublished_events(self, limit: int) -> list[RelayEvent]:
        """See :class:`AsyncEventStoreOutbox`."""
        found: list[RelayEvent] = await self._call(
            self._doing("read"), self._outbox.unpublished_events, limit
        )
        return found

    async def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        """See :class:`AsyncEventStoreOutbox`."""
        await self._call(self._doing("mark"), self._outbox.mark_events_as_published, events)


class _AsyncReadAhead(_AsyncOutbox):
    async def unpublished_events_after(self, event: RelayEvent, limit: int) -> list[RelayEvent]:
        """See :class:`AsyncReadAheadOutbox`."""
        outbox = cast(ReadAheadOutbox, self._outbox)
        found: list[RelayEvent] = await self._call(
            self._doing("read ahead"), outbox.unpublished_events_after, event, limit
        )
        return found


class _AsyncWaiting(_AsyncOutbox):
    async def wait_for_events(self, timeout: float) -> bool:
        """See :class:`AsyncWaitingOutbox`."""
        outbox = cast(WaitingOutbox, self._outbox)
        return bool(await self._call(self._doing("wait"), outbox.wait_for_events, timeout))


class _AsyncReadAheadWaiting(_AsyncReadAhead, _AsyncWaiting):
    pass


def async_outbox(outbox: EventStoreOutbox, call: Call) -> AsyncEventStoreOutbox:
    """The async face of the sync ``outbox``, each call run by ``call`` (see
    :data:`Call`); read-ahead and wait when ``outbox`` has them."""
    read_ahead = supports(outbox, Capability.READ_AHEAD)
    waiting = supports(outbox, Capability.WAIT)
    face = (
        (_AsyncReadAheadWaiting if waiting else _AsyncReadAhead)
        if read_ahead
        else (_AsyncWaiting if waiting else _AsyncOutbox)
    )
    return face(outbox, call)


class _AsyncLock:
    """The async face of a sync relay lock, run through a bridge."""

    def __init__(self, lock: RelayLock, call: Call) -> None:
        self._lock = lock
        self._call = call

    def __repr__(self) -> str:
        return f"async_relay_lock({self._lock!r})"

    @property
    def name(self) -> str:
        """The relay name this lock guards."""
        return self._lock.name

    async def acquire(self, timeout: float = 0.0) -> bool:
        """See :class:`AsyncRelayLock`. Tries every 50 ms, waiting on the loop in
        between (never inside the sync lock, whose own wait may block)."""
        doing = f"take relay lock {self._lock.name!r}"
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if await self._call(doing, self._lock.acquire, 0.0):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(_LOCK_POLL, remaining))

    async def held(self) -> bool:
        """See :class:`AsyncRelayLock`."""
        return bool(await self._call(f"check relay lock {self._lock.name!r}", self._lock.held))

    async def release(self) -> None:
        """See :class:`AsyncRelayLock`."""
        await self._call(f"release relay lock {self._lock.name!r}", self._lock.release)


def async_relay_lock(lock: RelayLock, call: Call) -> AsyncRelayLock:
    """The async face of the sync relay ``lock``, each call run by ``call``."""
    return _AsyncLock(lock, call)


# --- the sync face of an async outbox and lock ------------------------------------------


class _SyncOutbox:
    """The sync face of an async outbox: each call waits for the coroutine."""

    def __init__(self, outbox: AsyncEventStoreOutbox, wait: Wait) -> None:
        self._outbox = outbox
        self._wait = wait

    def __repr__(self) -> str:
        return f"sync_outbox({self._outbox!r})"

    @property
    def name(self) -> str:
        """The relay name whose progress this outbox tracks."""
        return self._outbox.name

    @property
    def async_outbox(self) -> AsyncEventStoreOutbox:
        """The async outbox this face waits for."""
        return self._outbox

    def unpublished_events(self, limit: int) -> list[RelayEvent]:
        """See :class:`~esrc_core.relay.EventStoreOutbox`."""
        found: list[RelayEvent] = self._wait(self._outbox.unpublished_events(limit))
        return found

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        """See :class:`~esrc_core.relay.EventStoreOutbox`."""
        self._wait(self._outbox.mark_events_as_published(events))


class _SyncReadAhead(_SyncOutbox):
    def unpublished_events_after(self, event: RelayEvent, limit: int) -> list[RelayEvent]:
        """See :class:`~esrc_core.relay.ReadAheadOutbox`."""
        outbox = cast(AsyncReadAheadOutbox, self._outbox)
        found: list[RelayEvent] = self._wait(outbox.unpublished_events_after(event, limit))
        return found


class _SyncWaiting(_SyncOutbox):
    def wait_for_events(self, timeout: float) -> bool:
        """See :class:`~esrc_core.relay.WaitingOutbox`."""
        outbox = cast(AsyncWaitingOutbox, self._outbox)
        return bool(self._wait(outbox.wait_for_events(timeout)))


class _SyncReadAheadWaiting(_SyncReadAhead, _SyncWaiting):
    pass


def sync_outbox(outbox: AsyncEventStoreOutbox, wait: Wait) -> EventStoreOutbox:
    """The sync face of the async ``outbox``, each call waited for by ``wait`` (see
    :data:`Wait`); read-ahead and wait when ``outbox`` has them."""
    read_ahead = isinstance(outbox, AsyncReadAheadOutbox)
    waiting = isinstance(outbox, AsyncWaitingOutbox)
    face = (
        (_SyncReadAheadWaiting if waiting else _SyncReadAhead)
        if read_ahead
        else (_SyncWaiting if waiting else _SyncOutbox)
    )
    return face(outbox, wait)


class _SyncLock:
    """The sync face of an async relay lock: each call waits for the coroutine."""

    def __init__(self, lock: AsyncRelayLock, wait: Wait) -> None:
        self._lock = lock
        self._wait = wait

    def __repr__(self) -> str:
        return f"sync_relay_lock({self._lock!r})"

    @property
    def name(self) -> str:
        """The relay name this lock guards."""
        return self._lock.name

    def acquire(self, timeout: float = 0.0) -> bool:
        """See :class:`~esrc_core.locks.RelayLock`."""
        return bool(self._wait(self._lock.acquire(timeout)))

    def held(self) -> bool:
        """See :class:`~esrc_core.locks.RelayLock`."""
        return bool(self._wait(self._lock.held()))

    def release(self) -> None:
        """See :class:`~esrc_core.locks.RelayLock`."""
        self._wait(self._lock.release())


def sync_relay_lock(lock: AsyncRelayLock, wait: Wait) -> RelayLock:
    """The sync face of the async relay ``lock``, each call waited for by ``wait``."""
    return _SyncLock(lock, wait)
