"""Toy stores that are BROKEN ON PURPOSE, each in exactly one way.

They exist to prove that the esrc testkit catches real bugs: the testkit's own tests
run the acceptance suite against each of them and expect named tests to fail. Never
use them for anything else.

- :class:`NoVersionCheckStore` (``toy-noversioncheck://``): ``append_events`` ignores
  the expected version, so two writers that read version N both append.
- :class:`UnorderedOutboxStore` (``toy-unordered://``): the outbox hands out events
  newest first, and marking the newest one skips everything older.
- :class:`NonAtomicStore` (``toy-nonatomic://``): a batch is checked and written one
  event at a time, so a malformed third event leaves the first two stored.
- :class:`PageGapStore` (``toy-pagegap://``): reads streams in pages (the
  ``streaming`` capability), and every page after the first starts one event late.
- :class:`StaysOpenStore` (``toy-staysopen://``): ``close()`` does nothing, so the
  store keeps answering after a ``with`` block ended.
- :class:`OffByOneReadStore` (``toy-offbyone://``): ``events(from_version=n)`` starts
  at version n instead of after it.
- :class:`StreamOrderOutboxStore` (``toy-streamorder://``): the outbox lists events
  stream by stream (each in version order) rather than in commit order.
- :class:`SnapshotKeyStore` (``toy-snapshotkey://``): snapshots are keyed by
  ``str(id)``, so ``42`` and ``"42"`` share theirs.
- :class:`OverMarkingStore` (``toy-overmark://``): marking a batch marks everything
  the outbox object handed out, not just the events given.
- :class:`FirstSnapshotWinsStore` (``toy-keepsnapshot://``): a second snapshot at a
  version already snapshotted is ignored instead of replacing the first.
- :class:`SharedRelayLockStore` (``toy-sharedlock://``): acquiring a relay lock always
  succeeds, so two relays of one name run at once.
- :class:`RacyCheckThenWriteStore` (``toy-racycheck://``): an append checks the
  expected version, lets the lock go for a moment, then writes, so two writers that
  both saw version N both append (only under concurrency: threads, or tasks when its
  async face runs it through a bridge, where the moment is a wait on the loop).
- :class:`SplitUnitStore` (``toy-splitunits://``): declares ``units-of-work`` but
  stores a unit's parts one append at a time, so a conflict in a later part leaves
  the earlier parts stored.
- :class:`LeakyDeleteStore` (``toy-leakydelete://``): declares ``delete-streams``; a
  deleted stream is gone for readers, but its events stay in the outbox, so relays
  publish what was deleted.
- :class:`EagerTruncateStore` (``toy-eagertruncate://``): declares ``delete-streams``;
  truncation removes every event up to the latest snapshot, also those a relay has
  not published yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence

from esrc_core.atomic_appends import StreamAppend, check_appends
from esrc_core.bridge import GREENLETS
from esrc_core.store import check_page_size

from esrc_core import (
    AggregateId,
    AggregateNotFound,
    EventsTruncatedError,
    RawEvent,
    RawSnapshot,
    RelayEvent,
    StreamDeletedError,
    check_events,
    check_id,
    encode_id,
)
from esrc_toy.store import ToyEventStore, ToyOutbox, ToyRelayLock, _Data, _Record

__all__ = [
    "EagerTruncateStore",
    "FirstSnapshotWinsStore",
    "LeakyDeleteStore",
    "NoVersionCheckStore",
    "NonAtomicStore",
    "OffByOneReadStore",
    "OverMarkingStore",
    "PageGapStore",
    "RacyCheckThenWriteStore",
    "SharedRelayLockStore",
    "SnapshotKeyStore",
    "SplitUnitStore",
    "StaysOpenStore",
    "StreamOrderOutboxStore",
    "UnorderedOutboxStore",
]


class NoVersionCheckStore(ToyEventStore):
    """BROKEN ON PURPOSE: appends whatever the expected version (no optimistic
    concurrency control)."""

    def _check_expected(self, current: int, expected: int, doing: str) -> None:
        """Accept any expected version: the bug."""


class _NewestFirstOutbox(ToyOutbox):
    def _pending(self) -> list[_Record]:
        return list(reversed(super()._pending()))


class UnorderedOutboxStore(ToyEventStore):
    """BROKEN ON PURPOSE: its outbox returns unpublished events newest first."""

    def outbox(self, name: str = "default") -> ToyOutbox:
        """An outbox that lists the newest event first: the bug."""
        ordered = super().outbox(name)
        return _NewestFirstOutbox(self._data, ordered.name)


class NonAtomicStore(ToyEventStore):
    """BROKEN ON PURPOSE: a failed batch can leave its first events stored."""

    def _validate(self, events: Sequence[RawEvent], doing: str) -> None:
        """Check nothing up front: the bug (events are checked while being written)."""

    def _write(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        for index, event in enumerate(events):
            check_events([event], doing=f"toy-nonatomic: write event {index}")
            super()._write(aggregate_type, aggregate_id, [event])


class PageGapStore(ToyEventStore):
    """BROKEN ON PURPOSE: a :class:`~esrc_core.store.StreamingStore` whose pages after
    the first skip one event (a keyset off by one)."""

    def iter_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int = 0,
        *,
        page_size: int | None = None,
    ) -> Iterator[RawEvent]:
        """The stream in pages, each after the first starting one event late: the bug."""
        size = check_page_size(page_size, doing="toy-pagegap: read")
        stream = self.events(aggregate_type, aggregate_id)

        def pages() -> Iterator[RawEvent]:
            after = max(from_version, 0)
            while after < len(stream):
                page = stream[after : after + size]
                yield from page
                after += len(page) + 1

        return pages()

    def load_stream(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        *,
        snapshot: bool = True,
        page_size: int | None = None,
    ) -> tuple[RawSnapshot | None, Iterator[RawEvent]]:
        """The latest snapshot and :meth:`iter_events` after it."""
        found = self.latest_snapshot(aggregate_type, aggregate_id) if snapshot else None
        after = found.version if found is not None else 0
        return found, self.iter_events(aggregate_type, aggregate_id, after, page_size=page_size)


class StaysOpenStore(ToyEventStore):
    """BROKEN ON PURPOSE: ``close()`` (and so the end of a ``with`` block) leaves the
    store open."""

    def close(self) -> None:
        """Do nothing: the bug."""


class OffByOneReadStore(ToyEventStore):
    """BROKEN ON PURPOSE: ``events(..., from_version=n)`` returns version n and the
    events after it, one event too many (a ``>=`` where ``>`` belongs)."""

    def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        """The stream from version ``from_version`` on, inclusive: the bug."""
        later = super().events(aggregate_type, aggregate_id, from_version)
        if from_version < 1:
            return later
        return super().events(aggregate_type, aggregate_id, from_version - 1)


class _StreamOrderOutbox(ToyOutbox):
    def _pending(self) -> list[_Record]:
        return sorted(super()._pending(), key=lambda r: (r.aggregate_type, r.key, r.version))


class StreamOrderOutboxStore(ToyEventStore):
    """BROKEN ON PURPOSE: its outbox lists unpublished events grouped by stream (each
    stream in version order), not in commit order."""

    def outbox(self, name: str = "default") -> ToyOutbox:
        """An outbox ordered by stream, then version: the bug."""
        ordered = super().outbox(name)
        return _StreamOrderOutbox(self._data, ordered.name)


class SnapshotKeyStore(ToyEventStore):
    """BROKEN ON PURPOSE: snapshots are keyed by ``str(id)``, so the streams ``42`` and
    ``"42"`` of one type read and replace each other's snapshots."""

    def _snapshot_key(self, aggregate_id: AggregateId) -> str:
        """``str(id)``, which loses the id's type: the bug."""
        return str(aggregate_id)


