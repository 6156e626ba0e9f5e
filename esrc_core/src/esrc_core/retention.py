"""Stream deletion and retention (capability ``delete-streams``): deleting a stream for
good, and removing the events a stream's latest snapshot makes unnecessary.

:class:`DeletesStreams` is the protocol; its docstring is the contract, including what
relays see. ``esrc delete-stream`` and ``esrc truncate-stream`` run it from the
command line.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from esrc_core.ids import AggregateId

__all__ = ["DeletesStreams"]


@runtime_checkable
class DeletesStreams(Protocol):
    """An :class:`~esrc_core.store.EventStore` that deletes streams and truncates them
    (capability ``delete-streams``).

    Contract, checked by ``esrc_testkit``:

    - :meth:`delete_stream` leaves a tombstone: the stream's events and snapshots are
      removed, :meth:`~esrc_core.store.EventStore.contains_aggregate` is ``False``,
      reads raise :class:`~esrc_core.errors.AggregateNotFound`, ``latest_snapshot`` is
      ``None``, and appends, atomic appends and re-creating the stream raise
      :class:`~esrc_core.errors.StreamDeletedError` for good. Deleting a deleted
      stream does nothing; deleting a stream that never existed raises
      ``AggregateNotFound``. An append in flight either commits before the deletion
      (and is deleted with the rest) or fails.
    - :meth:`truncate_stream` removes the events at or below the stream's latest
      snapshot version that every relay the store knows (every relay name with a
      checkpoint) has passed, and returns how many it removed (0 without a snapshot).
      Loading through the repository (the latest snapshot, then the events after it)
      is unchanged; a read that starts below the first remaining event raises
      :class:`~esrc_core.errors.EventsTruncatedError`.
    - What relays see. Nothing stored before a relay passed it is ever skipped:
      truncation never removes an event a known relay has not passed, and neither
      operation moves, renumbers or hides any other stream's events. A deleted
      stream's events that a relay has not been handed yet are never handed out to it
      (the stream was deleted: publishing its events afterwards would undo the
      deletion downstream); events already handed out in a batch the relay has not
      marked yet may still be published by it. A relay name the store does not know
      yet (one that never marked anything) starts without the truncated events, as a
      relay created after the truncation would.
    - Thread-safe as the store's other methods are.
    """

    def delete_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> None:
        """Delete the stream for good (see the class docstring).

        Raises :class:`~esrc_core.errors.AggregateNotFound` when it never existed.
        """
        ...

    def truncate_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> int:
        """Remove the stream's events at or below its latest snapshot that every known
        relay has passed; return how many were removed.

        Raises :class:`~esrc_core.errors.AggregateNotFound` when the stream does not
        exist (or was deleted).
        """
        ...
