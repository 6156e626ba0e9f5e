"""Toy stores whose commits can land late, through the ``hold-commits`` test hook
(:class:`esrc_core.HoldsCommits`), as a third-party backend would offer it.

- ``toy-late://`` (:class:`LateToyStore`) works: an append takes its positions when it
  writes, and a held append lets other appends write and commit before it commits.
  Its outbox hands events out in commit order and remembers, per relay, the last event
  marked in that order, so an event that commits late comes after everything handed
  out before: nothing is skipped.
- ``toy-lateskip://`` (:class:`LateSkipStore`) is broken on purpose: its outbox hands
  out what lies past the highest position marked, the classic outbox bug. An event
  whose append took a lower position and committed after a higher one was marked is
  never handed out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from esrc_core import AggregateId, CommitHold, RawEvent, RelayEvent, encode_id
from esrc_toy.store import ToyEventStore, ToyOutbox, _Data, _Record

__all__ = ["LateSkipStore", "LateToyOutbox", "LateToyStore"]


@dataclass
class _Late:
    """What a toy store with late commits keeps beside its records: the last position
    taken, the records written but not committed yet, and the holds in force."""

    next_position: int
    pending: list[_Record] = field(default_factory=list)
    holds: list[CommitHold] = field(default_factory=list)


_late_of: dict[int, tuple[_Data, _Late]] = {}


def _late_state(data: _Data) -> _Late:
    """The late-commit state of ``data`` (kept as long as the data, under its id)."""
    kept = _late_of.get(id(data))
    if kept is None or kept[0] is not data:
        kept = _late_of[id(data)] = (data, _Late(next_position=len(data.records)))
    return kept[1]


class LateToyStore(ToyEventStore):
    """The toy store with appends that take their positions before they commit; see
    the module docstring. :meth:`hold_commits` holds an append until released."""

    def __init__(self, *, name: str | None = None, url: str = "toy-late://") -> None:
        super().__init__(name=name, url=url)
        self._late = _late_state(self._data)

    def hold_commits(self) -> CommitHold:
        """See :meth:`esrc_core.HoldsCommits.hold_commits`: a held append has its
        positions and versions, and lets others write while it waits to commit."""
        with self._data.lock:
            holds = self._late.holds
            hold = CommitHold(on_release=lambda: self._forget(hold))
            holds.append(hold)
            return hold

    def _forget(self, hold: CommitHold) -> None:
        with self._data.lock:
            if hold in self._late.holds:
                self._late.holds.remove(hold)

    def _version(self, aggregate_type: str, key: str) -> int:
        written = sum(
            1 for r in self._late.pending if r.key == key and r.aggregate_type == aggregate_type
        )
        return super()._version(aggregate_type, key) + written

    def _write(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """Take positions and versions, then commit: at once, or, for a held append,
        after the hold is released, letting other appends write and commit meanwhile.
        Called with the store's lock held, as every write is."""
        late = self._late
        key = encode_id(aggregate_id)
        version = self._version(aggregate_type, key)
        written = []
        for event in events:
            version += 1
            late.next_position += 1
            written.append(
                _Record(
                    late.next_position,
                    aggregate_type,
                    key,
                    aggregate_id,
                    version,
                    RawEvent(event.name, event.data, dict(event.metadata), event.schema_version),
                )
            )
        hold = next((h for h in late.holds if h.holds(events)), None)
        if hold is not None:
            late.pending.extend(written)
            # The caller's with-block holds the lock: give it up while held, so that
            # other appends write and commit, and take it back to commit.
            self._data.lock.release()
            try:
                hold.stop_here()
            finally:
                self._data.lock.acquire()
            for record in written:
                late.pending.remove(record)
        self._data.records.extend(written)

    def outbox(self, name: str = "default") -> ToyOutbox:
        """The outbox of relay ``name``, in commit order."""
        super().outbox(name)  # the checks
        return LateToyOutbox(self._data, name)


class LateToyOutbox(ToyOutbox):
    """A relay's view of a :class:`LateToyStore`: the records committed after the last
    one it marked, in commit order."""

    def _progress(self) -> int:
        """The index (in commit order) after the last record marked."""
        marked = {p for relay, p in self._data.marks if relay == self._name}
        return 1 + max(
            (i for i, r in enumerate(self._data.records) if r.position in marked), default=-1
        )

    def _pending(self) -> list[_Record]:
        return self._data.records[self._progress() :]

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        """Remember the event of ``events`` that committed last."""
        if not events:
            return
        with self._data.lock:
            index = {r.position: i for i, r in enumerate(self._data.records)}
            unknown = sorted(e.position for e in events if e.position not in index)
            if unknown:
                raise ValueError(f"toy: relay {self._name}: positions {unknown} were never stored")
            last = max(events, key=lambda e: index[e.position])
            self._data.marks.append((self._name, last.position))


class _PositionOutbox(LateToyOutbox):
    """The bug: hands out the records past the highest position marked."""

    def _pending(self) -> list[_Record]:
        progress = max((p for relay, p in self._data.marks if relay == self._name), default=0)
        return [r for r in self._data.records if r.position > progress]


class LateSkipStore(LateToyStore):
    """BROKEN ON PURPOSE: its outbox reads past the highest position marked, so an
    append that commits after a higher position was marked is never relayed."""

    def outbox(self, name: str = "default") -> ToyOutbox:
        """The outbox of relay ``name``, read by position: the bug."""
        super().outbox(name)
        return _PositionOutbox(self._data, name)