class _OverMarkingOutbox(ToyOutbox):
    def __init__(self, data: _Data, name: str) -> None:
        super().__init__(data, name)
        self._handed_out = 0

    def unpublished_events(self, limit: int) -> list[RelayEvent]:
        batch = super().unpublished_events(limit)
        self._handed_out = max([self._handed_out, *(e.position for e in batch)])
        return batch

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        super().mark_events_as_published(events)
        if events:
            with self._data.lock:
                self._data.marks.append((self.name, self._handed_out))


class OverMarkingStore(ToyEventStore):
    """BROKEN ON PURPOSE: marking events as published marks everything its outbox object
    has handed out so far, so the unpublished rest of a batch is lost."""

    def outbox(self, name: str = "default") -> ToyOutbox:
        """An outbox that marks its whole last batch whatever it is given: the bug."""
        ordered = super().outbox(name)
        return _OverMarkingOutbox(self._data, ordered.name)


class FirstSnapshotWinsStore(ToyEventStore):
    """BROKEN ON PURPOSE: a snapshot at a version that already has one is lost (the
    first one stays), as an insert that ignores conflicts instead of replacing would."""

    def latest_snapshot(self, aggregate_type: str, aggregate_id: AggregateId) -> RawSnapshot | None:
        """The highest version's first snapshot rather than its last: the bug."""
        latest = super().latest_snapshot(aggregate_type, aggregate_id)
        if latest is None:
            return None
        key = self._snapshot_key(aggregate_id)
        with self._data.lock:
            return next(
                record.snapshot
                for record in self._data.snapshots
                if (record.aggregate_type, record.key) == (aggregate_type, key)
                and record.snapshot.version == latest.version
            )


