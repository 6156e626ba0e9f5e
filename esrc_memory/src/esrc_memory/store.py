"""The in-memory event store and its outbox."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from esrc_core.atomic_appends import StreamAppend, check_appends
from esrc_core.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    AggregateRequiresEvents,
    EventsTruncatedError,
    OptimisticConcurrencyError,
    SnapshotVersionError,
    StoreClosedError,
    StreamDeletedError,
)
from esrc_core.events import RawEvent, RawSnapshot, check_events
from esrc_core.ids import AggregateId, check_aggregate_type, check_id, encode_id
from esrc_core.inspection import RecordedEvent, RelayProgress, StreamInfo
from esrc_core.relay import RelayEvent
from esrc_core.store import INT64_MAX, INT64_MIN, EventStore, check_int, check_page_size

__all__ = ["MemoryEventStore", "MemoryOutbox", "MemoryRelayLock"]


@dataclass
class _Stream:
    aggregate_id: AggregateId
    events: list[RawEvent] = field(default_factory=list)
    """The events kept: versions ``removed + 1`` to :attr:`version`."""
    snapshots: dict[int, RawSnapshot] = field(default_factory=dict)
    removed: int = 0
    """How many of the first events retention removed."""
    deleted: bool = False
    """Whether the stream was deleted (a tombstone: no events, no snapshots)."""

    @property
    def version(self) -> int:
        return self.removed + len(self.events)

    def since(self, after: int, doing: str, end: int | None = None) -> list[RawEvent]:
        """The events with versions in ``after + 1 .. end`` (the stream's version when
        ``None``); raises :class:`EventsTruncatedError` when some were removed."""
        stop = self.version if end is None else end
        after = max(after, 0)
        if after < self.removed and stop > after:
            raise EventsTruncatedError(
                f"{doing}: events 1..{self.removed} were removed by retention; read after "
                f"version {self.removed} (from the latest snapshot)",
                truncated_to=self.removed,
            )
        return self.events[after - self.removed : stop - self.removed]


@dataclass
class _State:
    """Everything one store holds; named stores share one ``_State``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    streams: dict[tuple[str, str], _Stream] = field(default_factory=dict)
    log: list[RelayEvent | None] = field(default_factory=list)
    """Every event in commit order (position n at index n - 1); ``None`` where one was
    removed (a deleted or truncated stream's)."""
    recorded_at: list[dt.datetime] = field(default_factory=list)
    checkpoints: dict[str, int] = field(default_factory=dict)
    relay_locks: dict[str, object] = field(default_factory=dict)


_named: weakref.WeakValueDictionary[str, _State] = weakref.WeakValueDictionary()
_named_lock = threading.Lock()


def _shared_state(name: str) -> _State:
    with _named_lock:
        state = _named.get(name)
        if state is None:
            state = _State()
            _named[name] = state
        return state


