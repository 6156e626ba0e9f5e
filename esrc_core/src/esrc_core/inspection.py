"""Looking inside a store: streams, recorded events with their timestamps, and each
relay's progress. Used by the ``esrc streams|events|tail|relays`` commands."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId

__all__ = ["Inspectable", "RecordedEvent", "RelayProgress", "StreamInfo"]


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One stream: its key, its version (= its number of events) and when its last
    event was recorded (``None`` if the store keeps no timestamps)."""

    aggregate_type: str
    aggregate_id: AggregateId
    version: int
    last_recorded_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: its stream, version, global position, the raw event and
    when it was recorded (timezone-aware UTC, or ``None`` if not kept)."""

    aggregate_type: str
    aggregate_id: AggregateId
    version: int
    position: int
    event: RawEvent
    recorded_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class RelayProgress:
    """A relay name's progress: how many events it has marked published, how many
    committed events wait for it, and when the oldest of those was recorded."""

    name: str
    published: int
    pending: int
    oldest_pending_at: dt.datetime | None

    def lag_seconds(self, now: dt.datetime | None = None) -> float | None:
        """How long ago, at ``now`` (default: the current time), the oldest pending
        event was recorded, in seconds and never below 0; ``None`` when nothing is
        pending or the store keeps no timestamps. A naive ``oldest_pending_at`` is
        taken as UTC."""
        oldest = self.oldest_pending_at
        if oldest is None or not self.pending:
            return None
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        return max(((now or dt.datetime.now(dt.UTC)) - oldest).total_seconds(), 0.0)


@runtime_checkable
class Inspectable(Protocol):
    """A store capability: read-only views for operators, plus managing relay names.

    These are for tools, not the hot path: they may scan. Ids come back in their type.
    """

    def streams(
        self, aggregate_type: str | None = None, *, limit: int | None = None
    ) -> list[StreamInfo]:
        """Streams, optionally of one type (``limit``: the first ``limit`` of them).

        Ordered by aggregate type, then by the id's
        :func:`~esrc_core.ids.encode_id` text, both compared by code point (not by a
        database collation): so ``int`` ids come before ``str`` ids, which come before
        ``UUID`` ids (``i:`` < ``s:`` < ``u:``), and ``int`` ids sort as text (``10``
        before ``9``). Every backend lists the same streams in the same order.
        """
        ...

    def recorded_events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RecordedEvent]:
        """Like :meth:`~esrc_core.store.EventStore.events`, with positions and times.

        Raises :class:`~esrc_core.errors.AggregateNotFound` for a missing stream.
        """
        ...

    def relays(self) -> list[RelayProgress]:
        """Every relay name that has marked progress, sorted by name."""
        ...

    def copy_relay(self, source: str, target: str) -> None:
        """Set relay ``target``'s progress to ``source``'s (to start a reader where a
        relay stands). ``source`` without progress gives ``target`` none either."""
        ...

    def forget_relay(self, name: str) -> None:
        """Delete relay ``name``'s progress; it would start again from the first
        event. Forgetting an unknown name is harmless."""
        ...
