"""The toy store: every event is one record in a single flat list, scanned linearly.

Deliberately simple and slow, and shaped unlike ``esrc-memory`` (which keeps a dict
of streams): a stream is whatever records carry its (type, id), its version is the
number of them, and the outbox is the list itself, read past a relay's last mark.
Relay locks are held within the process, like the data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from esrc_core.store import INT64_MAX, INT64_MIN, check_int

from esrc_core import (
    AggregateAlreadyExists,
    AggregateId,
    AggregateNotFound,
    AggregateRequiresEvents,
    EventStore,
    OptimisticConcurrencyError,
    RawEvent,
    RawSnapshot,
    RelayEvent,
    SnapshotVersionError,
    StoreClosedError,
    check_events,
    check_id,
    encode_id,
)

__all__ = ["ToyEventStore", "ToyOutbox", "ToyRelayLock", "forget"]


@dataclass(frozen=True)
class _Record:
    position: int
    aggregate_type: str
    key: str
    aggregate_id: AggregateId
    version: int
    event: RawEvent


@dataclass(frozen=True)
class _SnapshotRecord:
    aggregate_type: str
    key: str
    snapshot: RawSnapshot


@dataclass
class _Data:
    """Everything one toy store holds: three append-only lists, the holders of its
    relay locks by relay name, and a lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    records: list[_Record] = field(default_factory=list)
    snapshots: list[_SnapshotRecord] = field(default_factory=list)
    marks: list[tuple[str, int]] = field(default_factory=list)
    relay_holders: dict[str, object] = field(default_factory=dict)


_named: dict[str, _Data] = {}
_named_lock = threading.Lock()


def _data_named(name: str) -> _Data:
    with _named_lock:
        return _named.setdefault(name, _Data())


def forget(name: str | None) -> None:
    """Drop the data kept under ``name`` (a :attr:`ToyEventStore.name`); tests use it
    to clean up. ``None`` (a private store) is a no-op."""
    if name is None:
        return
    with _named_lock:
        _named.pop(name, None)


def _check_type(aggregate_type: object, doing: str) -> str:
    if not isinstance(aggregate_type, str) or not aggregate_type:
        raise TypeError(f"{doing}: aggregate type must be a non-empty str")
    return aggregate_type


