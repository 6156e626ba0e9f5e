"""Looking inside a store: streams, recorded events with their timestamps, and each
relay's progress. Used by the ``esrc streams|events|tail|relays`` commands.

The web console reads through the functions at the end of this module
(:func:`stream_page`, :func:`count_streams`, :func:`aggregate_types`,
:func:`event_at`, :func:`events_page`, :func:`events_after`): they use a store's
indexed :class:`PagedInspectable` reads when it offers them, and the plain
:class:`Inspectable` methods (which may scan) otherwise, with the same results."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId, encode_id

__all__ = [
    "Inspectable",
    "PagedInspectable",
    "RecordedEvent",
    "RelayProgress",
    "StreamInfo",
    "aggregate_types",
    "correlated_events",
    "count_streams",
    "event_at",
    "events_after",
    "events_page",
    "stream_page",
]


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


@runtime_checkable
class PagedInspectable(Protocol):
    """Inspection at scale, optional next to :class:`Inspectable`: reads that answer
    from indexes (a page, a count, one event) instead of listing everything, for the
    web console on stores of millions of events. A backend that offers these is read
    through them by the functions below; results must equal the :class:`Inspectable`
    fallbacks'.

    Streams are in :meth:`Inspectable.streams` order (type, then
    :func:`~esrc_core.ids.encode_id` text, by code point); deleted streams are never
    listed or counted. ``search`` keeps the streams whose encoded id contains it
    (case-sensitive); ``after`` is a (type, encoded id) key: only streams after it.
    """

    def stream_page(
        self,
        aggregate_type: str | None,
        search: str | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[StreamInfo]:
        """At most ``limit`` streams matching the filters, after ``after``."""
        ...

    def count_streams(self, aggregate_type: str | None, search: str | None) -> int:
        """How many streams match the filters."""
        ...

    def aggregate_types(self) -> list[str]:
        """Every aggregate type with a stream, by code point."""
        ...

    def event_at(self, position: int) -> RecordedEvent | None:
        """The event at global ``position``, ``None`` when there is none (or its
        stream was deleted)."""
        ...

    def events_page(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int, limit: int
    ) -> list[RecordedEvent]:
        """At most ``limit`` events of a stream after ``from_version``, by version;
        :class:`~esrc_core.errors.AggregateNotFound` for a missing stream."""
        ...

    def events_after(self, position: int, limit: int) -> list[RecordedEvent]:
        """At most ``limit`` events with a position above ``position``, by position."""
        ...


def _matches(info: StreamInfo, search: str | None) -> bool:
    return not search or search in encode_id(info.aggregate_id)


def stream_page(
    store: Inspectable,
    aggregate_type: str | None = None,
    search: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 50,
) -> list[StreamInfo]:
    """At most ``limit`` streams (of ``aggregate_type``, whose encoded id contains
    ``search``), the first after the (type, encoded id) key ``after``, in
    :meth:`Inspectable.streams` order. Deleted streams are not listed."""
    if isinstance(store, PagedInspectable):
        return store.stream_page(aggregate_type, search or None, after, limit)
    found = []
    for info in store.streams(aggregate_type):
        if after is not None and (info.aggregate_type, encode_id(info.aggregate_id)) <= after:
            continue
        if _matches(info, search):
            found.append(info)
            if len(found) >= limit:
                break
    return found


def count_streams(
    store: Inspectable, aggregate_type: str | None = None, search: str | None = None
) -> int:
    """How many streams :func:`stream_page` lists with these filters, over all pages."""
    if isinstance(store, PagedInspectable):
        return store.count_streams(aggregate_type, search or None)
    return sum(1 for info in store.streams(aggregate_type) if _matches(info, search))


def aggregate_types(store: Inspectable) -> list[str]:
    """Every aggregate type that has a stream, by code point."""
    if isinstance(store, PagedInspectable):
        return store.aggregate_types()
    return sorted({info.aggregate_type for info in store.streams()})


def _every_event(store: Inspectable) -> list[RecordedEvent]:
    every = [
        event
        for info in store.streams()
        for event in store.recorded_events(info.aggregate_type, info.aggregate_id)
    ]
    return sorted(every, key=lambda e: e.position)


def event_at(store: Inspectable, position: int) -> RecordedEvent | None:
    """The event at global ``position``, or ``None`` when there is none."""
    if isinstance(store, PagedInspectable):
        return store.event_at(position)
    return next((e for e in _every_event(store) if e.position == position), None)


def events_page(
    store: Inspectable,
    aggregate_type: str,
    aggregate_id: AggregateId,
    from_version: int = 0,
    limit: int = 100,
) -> list[RecordedEvent]:
    """At most ``limit`` events of a stream after ``from_version``, by version.
    Raises :class:`~esrc_core.errors.AggregateNotFound` for a missing stream."""
    if isinstance(store, PagedInspectable):
        return store.events_page(aggregate_type, aggregate_id, from_version, limit)
    return store.recorded_events(aggregate_type, aggregate_id, from_version)[:limit]


def events_after(store: Inspectable, position: int, limit: int) -> list[RecordedEvent]:
    """At most ``limit`` events with a position above ``position``, by position."""
    if isinstance(store, PagedInspectable):
        return store.events_after(position, limit)
    return [e for e in _every_event(store) if e.position > position][:limit]


def correlated_events(
    store: Inspectable, correlation_id: str, *, page: int = 1000
) -> list[RecordedEvent]:
    """Every event, across streams, whose metadata's ``correlation_id`` is
    ``correlation_id`` (see :mod:`esrc_core.correlation`), by position.

    A scan: a :class:`PagedInspectable` store is read ``page`` events at a time from
    the first position (memory stays bounded by the matches), any other store stream by
    stream. No backend indexes metadata, so the time grows with the store, not with
    the correlation. Raises ``ValueError`` for an empty id or a ``page`` below 1.
    """
    if not isinstance(correlation_id, str) or not correlation_id:
        raise ValueError(f"correlation_id must be a non-empty str, got {correlation_id!r}")
    if page < 1:
        raise ValueError(f"page must be 1 or more, got {page!r}")

    def matches(event: RecordedEvent) -> bool:
        return event.event.metadata.get("correlation_id") == correlation_id

    if not isinstance(store, PagedInspectable):
        return [e for e in _every_event(store) if matches(e)]
    found: list[RecordedEvent] = []
    position = 0
    while True:
        batch = store.events_after(position, page)
        found.extend(e for e in batch if matches(e))
        if len(batch) < page:
            return found
        position = batch[-1].position
