"""The event store's async face: :class:`AsyncEventStore`, the same contract as
:class:`~esrc_core.store.EventStore` with every method a coroutine, and
:class:`BridgedEventStore`, which gives any sync store that face without a second copy
of its logic (see :mod:`esrc_core.bridge`).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from esrc_core.async_outbox import (
    AsyncEventStoreOutbox,
    AsyncHasOutbox,
    AsyncHasRelayLock,
    AsyncRelayLock,
    async_outbox,
    async_relay_lock,
    sync_outbox,
    sync_relay_lock,
)
from esrc_core.atomic_appends import AtomicAppends, StreamAppend
from esrc_core.bridge import GREENLETS, Bridge
from esrc_core.capabilities import Capability, offered, require
from esrc_core.closing import AsyncCloseable
from esrc_core.errors import StoreClosedError
from esrc_core.events import RawEvent, RawSnapshot
from esrc_core.ids import AggregateId
from esrc_core.locks import HasRelayLock, RelayLock
from esrc_core.relay import EventStoreOutbox, HasOutbox
from esrc_core.retention import DeletesStreams
from esrc_core.store import EventStore, StreamingStore, check_page_size

__all__ = [
    "AsyncAtomicAppends",
    "AsyncDeletesStreams",
    "AsyncEventStore",
    "AsyncStreamingStore",
    "Bridged",
    "BridgedEventStore",
    "sync_face",
]

T = TypeVar("T")


@runtime_checkable
class AsyncEventStore(AsyncCloseable, Protocol):
    """:class:`~esrc_core.store.EventStore`'s contract, every method a coroutine.

    The same guarantees and errors as the sync protocol, and:

    - Safe to call from many tasks of one event loop at once; not from several loops.
    - Cancellation: a task cancelled during an append leaves the whole append or none
      of it stored (as with a lost connection, only a read tells which), and the store
      stays usable.
    - ``close()`` is a coroutine too and may be called twice; any other method called
      after it raises :class:`StoreClosedError`. ``async with store:`` closes it.
    """

    async def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """:meth:`EventStore.add_aggregate <esrc_core.store.EventStore.add_aggregate>`."""
        ...

    async def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        """:meth:`EventStore.append_events <esrc_core.store.EventStore.append_events>`."""
        ...

    async def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        """:meth:`EventStore.events <esrc_core.store.EventStore.events>`."""
        ...

    async def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        """:meth:`EventStore.contains_aggregate
        <esrc_core.store.EventStore.contains_aggregate>`."""
        ...

    async def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        """:meth:`EventStore.add_snapshot <esrc_core.store.EventStore.add_snapshot>`."""
        ...

    async def latest_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId
    ) -> RawSnapshot | None:
        """:meth:`EventStore.latest_snapshot <esrc_core.store.EventStore.latest_snapshot>`."""
        ...

    async def close(self) -> None:
        """Release connections; calling it twice is harmless."""
        ...


@runtime_checkable
class AsyncStreamingStore(Protocol):
    """:class:`~esrc_core.store.StreamingStore`'s contract on an async store: the
    methods are coroutines that read the first page (so a missing stream raises
    :class:`~esrc_core.errors.AggregateNotFound` when awaited) and return async
    iterators."""

    async def iter_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int = 0,
        *,
        page_size: int | None = None,
    ) -> AsyncIterator[RawEvent]:
        """:meth:`StreamingStore.iter_events
        <esrc_core.store.StreamingStore.iter_events>`."""
        ...

    async def load_stream(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        *,
        snapshot: bool = True,
        page_size: int | None = None,
    ) -> tuple[RawSnapshot | None, AsyncIterator[RawEvent]]:
        """:meth:`StreamingStore.load_stream
        <esrc_core.store.StreamingStore.load_stream>`."""
        ...


@runtime_checkable
class AsyncAtomicAppends(Protocol):
    """:class:`~esrc_core.atomic_appends.AtomicAppends`'s contract on an async store
    (capability ``units-of-work``): the same guarantees, the method a coroutine. A
    task cancelled during it leaves every part stored or none."""

    async def append_streams(self, appends: Sequence[StreamAppend]) -> None:
        """:meth:`AtomicAppends.append_streams
        <esrc_core.atomic_appends.AtomicAppends.append_streams>`."""
        ...


@runtime_checkable
class AsyncDeletesStreams(Protocol):
    """:class:`~esrc_core.retention.DeletesStreams`'s contract on an async store
    (capability ``delete-streams``), the methods coroutines."""

    async def delete_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> None:
        """:meth:`DeletesStreams.delete_stream
        <esrc_core.retention.DeletesStreams.delete_stream>`."""
        ...

    async def truncate_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> int:
        """:meth:`DeletesStreams.truncate_stream
        <esrc_core.retention.DeletesStreams.truncate_stream>`."""
        ...


@runtime_checkable
class Bridged(Protocol):
    """An async object that is a sync one run through a :class:`~esrc_core.bridge.Bridge`:
    the async repository and relay run their sync logic on :attr:`sync_store` inside
    :attr:`bridge`, in one greenlet per call, instead of going through the async face
    method by method."""

    @property
    def bridge(self) -> Bridge:
        """The bridge the sync store's I/O waits through."""
        ...

    @property
    def sync_store(self) -> EventStore:
        """The sync store; its methods may be called only inside :attr:`bridge`'s
        ``run``."""
        ...

    @property
    def closed(self) -> bool:
        """Whether the async object was closed (then nothing may run on
        :attr:`sync_store`)."""
        ...


