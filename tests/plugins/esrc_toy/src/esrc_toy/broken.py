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
- :class:`RacyCheckThenWriteStore` (``toy-racycheck://``): an append checks the
  expected version, lets the lock go for a moment, then writes, so two writers that
  both saw version N both append (only under concurrency).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from esrc_core.store import check_page_size

from esrc_core import AggregateId, RawEvent, RawSnapshot, check_events
from esrc_toy.store import ToyEventStore, ToyOutbox, _Record

__all__ = [
    "NoVersionCheckStore",
    "NonAtomicStore",
    "PageGapStore",
    "RacyCheckThenWriteStore",
    "StaysOpenStore",
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
            time.sleep(0.001)
        finally:
            self._data.lock.acquire()
