"""The event store protocol: the contract every backend keeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from esrc_core.events import RawEvent, RawSnapshot
from esrc_core.ids import AggregateId

__all__ = ["EventStore"]


@runtime_checkable
class EventStore(Protocol):
    """Stores event streams keyed by (aggregate type, aggregate id), and snapshots.

    Contract, checked by ``esrc_testkit``:

    - Versions start at 1: a stream of n events has version n.
    - An append is atomic: all of its events are stored, or none.
    - A read returns exactly what was appended: same names, bytes and metadata,
      in version order.
    - Ids are ``uuid.UUID``, ``str`` or ``int`` and keep their type; ``42`` and ``"42"``
      are different streams. Any other type raises
      :class:`~esrc_core.errors.InvalidAggregateIdError`.
    - Malformed events raise :class:`~esrc_core.errors.InvalidEventError` before
      anything is written.
    - Driver errors are translated into :class:`~esrc_core.errors.EsrcError` subclasses
      (a lost connection into :class:`~esrc_core.errors.StoreUnavailableError`) with the
      cause chained.
    - Every method is safe to call from several threads at once unless the backend
      documents otherwise (and does not declare the ``threads`` capability).
    """

    def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """Create a new stream holding ``events`` at versions 1..n.

        Raises :class:`~esrc_core.errors.AggregateRequiresEvents` when ``events`` is
        empty and :class:`~esrc_core.errors.AggregateAlreadyExists` when the stream exists.
        """
        ...

    def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        """Append ``events`` to a stream that is at ``from_version``.

        Raises :class:`~esrc_core.errors.OptimisticConcurrencyError` when the stream's
        version is not ``from_version`` or the stream does not exist, and
        :class:`~esrc_core.errors.AggregateRequiresEvents` when ``events`` is empty.
        Nothing is stored when it raises.
        """
        ...

    def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        """The stream's events with version greater than ``from_version``, in order.

        Raises :class:`~esrc_core.errors.AggregateNotFound` when the stream does not exist.
        """
        ...

    def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        """Whether the stream exists."""
        ...

    def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        """Store a snapshot; a second one at the same version replaces the first.

        Raises :class:`~esrc_core.errors.AggregateNotFound` when the stream does not
        exist and :class:`~esrc_core.errors.SnapshotVersionError` when the snapshot's
        version is below 1 or above the stream's version.
        """
        ...

    def latest_snapshot(self, aggregate_type: str, aggregate_id: AggregateId) -> RawSnapshot | None:
        """The snapshot with the highest version, or ``None`` if there is none (also
        when the stream does not exist)."""
        ...

    def close(self) -> None:
        """Release connections and other resources. Calling it twice is harmless."""
        ...