class _Guard:
    """Raises :class:`StoreClosedError` once closed."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.closed = False

    def check(self, doing: str) -> None:
        if self.closed:
            raise StoreClosedError(f"{doing}: {self.what} is closed")


_CHUNK = 128
"""How many events an async iterator over a bridged store's stream takes per hop into
its bridge."""


async def _chunks(bridge: Bridge, events: Iterator[RawEvent]) -> AsyncIterator[RawEvent]:
    take = itertools.islice
    while True:
        chunk = await bridge.run(lambda: list(take(events, _CHUNK)))
        if not chunk:
            return
        for event in chunk:
            yield event


class BridgedEventStore(AsyncEventStore):
    """An :class:`AsyncEventStore` (and :class:`AsyncStreamingStore` when the sync
    store streams) that runs a sync store's methods through ``bridge``: one copy of
    the logic, async I/O where the sync store's driver waits through the bridge.

    A sync store whose methods block (a sync driver) would block the event loop; a
    backend wraps only stores whose I/O waits through ``bridge`` (or that do no I/O,
    as the in-memory store). ``what`` names the store in errors. Closing it closes the
    sync store.
    """

    def __init__(
        self, sync_store: EventStore, bridge: Bridge = GREENLETS, *, what: str = ""
    ) -> None:
        self._sync = sync_store
        self._bridge = bridge
        self._guard = _Guard(what or f"the store {sync_store!r}")
        self._streaming = offered(sync_store, Capability.STREAMING, StreamingStore)

    def __repr__(self) -> str:
        return f"BridgedEventStore({self._sync!r})"

    @property
    def bridge(self) -> Bridge:
        """The bridge the sync store's I/O waits through."""
        return self._bridge

    @property
    def sync_store(self) -> EventStore:
        """The sync store this one runs."""
        return self._sync

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._guard.closed

    def _call(self, doing: str, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        self._guard.check(doing)
        return self._bridge.run(fn, *args)

    async def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """Create a stream; see :class:`AsyncEventStore`."""
        await self._call(
            f"add {aggregate_type} {aggregate_id!r}",
            self._sync.add_aggregate,
            aggregate_type,
            aggregate_id,
            events,
        )

    async def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        """Append to a stream at ``from_version``; see :class:`AsyncEventStore`."""
        await self._call(
            f"append to {aggregate_type} {aggregate_id!r}",
            self._sync.append_events,
            aggregate_type,
            aggregate_id,
            from_version,
            events,
        )

    async def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        """The stream's events after ``from_version``; see :class:`AsyncEventStore`."""
        return await self._call(
            f"read {aggregate_type} {aggregate_id!r}",
            self._sync.events,
            aggregate_type,
            aggregate_id,
            from_version,
        )

    async def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        """Whether the stream exists."""
        return await self._call(
            f"check {aggregate_type} {aggregate_id!r}",
            self._sync.contains_aggregate,
            aggregate_type,
            aggregate_id,
        )

    async def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        """Store a snapshot; see :class:`AsyncEventStore`."""
        await self._call(
            f"snapshot {aggregate_type} {aggregate_id!r}",
            self._sync.add_snapshot,
            aggregate_type,
            aggregate_id,
            snapshot,
        )

    async def latest_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId
    ) -> RawSnapshot | None:
        """The latest snapshot, or ``None``."""
        return await self._call(
            f"read the snapshot of {aggregate_type} {aggregate_id!r}",
            self._sync.latest_snapshot,
            aggregate_type,
            aggregate_id,
        )

    async def iter_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int = 0,
        *,
        page_size: int | None = None,
    ) -> AsyncIterator[RawEvent]:
        """The stream's events after ``from_version``, page by page; see
        :class:`AsyncStreamingStore`. On a sync store without ``streaming``, one
        read."""
        doing = f"read {aggregate_type} {aggregate_id!r}"
        check_page_size(page_size, doing=doing)
        if self._streaming is None:
            events = await self.events(aggregate_type, aggregate_id, from_version)
            return _chunks(self._bridge, iter(events))
        streaming = self._streaming
        iterator = await self._call(
            doing,
            lambda: streaming.iter_events(
                aggregate_type, aggregate_id, from_version, page_size=page_size
            ),
        )
        return _chunks(self._bridge, iterator)

    async def load_stream(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        *,
        snapshot: bool = True,
        page_size: int | None = None,
    ) -> tuple[RawSnapshot | None, AsyncIterator[RawEvent]]:
        """The latest snapshot and the events after it; see :class:`AsyncStreamingStore`."""
        doing = f"load {aggregate_type} {aggregate_id!r}"
        check_page_size(page_size, doing=doing)
        streaming = self._streaming
        if streaming is None:
            found = await self.latest_snapshot(aggregate_type, aggregate_id) if snapshot else None
            events = await self.events(aggregate_type, aggregate_id, found.version if found else 0)
            return found, _chunks(self._bridge, iter(events))
        found, iterator = await self._call(
            doing,
            lambda: streaming.load_stream(
                aggregate_type, aggregate_id, snapshot=snapshot, page_size=page_size
            ),
        )
        return found, _chunks(self._bridge, iterator)

    async def append_streams(self, appends: Sequence[StreamAppend]) -> None:
        """Append to several streams atomically; see :class:`AsyncAtomicAppends`.
        Raises :class:`~esrc_core.errors.NotSupportedError` when the sync store does
        not offer the ``units-of-work`` capability."""
        doing = "append to several streams"
        atomic = require(self._sync, Capability.UNITS_OF_WORK, doing, AtomicAppends)
        await self._call(doing, atomic.append_streams, appends)

    async def delete_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> None:
        """Delete a stream for good; see :class:`AsyncDeletesStreams`. Raises
        :class:`~esrc_core.errors.NotSupportedError` when the sync store does not
        offer the ``delete-streams`` capability."""
        doing = f"delete {aggregate_type} {aggregate_id!r}"
        deleting = require(self._sync, Capability.DELETE_STREAMS, doing, DeletesStreams)
        await self._call(doing, deleting.delete_stream, aggregate_type, aggregate_id)

    async def truncate_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> int:
        """Remove a stream's events before its latest snapshot; see
        :class:`AsyncDeletesStreams` (and ``NotSupportedError`` as for
        :meth:`delete_stream`)."""
        doing = f"truncate {aggregate_type} {aggregate_id!r}"
        deleting = require(self._sync, Capability.DELETE_STREAMS, doing, DeletesStreams)
        return await self._call(doing, deleting.truncate_stream, aggregate_type, aggregate_id)

    def outbox(self, name: str = "default") -> AsyncEventStoreOutbox:
        """The async face (:class:`~esrc_core.async_outbox.AsyncEventStoreOutbox`) of
        the sync store's outbox ``name``, with read-ahead and wait when that has them.
        Raises :class:`~esrc_core.errors.NotSupportedError` when the sync store keeps
        no outbox, :class:`StoreClosedError` after :meth:`close`."""
        doing = f"open outbox {name!r}"
        self._guard.check(doing)
        has = require(self._sync, Capability.OUTBOX, doing, HasOutbox)
        return async_outbox(has.outbox(name), self._call)

    def relay_lock(self, name: str) -> AsyncRelayLock:
        """The async face (:class:`~esrc_core.async_outbox.AsyncRelayLock`) of the sync
        store's lock on relay ``name``. Raises
        :class:`~esrc_core.errors.NotSupportedError` when the sync store has no relay
        locks, :class:`StoreClosedError` after :meth:`close`."""
        doing = f"open relay lock {name!r}"
        self._guard.check(doing)
        has = require(self._sync, Capability.RELAY_LOCK, doing, HasRelayLock)
        return async_relay_lock(has.relay_lock(name), self._call)

    async def close(self) -> None:
        """Close the sync store (through the bridge); a second call does nothing."""
        if self._guard.closed:
            return
        self._guard.closed = True
        await self._bridge.run(self._sync.close)