class _NonExclusiveRelayLock(ToyRelayLock):
    def __init__(self, data: _Data, name: str) -> None:
        super().__init__(data, name)
        self._taken = False

    def acquire(self, timeout: float = 0.0) -> bool:
        self._taken = True
        return True

    def held(self) -> bool:
        return self._taken

    def release(self) -> None:
        self._taken = False


class SharedRelayLockStore(ToyEventStore):
    """BROKEN ON PURPOSE: its relay locks are not exclusive: ``acquire`` always succeeds,
    even while another lock holds the name."""

    def relay_lock(self, name: str) -> ToyRelayLock:
        """A lock that every caller gets at once: the bug."""
        super().relay_lock(name)
        return _NonExclusiveRelayLock(self._data, name)


class RacyCheckThenWriteStore(ToyEventStore):
    """BROKEN ON PURPOSE: a non-atomic check-then-write. An append checks the expected
    version under the store's lock, lets the lock go for a moment, and writes after
    taking it again, so two writers that both saw version N both append. One writer
    at a time sees nothing wrong."""

    def _check_expected(self, current: int, expected: int, doing: str) -> None:
        """Check, then open a window before the write: the bug."""
        super()._check_expected(current, expected, doing)
        self._data.lock.release()
        try:
            _pause(0.001)
        finally:
            self._data.lock.acquire()


def _pause(seconds: float) -> None:
    """Wait ``seconds`` as a store waiting on I/O does: on the event loop when the call
    runs through a bridge (an async face such as ``BridgedEventStore``, so other tasks
    run meanwhile), else in this thread."""
    try:
        GREENLETS.wait(asyncio.sleep(seconds))
    except RuntimeError:  # not inside a bridge's run: a thread of its own
        time.sleep(seconds)


class SplitUnitStore(ToyEventStore):
    """BROKEN ON PURPOSE: a unit of work is stored one part at a time, each part an
    atomic append of its own, so the unit as a whole is not atomic: a part that
    conflicts leaves the parts before it stored."""

    def append_streams(self, appends: Sequence[StreamAppend]) -> None:
        """Each part on its own, in order: the bug."""
        for part in check_appends(appends):
            if part.creates:
                self.add_aggregate(part.aggregate_type, part.aggregate_id, part.events)
            else:
                self.append_events(
                    part.aggregate_type, part.aggregate_id, part.expected_version, part.events
                )


class _RemovedFromOutbox(ToyOutbox):
    """An outbox that passes over the records at positions in ``gone``."""

    def __init__(self, data: _Data, name: str, gone: set[int]) -> None:
        super().__init__(data, name)
        self._gone = gone

    def _pending(self) -> list[_Record]:
        return [r for r in super()._pending() if r.position not in self._gone]