class ToyEventStore(EventStore):
    """An :class:`esrc_core.EventStore` with an outbox, kept in this process.

    ``ToyEventStore()`` is private; ``ToyEventStore(name="x")`` keeps its data under
    that name until the process ends (or :func:`forget`), so closing and reopening it
    finds the data again. One lock serialises every call, so the store is thread-safe
    and the outbox order is the commit order.
    """

    def __init__(self, *, name: str | None = None, url: str = "toy://") -> None:
        self.name = name
        """The name the data is kept under, or None for a private store."""
        self.url = url
        """The URL the store was opened with; opening it again finds the same data."""
        self._data = _data_named(name) if name else _Data()
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _check_open(self, doing: str) -> None:
        if self._closed:
            raise StoreClosedError(f"{doing}: the store is closed")

    # Validation, writing and keying snapshots are separate steps so that the
    # deliberately broken variants in esrc_toy.broken can each break exactly one of them.

    def _validate(self, events: Sequence[RawEvent], doing: str) -> None:
        check_events(events, doing=doing)

    def _check_expected(self, current: int, expected: int, doing: str) -> None:
        if current != expected:
            raise OptimisticConcurrencyError(f"{doing}: the stream is at version {current}")

    def _write(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        records = self._data.records
        key = encode_id(aggregate_id)
        version = self._version(aggregate_type, key)
        for event in events:
            version += 1
            records.append(
                _Record(
                    len(records) + 1,
                    aggregate_type,
                    key,
                    aggregate_id,
                    version,
                    RawEvent(event.name, event.data, dict(event.metadata), event.schema_version),
                )
            )

    def _snapshot_key(self, aggregate_id: AggregateId) -> str:
        return encode_id(aggregate_id)

    def _version(self, aggregate_type: str, key: str) -> int:
        return sum(
            1 for r in self._data.records if r.key == key and r.aggregate_type == aggregate_type
        )

    def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """See :meth:`esrc_core.EventStore.add_aggregate`."""
        doing = f"toy: add {aggregate_type} {aggregate_id!r}"
        self._check_open(doing)
        _check_type(aggregate_type, doing)
        key = encode_id(check_id(aggregate_id, doing=doing))
        self._validate(events, doing)
        if not events:
            raise AggregateRequiresEvents(f"{doing}: no events")
        with self._data.lock:
            if self._version(aggregate_type, key):
                raise AggregateAlreadyExists(f"{doing}: it exists")
            self._write(aggregate_type, aggregate_id, events)

    def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        """See :meth:`esrc_core.EventStore.append_events`."""
        doing = f"toy: append to {aggregate_type} {aggregate_id!r} at version {from_version}"
        self._check_open(doing)
        _check_type(aggregate_type, doing)
        key = encode_id(check_id(aggregate_id, doing=doing))
        self._validate(events, doing)
        if not events:
            raise AggregateRequiresEvents(f"{doing}: no events")
        check_int(from_version, "from_version", doing=doing, maximum=INT64_MAX - len(events))
        with self._data.lock:
            current = self._version(aggregate_type, key)
            if not current:
                raise OptimisticConcurrencyError(f"{doing}: the aggregate does not exist")
            self._check_expected(current, from_version, doing)
            self._write(aggregate_type, aggregate_id, events)

    def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        """See :meth:`esrc_core.EventStore.events`."""
        doing = f"toy: read {aggregate_type} {aggregate_id!r}"
        self._check_open(doing)
        check_int(from_version, "from_version", doing=doing, minimum=INT64_MIN)
        _check_type(aggregate_type, doing)
        key = encode_id(check_id(aggregate_id, doing=doing))
        with self._data.lock:
            found = [
                r.event
                for r in self._data.records
                if r.key == key and r.aggregate_type == aggregate_type
            ]
        if not found:
            raise AggregateNotFound(f"{doing}: it does not exist")
        return found[max(from_version, 0) :]

    def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        """See :meth:`esrc_core.EventStore.contains_aggregate`."""
        doing = f"toy: check {aggregate_type} {aggregate_id!r}"
        self._check_open(doing)
        _check_type(aggregate_type, doing)
        key = encode_id(check_id(aggregate_id, doing=doing))
        with self._data.lock:
            return self._version(aggregate_type, key) > 0

    def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        """See :meth:`esrc_core.EventStore.add_snapshot`."""
        doing = f"toy: snapshot {aggregate_type} {aggregate_id!r}"
        self._check_open(doing)
        _check_type(aggregate_type, doing)
        key = encode_id(check_id(aggregate_id, doing=doing))
        if not isinstance(snapshot, RawSnapshot) or not isinstance(snapshot.data, bytes):
            raise TypeError(f"{doing}: want a RawSnapshot with bytes data")
        with self._data.lock:
            version = self._version(aggregate_type, key)
            if not version:
                raise AggregateNotFound(f"{doing}: it does not exist")
            if not 1 <= snapshot.version <= version:
                raise SnapshotVersionError(
                    f"{doing}: version {snapshot.version} is outside 1..{version}"
                )
            self._data.snapshots.append(
                _SnapshotRecord(aggregate_type, self._snapshot_key(aggregate_id), snapshot)
            )

    def latest_snapshot(self, aggregate_type: str, aggregate_id: AggregateId) -> RawSnapshot | None:
        """See :meth:`esrc_core.EventStore.latest_snapshot`."""
        doing = f"toy: read snapshot of {aggregate_type} {aggregate_id!r}"
        self._check_open(doing)
        _check_type(aggregate_type, doing)
        key = self._snapshot_key(check_id(aggregate_id, doing=doing))
        latest: RawSnapshot | None = None
        with self._data.lock:
            for record in self._data.snapshots:
                if record.key != key or record.aggregate_type != aggregate_type:
                    continue
                # ">=": a later snapshot at the same version replaces the earlier one.
                if latest is None or record.snapshot.version >= latest.version:
                    latest = record.snapshot
        return latest

    def outbox(self, name: str = "default") -> ToyOutbox:
        """The outbox of relay ``name``."""
        self._check_open(f"toy: open outbox {name!r}")
        if not isinstance(name, str) or not name:
            raise ValueError("toy: a relay name must be a non-empty str")
        return ToyOutbox(self._data, name)

    def relay_lock(self, name: str) -> ToyRelayLock:
        """A lock on relay ``name``; see :class:`esrc_core.HasRelayLock`. It is held
        within this process (which is where a toy store's data lives)."""
        self._check_open(f"toy: lock relay {name!r}")
        return ToyRelayLock(self._data, name)

    def close(self) -> None:
        """Nothing to release; a named store's data stays for the next open. Calling
        any other method afterwards raises StoreClosedError."""
        self._closed = True


class ToyOutbox:
    """Relay ``name``'s view of a toy store: the records after its highest mark."""

    def __init__(self, data: _Data, name: str) -> None:
        self._data = data
        self._name = name

    @property
    def name(self) -> str:
        """The relay name."""
        return self._name

    def _progress(self) -> int:
        return max((p for relay, p in self._data.marks if relay == self._name), default=0)

    def _pending(self) -> list[_Record]:
        progress = self._progress()
        return [r for r in self._data.records if r.position > progress]

    def unpublished_events(self, limit: int) -> list[RelayEvent]:
        """See :meth:`esrc_core.EventStoreOutbox.unpublished_events`."""
        check_int(limit, "limit", doing=f"toy: read outbox {self._name!r}", minimum=1)
        with self._data.lock:
            pending = self._pending()[:limit]
        return [
            RelayEvent(r.aggregate_type, r.aggregate_id, r.version, r.position, r.event)
            for r in pending
        ]

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        """See :meth:`esrc_core.EventStoreOutbox.mark_events_as_published`."""
        if not events:
            return
        last = max(e.position for e in events)
        with self._data.lock:
            if last > len(self._data.records):
                raise ValueError(f"toy: relay {self._name}: position {last} was never stored")
            self._data.marks.append((self._name, last))


class ToyRelayLock:
    """A :class:`esrc_core.RelayLock` on relay ``name`` of one toy store: at most one
    lock object holds a name at a time, until it releases it (or the process ends)."""

    def __init__(self, data: _Data, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("toy: a relay name must be a non-empty str")
        self._data = data
        self._name = name

    @property
    def name(self) -> str:
        """The relay name."""
        return self._name

    def _try(self) -> bool:
        with self._data.lock:
            return self._data.relay_holders.setdefault(self._name, self) is self

    def acquire(self, timeout: float = 0.0) -> bool:
        """See :meth:`esrc_core.RelayLock.acquire`: polls every 20 ms until ``timeout``."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while not self._try():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.02, left))
        return True

    def held(self) -> bool:
        """See :meth:`esrc_core.RelayLock.held`."""
        with self._data.lock:
            return self._data.relay_holders.get(self._name) is self

    def release(self) -> None:
        """See :meth:`esrc_core.RelayLock.release`."""
        with self._data.lock:
            if self._data.relay_holders.get(self._name) is self:
                del self._data.relay_holders[self._name]