class _Waiting(EventStore):
    """A sync :class:`~esrc_core.store.EventStore` face of a native async store, for
    sync logic run inside a bridge: each call waits for the async method."""

    def __init__(self, store: AsyncEventStore, bridge: Bridge) -> None:
        self._store = store
        self._wait = bridge.wait

    def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        self._wait(self._store.add_aggregate(aggregate_type, aggregate_id, events))

    def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        self._wait(self._store.append_events(aggregate_type, aggregate_id, from_version, events))

    def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        return self._wait(self._store.events(aggregate_type, aggregate_id, from_version))

    def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        return self._wait(self._store.contains_aggregate(aggregate_type, aggregate_id))

    def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        self._wait(self._store.add_snapshot(aggregate_type, aggregate_id, snapshot))

    def latest_snapshot(self, aggregate_type: str, aggregate_id: AggregateId) -> RawSnapshot | None:
        return self._wait(self._store.latest_snapshot(aggregate_type, aggregate_id))

    def close(self) -> None:
        self._wait(self._store.close())


class _WaitingAtomic(_Waiting):
    """A :class:`_Waiting` face of a native async store that appends to several
    streams atomically (:class:`AsyncAtomicAppends`)."""

    def append_streams(self, appends: Sequence[StreamAppend]) -> None:
        store = cast(AsyncAtomicAppends, self._store)
        self._wait(store.append_streams(appends))


