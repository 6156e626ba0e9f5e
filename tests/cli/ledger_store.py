"""The ledger event store: ``esrc new-backend ledger``'s skeleton, filled in by
following the backend author guide (docs/plugins.md).

tests/cli/test_new_backend.py copies this file over the generated
``src/esrc_ledger/store.py`` and runs the generated project's tests. It keeps
everything in this process, under one condition variable, and offers the capabilities
``snapshots``, ``outbox``, ``wait``, ``read-ahead``, ``threads``, ``relay-lock`` and
``inspect``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from esrc_core.store import INT64_MIN, check_int

from esrc_core import (
    AggregateAlreadyExists,
    AggregateId,
    AggregateNotFound,
    AggregateRequiresEvents,
    EventStore,
    OptimisticConcurrencyError,
    RawEvent,
    RawSnapshot,
    RecordedEvent,
    RelayEvent,
    RelayProgress,
    SnapshotVersionError,
    StoreClosedError,
    StreamInfo,
    check_events,
    check_id,
    encode_id,
    mask_url,
)

__all__ = ["LedgerEventStore", "LedgerOutbox", "LedgerRelayLock"]


@dataclass
class _Stream:
    aggregate_id: AggregateId
    positions: list[int] = field(default_factory=list)
    snapshots: dict[int, RawSnapshot] = field(default_factory=dict)


class LedgerEventStore(EventStore):
    """Streams, snapshots, the outbox log and relay progress, in this process."""

    def __init__(self, url: str) -> None:
        """Open a new, empty store; ``url`` is kept masked, for messages."""
        self.url = mask_url(url)
        self._changed = threading.Condition()
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._log: list[RelayEvent] = []  # the outbox order; position n is _log[n - 1]
        self._recorded_at: list[dt.datetime] = []
        self._marks: dict[str, int] = {}
        self._holders: dict[str, LedgerRelayLock] = {}
        self._closed = False

    def _key(self, aggregate_type: str, aggregate_id: AggregateId, doing: str) -> tuple[str, str]:
        if self._closed:
            raise StoreClosedError(f"{doing}: the store {self.url} is closed")
        check_id(aggregate_id, doing=doing)
        return aggregate_type, encode_id(aggregate_id)

    def _write(self, key: tuple[str, str], stream: _Stream, events: Sequence[RawEvent]) -> None:
        now = dt.datetime.now(dt.UTC)
        for event in events:
            position = len(self._log) + 1
            version = len(stream.positions) + 1
            self._log.append(RelayEvent(key[0], stream.aggregate_id, version, position, event))
            self._recorded_at.append(now)
            stream.positions.append(position)
        self._changed.notify_all()

    def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """Create a new stream holding ``events`` at versions 1..n."""
        doing = f"add {aggregate_type} {aggregate_id!r}"
        key = self._key(aggregate_type, aggregate_id, doing)
        check_events(events, doing=doing)
        if not events:
            raise AggregateRequiresEvents(f"{doing}: a new stream needs at least one event")
        with self._changed:
            if key in self._streams:
                raise AggregateAlreadyExists(f"{doing}: the stream exists")
            stream = self._streams[key] = _Stream(aggregate_id)
            self._write(key, stream, events)

    def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        """Append ``events`` to a stream that is at ``from_version``."""
        doing = f"append to {aggregate_type} {aggregate_id!r} at version {from_version}"
        key = self._key(aggregate_type, aggregate_id, doing)
        check_int(from_version, "expected version", doing=doing)
        check_events(events, doing=doing)
        if not events:
            raise AggregateRequiresEvents(f"{doing}: nothing to append")
        check_int(from_version + len(events), "the version after the append", doing=doing)
        with self._changed:
            stream = self._streams.get(key)
            if stream is None:
                raise OptimisticConcurrencyError(f"{doing}: the stream does not exist")
            if len(stream.positions) != from_version:
                raise OptimisticConcurrencyError(
                    f"{doing}: the stream is at version {len(stream.positions)}"
                )
            self._write(key, stream, events)

    def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        """The stream's events with version greater than ``from_version``, in order."""
        return [r.event for r in self.recorded_events(aggregate_type, aggregate_id, from_version)]

    def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        """Whether the stream exists."""
        key = self._key(aggregate_type, aggregate_id, f"look for {aggregate_type} {aggregate_id!r}")
        with self._changed:
            return key in self._streams

    def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        """Store a snapshot; a second one at the same version replaces the first."""
        doing = f"snapshot {aggregate_type} {aggregate_id!r} at version {snapshot.version}"
        key = self._key(aggregate_type, aggregate_id, doing)
        with self._changed:
            stream = self._streams.get(key)
            if stream is None:
                raise AggregateNotFound(f"{doing}: the stream does not exist")
            if not 1 <= snapshot.version <= len(stream.positions):
                raise SnapshotVersionError(
                    f"{doing}: the stream is at version {len(stream.positions)}"
                )
            stream.snapshots[snapshot.version] = snapshot

    def latest_snapshot(self, aggregate_type: str, aggregate_id: AggregateId) -> RawSnapshot | None:
        """The snapshot with the highest version, or ``None``."""
        key = self._key(aggregate_type, aggregate_id, f"read the snapshot of {aggregate_id!r}")
        with self._changed:
            stream = self._streams.get(key)
            if stream is None or not stream.snapshots:
                return None
            return stream.snapshots[max(stream.snapshots)]

    def close(self) -> None:
        """Close the store; a second call does nothing."""
        self._closed = True

    # outbox, read-ahead and wait

    def outbox(self, name: str = "default") -> LedgerOutbox:
        """The outbox of relay ``name``."""
        return LedgerOutbox(self, name)

    def _unpublished(self, after: int, limit: int, doing: str) -> list[RelayEvent]:
        check_int(limit, "limit", doing=doing, minimum=1)
        if self._closed:
            raise StoreClosedError(f"{doing}: the store {self.url} is closed")
        with self._changed:
            return self._log[after : after + limit]

    # relay-lock

    def relay_lock(self, name: str) -> LedgerRelayLock:
        """A new, not yet acquired lock for relay ``name``."""
        return LedgerRelayLock(self, name)

    # inspect

    def streams(
        self, aggregate_type: str | None = None, *, limit: int | None = None
    ) -> list[StreamInfo]:
        """Streams, optionally of one type, by type then by encoded id."""
        if limit is not None:
            check_int(limit, "limit", doing="list streams", minimum=1)
        with self._changed:
            keys = sorted(k for k in self._streams if aggregate_type in (None, k[0]))
            found = []
            for key in keys[:limit]:
                stream = self._streams[key]
                last = self._recorded_at[stream.positions[-1] - 1]
                found.append(StreamInfo(key[0], stream.aggregate_id, len(stream.positions), last))
            return found

    def recorded_events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RecordedEvent]:
        """The stream's events after ``from_version``, with positions and times."""
        doing = f"read {aggregate_type} {aggregate_id!r} from version {from_version}"
        key = self._key(aggregate_type, aggregate_id, doing)
        check_int(from_version, "from_version", doing=doing, minimum=INT64_MIN)
        with self._changed:
            stream = self._streams.get(key)
            if stream is None:
                raise AggregateNotFound(f"{doing}: the stream does not exist")
            return [
                RecordedEvent(
                    aggregate_type,
                    stream.aggregate_id,
                    version,
                    position,
                    self._log[position - 1].event,
                    self._recorded_at[position - 1],
                )
                for version, position in enumerate(stream.positions, start=1)
                if version > from_version
            ]

    def relays(self) -> list[RelayProgress]:
        """Every relay name that has marked progress, by name."""
        with self._changed:
            return [
                RelayProgress(
                    name,
                    mark,
                    len(self._log) - mark,
                    self._recorded_at[mark] if mark < len(self._log) else None,
                )
                for name, mark in sorted(self._marks.items())
            ]

    def copy_relay(self, source: str, target: str) -> None:
        """Give relay ``target`` the progress of ``source`` (or none)."""
        with self._changed:
            if source in self._marks:
                self._marks[target] = self._marks[source]
            else:
                self._marks.pop(target, None)

    def forget_relay(self, name: str) -> None:
        """Delete relay ``name``'s progress."""
        with self._changed:
            self._marks.pop(name, None)