class MemoryEventStore(EventStore):
    """An :class:`~esrc_core.store.EventStore` that keeps everything in this process.

    ``MemoryEventStore()`` is private to its owner; ``MemoryEventStore("name")`` shares
    its data with every other store of that name in the process, for as long as one
    of them is referenced. All operations take one lock, so they are atomic and
    thread-safe, and the outbox order is the commit order. After :meth:`close` (or
    the end of a ``with`` block) its methods raise
    :class:`~esrc_core.errors.StoreClosedError`; other stores of the same name keep
    working.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self._state = _shared_state(name) if name else _State()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _check_open(self, doing: str) -> None:
        if self._closed:
            raise StoreClosedError(f"{doing}: the store {self!r} is closed")

    def __repr__(self) -> str:
        return f"MemoryEventStore({self.name!r})" if self.name else "MemoryEventStore()"

    def _key(self, aggregate_type: str, aggregate_id: AggregateId, doing: str) -> tuple[str, str]:
        self._check_open(doing)
        check_aggregate_type(aggregate_type, doing=doing)
        return aggregate_type, encode_id(check_id(aggregate_id, doing=doing))

    def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """See :meth:`esrc_core.store.EventStore.add_aggregate`."""
        doing = f"add {aggregate_type} {aggregate_id!r}"
        key = self._key(aggregate_type, aggregate_id, doing)
        check_events(events, doing=doing)
        if not events:
            raise AggregateRequiresEvents(f"{doing}: an aggregate needs at least one event")
        with self._state.lock:
            found = self._state.streams.get(key)
            if found is not None:
                _refuse_deleted(found, doing)
                raise AggregateAlreadyExists(f"{doing}: the aggregate already exists")
            stream = _Stream(aggregate_id)
            self._state.streams[key] = stream
            self._write(aggregate_type, stream, events)

    def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        """See :meth:`esrc_core.store.EventStore.append_events`."""
        doing = f"append to {aggregate_type} {aggregate_id!r} at version {from_version}"
        key = self._key(aggregate_type, aggregate_id, doing)
        check_events(events, doing=doing)
        if not events:
            raise AggregateRequiresEvents(f"{doing}: no events to append")
        check_int(from_version, "from_version", doing=doing, maximum=INT64_MAX - len(events))
        with self._state.lock:
            stream = self._state.streams.get(key)
            if stream is None:
                raise OptimisticConcurrencyError(f"{doing}: the aggregate does not exist")
            _refuse_deleted(stream, doing)
            if stream.version != from_version:
                raise OptimisticConcurrencyError(f"{doing}: stream is at version {stream.version}")
            self._write(aggregate_type, stream, events)

    def append_streams(self, appends: Sequence[StreamAppend]) -> None:
        """See :meth:`esrc_core.atomic_appends.AtomicAppends.append_streams`: every
        part is checked under the store's lock before the first is written, so a unit
        is stored whole or not at all, and its events follow each other in the outbox
        in the order of the parts."""
        doing = "append to several streams"
        self._check_open(doing)
        parts = check_appends(appends, doing=doing)
        keys = [self._key(p.aggregate_type, p.aggregate_id, p.describe()) for p in parts]
        with self._state.lock:
            streams = self._state.streams
            for part, key in zip(parts, keys, strict=True):
                stream = streams.get(key)
                if stream is not None:
                    _refuse_deleted(stream, part.describe())
                if part.creates:
                    if stream is not None:
                        raise AggregateAlreadyExists(
                            f"{part.describe()}: the aggregate already exists"
                        )
                elif stream is None:
                    raise OptimisticConcurrencyError(
                        f"{part.describe()}: the aggregate does not exist"
                    )
                elif stream.version != part.expected_version:
                    raise OptimisticConcurrencyError(
                        f"{part.describe()}: stream is at version {stream.version}"
                    )
            for part, key in zip(parts, keys, strict=True):
                stream = streams.get(key)
                if stream is None:
                    stream = streams[key] = _Stream(part.aggregate_id)
                self._write(part.aggregate_type, stream, part.events)

    def _write(self, aggregate_type: str, stream: _Stream, events: Sequence[RawEvent]) -> None:
        log = self._state.log
        now = dt.datetime.now(dt.UTC)
        self._state.recorded_at.extend(now for _ in events)
        for event in events:
            stored = RawEvent(event.name, event.data, dict(event.metadata), event.schema_version)
            stream.events.append(stored)
            log.append(
                RelayEvent(
                    aggregate_type, stream.aggregate_id, stream.version, len(log) + 1, stored
                )
            )

    def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        """See :meth:`esrc_core.store.EventStore.events`."""
        doing = f"read {aggregate_type} {aggregate_id!r}"
        check_int(from_version, "from_version", doing=doing, minimum=INT64_MIN)
        key = self._key(aggregate_type, aggregate_id, doing)
        with self._state.lock:
            stream = self._live(key, doing)
            return stream.since(from_version, doing)

    def iter_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int = 0,
        *,
        page_size: int | None = None,
    ) -> Iterator[RawEvent]:
        """See :meth:`esrc_core.store.StreamingStore.iter_events`: takes the store's
        lock once per page."""
        doing = f"read {aggregate_type} {aggregate_id!r}"
        check_int(from_version, "from_version", doing=doing, minimum=INT64_MIN)
        _, pages = self._paged(doing, aggregate_type, aggregate_id, from_version, page_size)
        return pages

    def load_stream(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        *,
        snapshot: bool = True,
        page_size: int | None = None,
    ) -> tuple[RawSnapshot | None, Iterator[RawEvent]]:
        """See :meth:`esrc_core.store.StreamingStore.load_stream`."""
        doing = f"load {aggregate_type} {aggregate_id!r}"
        return self._paged(doing, aggregate_type, aggregate_id, None if snapshot else 0, page_size)

    def _paged(
        self,
        doing: str,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int | None,
        page_size: int | None,
    ) -> tuple[RawSnapshot | None, Iterator[RawEvent]]:
        """The pages of a stream after ``from_version`` (``None``: after its latest
        snapshot, returned too), up to its version now."""
        size = check_page_size(page_size, doing=doing)
        key = self._key(aggregate_type, aggregate_id, doing)
        with self._state.lock:
            stream = self._live(key, doing)
            end = stream.version
            latest = None
            if from_version is None and stream.snapshots:
                latest = stream.snapshots[max(stream.snapshots)]
            if from_version is None:
                from_version = latest.version if latest is not None else 0
            first = stream.since(from_version, doing, min(max(from_version, 0) + size, end))
        return latest, self._pages(
            stream, max(from_version, 0), end, size, first=first, doing=doing
        )

    def _pages(
        self,
        stream: _Stream,
        start: int,
        end: int,
        size: int,
        *,
        first: list[RawEvent],
        doing: str,
    ) -> Iterator[RawEvent]:
        """The stream's events at versions ``start + 1 .. end``: ``first`` (the first
        page, read when the iterator was made), then pages of ``size`` copied out under
        the lock."""
        position = start + len(first)
        yield from first
        while position < end:
            with self._state.lock:
                page = stream.since(position, doing, min(position + size, end))
            position += len(page)
            yield from page

    def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        """See :meth:`esrc_core.store.EventStore.contains_aggregate`."""
        key = self._key(aggregate_type, aggregate_id, f"check {aggregate_type} {aggregate_id!r}")
        with self._state.lock:
            stream = self._state.streams.get(key)
            return stream is not None and not stream.deleted

    def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        """See :meth:`esrc_core.store.EventStore.add_snapshot`."""
        doing = f"add snapshot of {aggregate_type} {aggregate_id!r}"
        key = self._key(aggregate_type, aggregate_id, doing)
        if not isinstance(snapshot, RawSnapshot) or not isinstance(snapshot.data, bytes):
            raise TypeError(f"{doing}: expected a RawSnapshot with bytes data")
        if isinstance(snapshot.version, bool) or not isinstance(snapshot.version, int):
            raise TypeError(f"{doing}: the snapshot version must be an int")
        with self._state.lock:
            stream = self._live(key, doing)
            if not 1 <= snapshot.version <= stream.version:
                raise SnapshotVersionError(
                    f"{doing}: version {snapshot.version} is outside 1..{stream.version}"
                )
            stream.snapshots[snapshot.version] = snapshot

    def latest_snapshot(self, aggregate_type: str, aggregate_id: AggregateId) -> RawSnapshot | None:
        """See :meth:`esrc_core.store.EventStore.latest_snapshot`."""
        key = self._key(aggregate_type, aggregate_id, f"read snapshot of {aggregate_type}")
        with self._state.lock:
            stream = self._state.streams.get(key)
            if stream is None or not stream.snapshots:
                return None
            return stream.snapshots[max(stream.snapshots)]

    def outbox(self, name: str = "default") -> MemoryOutbox:
        """The outbox of relay ``name``; see :class:`esrc_core.relay.HasOutbox`."""
        self._check_open(f"open outbox {name!r}")
        if not isinstance(name, str) or not name:
            raise ValueError("a relay name must be a non-empty str")
        return MemoryOutbox(self._state, name)

    def relay_lock(self, name: str) -> MemoryRelayLock:
        """A lock on relay ``name``; see :class:`esrc_core.locks.HasRelayLock`. It is
        shared by every store of the same name in this process."""
        self._check_open(f"open relay lock {name!r}")
        return MemoryRelayLock(self._state, name)

    def relay_lock_holders(self, names: Sequence[str]) -> dict[str, str | None]:
        """See :meth:`esrc_core.locks.InspectsRelayLocks.relay_lock_holders`: every
        lock of a memory store lives in this process."""
        self._check_open("list relay lock holders")
        with self._state.lock:
            return {n: "this process" if n in self._state.relay_locks else None for n in names}

    def streams(
        self, aggregate_type: str | None = None, *, limit: int | None = None
    ) -> list[StreamInfo]:
        """See :meth:`esrc_core.inspection.Inspectable.streams`."""
        self._check_open("list streams")
        with self._state.lock:
            keys = sorted(
                k
                for k, stream in self._state.streams.items()
                if aggregate_type in (None, k[0]) and not stream.deleted
            )
            if limit is not None:
                keys = keys[: check_int(limit, "limit", doing="list streams")]
            last = {
                (e.aggregate_type, encode_id(e.aggregate_id)): at
                for e, at in zip(self._state.log, self._state.recorded_at, strict=True)
                if e is not None
            }
            return [
                StreamInfo(
                    key[0],
                    self._state.streams[key].aggregate_id,
                    self._state.streams[key].version,
                    last.get(key),
                )
                for key in keys
            ]

    def recorded_events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RecordedEvent]:
        """See :meth:`esrc_core.inspection.Inspectable.recorded_events`."""
        doing = f"read {aggregate_type} {aggregate_id!r}"
        check_int(from_version, "from_version", doing=doing, minimum=INT64_MIN)
        key = self._key(aggregate_type, aggregate_id, doing)
        with self._state.lock:
            self._live(key, doing)
            return [
                RecordedEvent(e.aggregate_type, e.aggregate_id, e.version, e.position, e.event, at)
                for e, at in zip(self._state.log, self._state.recorded_at, strict=True)
                if e is not None
                and e.aggregate_type == aggregate_type
                and encode_id(e.aggregate_id) == key[1]
                and e.version > from_version
            ]

    def relays(self) -> list[RelayProgress]:
        """See :meth:`esrc_core.inspection.Inspectable.relays`."""
        self._check_open("list relays")
        with self._state.lock:
            log, at = self._state.log, self._state.recorded_at
            progress = []
            for name, done in sorted(self._state.checkpoints.items()):
                pending = [n for n in range(done, len(log)) if log[n] is not None]
                published = sum(1 for e in log[:done] if e is not None)
                oldest = at[pending[0]] if pending else None
                progress.append(RelayProgress(name, published, len(pending), oldest))
            return progress

    def copy_relay(self, source: str, target: str) -> None:
        """See :meth:`esrc_core.inspection.Inspectable.copy_relay`."""
        self._check_open(f"copy relay {source!r} to {target!r}")
        with self._state.lock:
            if source in self._state.checkpoints:
                self._state.checkpoints[target] = self._state.checkpoints[source]
            else:
                self._state.checkpoints.pop(target, None)

    def forget_relay(self, name: str) -> None:
        """See :meth:`esrc_core.inspection.Inspectable.forget_relay`."""
        self._check_open(f"forget relay {name!r}")
        with self._state.lock:
            self._state.checkpoints.pop(name, None)

    def _live(self, key: tuple[str, str], doing: str) -> _Stream:
        """The stream ``key`` (under the lock); raises AggregateNotFound when it does
        not exist or was deleted."""
        stream = self._state.streams.get(key)
        if stream is None or stream.deleted:
            gone = "was deleted" if stream is not None else "does not exist"
            raise AggregateNotFound(f"{doing}: the aggregate {gone}")
        return stream

    def delete_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> None:
        """See :meth:`esrc_core.retention.DeletesStreams.delete_stream`: the events
        and snapshots go, and their places in the outbox's log are left empty (relays
        not past them never get them; positions of other events do not move)."""
        doing = f"delete {aggregate_type} {aggregate_id!r}"
        key = self._key(aggregate_type, aggregate_id, doing)
        with self._state.lock:
            stream = self._state.streams.get(key)
            if stream is None:
                raise AggregateNotFound(f"{doing}: the aggregate does not exist")
            if stream.deleted:
                return
            self._forget(aggregate_type, key)
            stream.removed, stream.events, stream.snapshots = 0, [], {}
            stream.deleted = True

    def truncate_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> int:
        """See :meth:`esrc_core.retention.DeletesStreams.truncate_stream`: the events
        up to the latest snapshot that every relay with a checkpoint passed."""
        doing = f"truncate {aggregate_type} {aggregate_id!r}"
        key = self._key(aggregate_type, aggregate_id, doing)
        with self._state.lock:
            stream = self._live(key, doing)
            if not stream.snapshots:
                return 0
            upto = max(stream.snapshots)
            log, marks = self._state.log, self._state.checkpoints.values()
            passed = min(marks, default=len(log))
            removable = [
                n
                for n, e in enumerate(log[:passed])
                if e is not None
                and e.aggregate_type == aggregate_type
                and encode_id(e.aggregate_id) == key[1]
                and stream.removed < e.version <= upto
            ]
            for n in removable:
                log[n] = None
            count = len(removable)
            stream.events = stream.events[count:]
            stream.removed += count
            return count

    def _forget(self, aggregate_type: str, key: tuple[str, str]) -> None:
        """Empty the log's places of stream ``key``'s events (under the lock)."""
        log = self._state.log
        for n, e in enumerate(log):
            if (
                e is not None
                and e.aggregate_type == aggregate_type
                and encode_id(e.aggregate_id) == key[1]
            ):
                log[n] = None

    def close(self) -> None:
        """Mark the store closed (there is nothing to release); named data stays while
        another store of the name lives. Calling it twice is harmless."""
        self._closed = True


class MemoryRelayLock:
    """A :class:`esrc_core.locks.RelayLock` within one process."""

    def __init__(self, state: _State, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("a relay name must be a non-empty str")
        self._state = state
        self._name = name

    @property
    def name(self) -> str:
        """The relay name."""
        return self._name

    def acquire(self, timeout: float = 0.0) -> bool:
        """See :meth:`esrc_core.locks.RelayLock.acquire`."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            with self._state.lock:
                owner = self._state.relay_locks.setdefault(self._name, self)
            if owner is self:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0.0)))

    def held(self) -> bool:
        """See :meth:`esrc_core.locks.RelayLock.held`."""
        with self._state.lock:
            return self._state.relay_locks.get(self._name) is self

    def release(self) -> None:
        """See :meth:`esrc_core.locks.RelayLock.release`."""
        with self._state.lock:
            if self._state.relay_locks.get(self._name) is self:
                del self._state.relay_locks[self._name]