class _WaitingOutbox(_Waiting):
    """A :class:`_Waiting` face of a native async store with outboxes."""

    def outbox(self, name: str = "default") -> EventStoreOutbox:
        store = cast(AsyncHasOutbox, self._store)
        return sync_outbox(store.outbox(name), self._wait)


class _WaitingRelay(_WaitingOutbox):
    """A :class:`_Waiting` face of a native async store with outboxes and locks."""

    def relay_lock(self, name: str) -> RelayLock:
        store = cast(AsyncHasRelayLock, self._store)
        return sync_relay_lock(store.relay_lock(name), self._wait)


def sync_face(store: AsyncEventStore | Bridged) -> tuple[EventStore, Bridge]:
    """The sync store to run esrc's sync logic on for the async ``store``, and the
    bridge to run it in: a :class:`Bridged` store's own, else a face whose every call
    waits for ``store``'s coroutine (run in :data:`~esrc_core.bridge.GREENLETS`)."""
    if isinstance(store, Bridged):
        return store.sync_store, store.bridge
    if not isinstance(store, AsyncEventStore):
        raise TypeError(
            f"expected an AsyncEventStore, got {type(store).__name__}; a sync EventStore "
            "goes to Repository, or to BridgedEventStore when its I/O waits through a bridge"
        )
    face: type[_Waiting] = _Waiting
    if isinstance(store, AsyncHasOutbox):
        face = _WaitingRelay if isinstance(store, AsyncHasRelayLock) else _WaitingOutbox
    if isinstance(store, AsyncAtomicAppends):
        face = (
            _WaitingAtomic
            if face is _Waiting
            else type(f"{face.__name__}Atomic", (face, _WaitingAtomic), {})
        )
    return face(store, GREENLETS), GREENLETS