class LedgerOutbox:
    """Relay ``name``'s view: the log after its mark."""

    def __init__(self, store: LedgerEventStore, name: str) -> None:
        """The outbox of relay ``name`` on ``store``."""
        self._store = store
        self._name = name

    @property
    def name(self) -> str:
        """The relay name."""
        return self._name

    def unpublished_events(self, limit: int) -> list[RelayEvent]:
        """Up to ``limit`` events after the relay's mark."""
        mark = self._store._marks.get(self._name, 0)
        return self._store._unpublished(mark, limit, f"read outbox {self._name!r}")

    def unpublished_events_after(self, event: RelayEvent, limit: int) -> list[RelayEvent]:
        """Up to ``limit`` events after ``event``, whatever the mark says."""
        doing = f"read outbox {self._name!r} after position {event.position}"
        log = self._store._log
        if not 1 <= event.position <= len(log) or log[event.position - 1] != event:
            raise ValueError(f"{doing}: this outbox never handed that event out")
        return self._store._unpublished(event.position, limit, doing)

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        """Move the mark to the last of ``events``; never back."""
        if not events:
            return
        with self._store._changed:
            marks = self._store._marks
            marks[self._name] = max(marks.get(self._name, 0), *(e.position for e in events))

    def wait_for_events(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until events wait for this relay."""
        with self._store._changed:
            return self._store._changed.wait_for(
                lambda: len(self._store._log) > self._store._marks.get(self._name, 0), timeout
            )


class LedgerRelayLock:
    """Relay ``name``'s lock on one store (this process is the only one using it)."""

    def __init__(self, store: LedgerEventStore, name: str) -> None:
        """A lock on relay ``name`` of ``store``, not yet acquired."""
        self._store = store
        self._name = name

    @property
    def name(self) -> str:
        """The relay name."""
        return self._name

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds for its holder."""
        deadline = time.monotonic() + timeout
        holders = self._store._holders
        with self._store._changed:
            while holders.get(self._name, self) is not self:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._store._changed.wait(remaining)
            holders[self._name] = self
            return True

    def held(self) -> bool:
        """Whether this object holds the lock."""
        with self._store._changed:
            return self._store._holders.get(self._name) is self

    def release(self) -> None:
        """Give the lock up, if held."""
        with self._store._changed:
            if self._store._holders.get(self._name) is self:
                del self._store._holders[self._name]
                self._store._changed.notify_all()