class _RetainingStore(ToyEventStore):
    """A toy store with stream deletion and truncation, kept on the store object (the
    records stay in the flat list; deleted and truncated ones are hidden from readers
    and relays). Not a bug by itself: each subclass below breaks one step."""

    def __init__(self, *, name: str | None = None, url: str = "toy://") -> None:
        super().__init__(name=name, url=url)
        self._tombstones: set[tuple[str, str]] = set()
        self._cut: dict[tuple[str, str], int] = {}
        self._gone: set[int] = set()

    def _stream(
        self, aggregate_type: str, aggregate_id: AggregateId, doing: str
    ) -> tuple[str, str]:
        return aggregate_type, encode_id(check_id(aggregate_id, doing=doing))

    def _records_of(self, key: tuple[str, str]) -> list[_Record]:
        return [r for r in self._data.records if (r.aggregate_type, r.key) == key]

    def _hide_deleted(self, key: tuple[str, str]) -> None:
        """Hide a deleted stream's records from relays."""
        self._gone.update(r.position for r in self._records_of(key))

    def _passed_by_every_relay(self) -> int:
        """The position every relay with progress has published up to."""
        progress: dict[str, int] = {}
        for relay, position in self._data.marks:
            progress[relay] = max(progress.get(relay, 0), position)
        return min(progress.values(), default=len(self._data.records))

    def delete_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> None:
        """See :meth:`esrc_core.retention.DeletesStreams.delete_stream`."""
        doing = f"toy: delete {aggregate_type} {aggregate_id!r}"
        self._check_open(doing)
        key = self._stream(aggregate_type, aggregate_id, doing)
        with self._data.lock:
            if key in self._tombstones:
                return
            if not self._records_of(key):
                raise AggregateNotFound(f"{doing}: it does not exist")
            self._tombstones.add(key)
            self._hide_deleted(key)

    def truncate_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> int:
        """See :meth:`esrc_core.retention.DeletesStreams.truncate_stream`."""
        doing = f"toy: truncate {aggregate_type} {aggregate_id!r}"
        snapshot = self.latest_snapshot(aggregate_type, aggregate_id)
        key = self._stream(aggregate_type, aggregate_id, doing)
        with self._data.lock:
            if key in self._tombstones or not self._records_of(key):
                raise AggregateNotFound(f"{doing}: it does not exist")
            if snapshot is None:
                return 0
            passed = self._truncation_limit()
            cut = self._cut.get(key, 0)
            removed = [
                r
                for r in self._records_of(key)
                if cut < r.version <= snapshot.version and r.position <= passed
            ]
            self._gone.update(r.position for r in removed)
            self._cut[key] = cut + len(removed)
            return len(removed)

    def _truncation_limit(self) -> int:
        return self._passed_by_every_relay()

    def _refuse(self, aggregate_type: str, aggregate_id: AggregateId, doing: str) -> None:
        if self._stream(aggregate_type, aggregate_id, doing) in self._tombstones:
            raise StreamDeletedError(f"{doing}: the stream was deleted")

    def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """Refused for a deleted stream, else the toy store's."""
        self._refuse(aggregate_type, aggregate_id, f"toy: add {aggregate_type} {aggregate_id!r}")
        super().add_aggregate(aggregate_type, aggregate_id, events)

    def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        """Refused for a deleted stream, else the toy store's."""
        doing = f"toy: append to {aggregate_type} {aggregate_id!r}"
        self._refuse(aggregate_type, aggregate_id, doing)
        super().append_events(aggregate_type, aggregate_id, from_version, events)

    def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        """Not found when deleted; EventsTruncatedError below the truncation."""
        doing = f"toy: read {aggregate_type} {aggregate_id!r}"
        key = self._stream(aggregate_type, aggregate_id, doing)
        if key in self._tombstones:
            raise AggregateNotFound(f"{doing}: it was deleted")
        found = super().events(aggregate_type, aggregate_id, from_version)
        cut = self._cut.get(key, 0)
        if max(from_version, 0) < cut:
            raise EventsTruncatedError(f"{doing}: events 1..{cut} were removed", truncated_to=cut)
        return found

    def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        """False for a deleted stream."""
        doing = f"toy: check {aggregate_type} {aggregate_id!r}"
        if self._stream(aggregate_type, aggregate_id, doing) in self._tombstones:
            return False
        return super().contains_aggregate(aggregate_type, aggregate_id)

    def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        """Not found for a deleted stream."""
        doing = f"toy: snapshot {aggregate_type} {aggregate_id!r}"
        if self._stream(aggregate_type, aggregate_id, doing) in self._tombstones:
            raise AggregateNotFound(f"{doing}: it was deleted")
        super().add_snapshot(aggregate_type, aggregate_id, snapshot)

    def latest_snapshot(self, aggregate_type: str, aggregate_id: AggregateId) -> RawSnapshot | None:
        """None for a deleted stream."""
        doing = f"toy: read snapshot of {aggregate_type} {aggregate_id!r}"
        if self._stream(aggregate_type, aggregate_id, doing) in self._tombstones:
            return None
        return super().latest_snapshot(aggregate_type, aggregate_id)

    def outbox(self, name: str = "default") -> ToyOutbox:
        """An outbox that passes over removed events."""
        ordered = super().outbox(name)
        return _RemovedFromOutbox(self._data, ordered.name, self._gone)


class LeakyDeleteStore(_RetainingStore):
    """BROKEN ON PURPOSE: deleting a stream hides it from readers only; its events stay
    in the outbox, and relays publish them."""

    def _hide_deleted(self, key: tuple[str, str]) -> None:
        """Leave the deleted stream's events to the relays: the bug."""


class EagerTruncateStore(_RetainingStore):
    """BROKEN ON PURPOSE: truncation removes every event up to the latest snapshot,
    also those a relay has not published yet (a retention job that ignores relays)."""

    def _truncation_limit(self) -> int:
        """Every position: the bug."""
        return len(self._data.records)