class MemoryOutbox:
    """A relay's outbox over a :class:`MemoryEventStore`: commit order, one checkpoint
    per relay name."""

    def __init__(self, state: _State, name: str) -> None:
        self._state = state
        self._name = name

    @property
    def name(self) -> str:
        """The relay name."""
        return self._name

    def unpublished_events(self, limit: int) -> list[RelayEvent]:
        """See :meth:`esrc_core.relay.EventStoreOutbox.unpublished_events`."""
        check_int(limit, "limit", doing=f"read outbox {self._name!r}", minimum=1)
        with self._state.lock:
            start = self._state.checkpoints.get(self._name, 0)
            return _live_events(self._state.log, start, limit)

    def unpublished_events_after(self, event: RelayEvent, limit: int) -> list[RelayEvent]:
        """See :meth:`esrc_core.relay.ReadAheadOutbox.unpublished_events_after`: the log
        is in commit order and positions number it from 1, so the events after ``event``
        start at index ``event.position``."""
        check_int(limit, "limit", doing=f"read outbox {self._name!r}", minimum=1)
        start = event.position
        with self._state.lock:
            log = self._state.log
            if not 0 < start <= len(log) or log[start - 1] not in (event, None):
                raise ValueError(
                    f"relay {self._name}: the event at position {start} was never handed "
                    "out by this store's outbox"
                )
            return _live_events(log, start, limit)

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        """See :meth:`esrc_core.relay.EventStoreOutbox.mark_events_as_published`."""
        if not events:
            return
        last = max(e.position for e in events)
        with self._state.lock:
            if last > len(self._state.log):
                raise ValueError(f"relay {self._name}: position {last} was never stored")
            current = self._state.checkpoints.get(self._name, 0)
            self._state.checkpoints[self._name] = max(current, last)


def _refuse_deleted(stream: _Stream, doing: str) -> None:
    """Raise StreamDeletedError when ``stream`` was deleted."""
    if stream.deleted:
        raise StreamDeletedError(f"{doing}: the stream was deleted; it takes no more events")


def _live_events(log: list[RelayEvent | None], start: int, limit: int) -> list[RelayEvent]:
    """Up to ``limit`` events of ``log`` from index ``start`` on, passing over the
    places of removed ones."""
    found: list[RelayEvent] = []
    for event in itertools.islice(log, start, None):
        if event is not None:
            found.append(event)
            if len(found) == limit:
                break
    return found
