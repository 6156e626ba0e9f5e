"""What the console's pages show, read from the store: pages of streams with a cursor,
a stream's events, one event with its causation chain, and relay samples over time.

Everything is read through :mod:`esrc_core.inspection`; nothing here writes.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import itertools
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from esrc_core.errors import EsrcError
from esrc_core.events import EventRegistry
from esrc_core.ids import AggregateId, decode_id, encode_id
from esrc_core.inspection import (
    Inspectable,
    RecordedEvent,
    RelayProgress,
    StreamInfo,
    count_streams,
    event_at,
    events_after,
    events_page,
    stream_page,
)
from esrc_core.locks import InspectsRelayLocks
from esrc_core.relay import message_id

__all__ = [
    "CAUSED_WINDOW",
    "CHAIN_LIMIT",
    "EVENTS_PER_PAGE",
    "STREAMS_PER_PAGE",
    "BadRequest",
    "Chain",
    "RelayHistory",
    "RelaySample",
    "StreamsPage",
    "decode_cursor",
    "decode_payload",
    "encode_cursor",
    "event_chain",
    "find_event",
    "parse_message_id",
    "per_minute",
    "read_streams",
]

STREAMS_PER_PAGE = 50
"""Streams on one page of the streams list."""

EVENTS_PER_PAGE = 100
"""Events on one page of a stream."""

CHAIN_LIMIT = 50
"""How many causes an event page follows back at most (a guard against loops)."""

CAUSED_WINDOW = 1000
"""How many events after an event are searched for the events it caused: causes are
recorded shortly before their effects, and the search stays one indexed range read."""


class BadRequest(ValueError):
    """A request parameter the console cannot read (a cursor, an encoded id); shown as
    status 400 with the message."""


def encode_cursor(key: tuple[str, str]) -> str:
    """A streams-page cursor for the (type, encoded id) key, safe in a URL."""
    raw = json.dumps(list(key), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text: str) -> tuple[str, str]:
    """The (type, encoded id) key of :func:`encode_cursor`; :class:`BadRequest`
    when ``text`` is not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as err:
        raise BadRequest(f"not a streams cursor: {text!r}") from err
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(part, str) for part in value)
    ):
        raise BadRequest(f"not a streams cursor: {text!r}")
    return value[0], value[1]


@dataclass(frozen=True)
class StreamsPage:
    """One page of the streams list: its streams, the total matching the filters and
    the cursor of the next page (``None`` on the last)."""

    streams: list[StreamInfo]
    total: int
    next_cursor: str | None


def read_streams(
    store: Inspectable,
    aggregate_type: str | None,
    search: str | None,
    after: tuple[str, str] | None,
    limit: int = STREAMS_PER_PAGE,
) -> StreamsPage:
    """The page of streams after ``after`` matching the filters (one extra stream is
    read to know whether a next page exists)."""
    found = stream_page(store, aggregate_type, search, after, limit + 1)
    more = len(found) > limit
    found = found[:limit]
    cursor = None
    if more and found:
        last = found[-1]
        cursor = encode_cursor((last.aggregate_type, encode_id(last.aggregate_id)))
    return StreamsPage(found, count_streams(store, aggregate_type, search), cursor)


def decode_payload(registry: EventRegistry | None, event: RecordedEvent) -> tuple[str, Any] | None:
    """``("decoded", value)`` when ``registry`` knows the event's class and decodes it
    (the value is the instance's ``repr``), ``("json", value)`` for JSON data, and
    ``None`` for other bytes."""
    if registry is not None and event.event.name in registry.names:
        try:
            value = registry.from_raw(event.event, aggregate_type=event.aggregate_type)
        except EsrcError:
            pass
        else:
            return "decoded", repr(value)
    try:
        return "json", json.loads(event.event.data)
    except (ValueError, RecursionError):
        return None


def parse_message_id(text: str) -> tuple[str, AggregateId, int] | None:
    """The (type, id, version) of a message id ``<type>/<encoded id>/<version>``, or
    ``None`` when ``text`` is not one."""
    head, sep, version = text.rpartition("/")
    aggregate_type, sep2, encoded = head.partition("/")
    if not sep or not sep2 or not version.isdigit():
        return None
    try:
        return aggregate_type, decode_id(encoded), int(version)
    except (ValueError, EsrcError):
        return None


def _event_of(store: Inspectable, key: tuple[str, AggregateId, int]) -> RecordedEvent | None:
    aggregate_type, aggregate_id, version = key
    if version < 1:
        return None
    try:
        found = events_page(store, aggregate_type, aggregate_id, version - 1, 1)
    except EsrcError:
        return None
    return found[0] if found and found[0].version == version else None


@dataclass
class Chain:
    """An event's correlation: its ``correlation_id`` (when recorded), the causes
    from the first to the event itself, the events it caused (found among the
    :data:`CAUSED_WINDOW` events after it), and a cause named in metadata but not
    found in the store (``missing``)."""

    correlation_id: str | None
    causes: list[RecordedEvent] = field(default_factory=list)
    caused: list[RecordedEvent] = field(default_factory=list)
    missing: str | None = None

    @property
    def has_metadata(self) -> bool:
        """Whether the event records any correlation metadata."""
        event = self.causes[-1] if self.causes else None
        return event is not None and (
            "causation_id" in event.event.metadata or "correlation_id" in event.event.metadata
        )


def event_chain(store: Inspectable, event: RecordedEvent) -> Chain:
    """``event``'s causation chain: its causes, followed through ``causation_id``
    metadata back to the first (at most :data:`CHAIN_LIMIT`), and the events it caused."""
    chain = Chain(event.event.metadata.get("correlation_id"), [event])
    seen = {event.position}
    current = event
    while len(chain.causes) <= CHAIN_LIMIT:
        cause_id = current.event.metadata.get("causation_id")
        if not cause_id:
            break
        key = parse_message_id(cause_id)
        cause = _event_of(store, key) if key is not None else None
        if cause is None:
            chain.missing = cause_id
            break
        if cause.position in seen:
            break
        seen.add(cause.position)
        chain.causes.insert(0, cause)
        current = cause
    own = message_id(event.aggregate_type, event.aggregate_id, event.version)
    chain.caused = [
        e
        for e in events_after(store, event.position, CAUSED_WINDOW)
        if e.event.metadata.get("causation_id") == own
    ]
    return chain


def find_event(store: Inspectable, position: int) -> RecordedEvent | None:
    """The event at ``position``, or ``None``."""
    return event_at(store, position)


@dataclass(frozen=True)
class RelaySample:
    """The relays' progress at one moment: per relay name (pending events, lag in
    seconds), and the number of events in the store when a relay tells it."""

    seq: int
    at: float
    relays: dict[str, tuple[int, float | None]]
    events: int | None

    def document(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "seq": self.seq,
            "at": dt.datetime.fromtimestamp(self.at, dt.UTC).isoformat(),
            "relays": {
                name: {"pending": pending, "lag_seconds": lag}
                for name, (pending, lag) in self.relays.items()
            },
            "events": self.events,
        }


class RelayHistory:
    """A bounded, thread-safe history of relay samples kept in this process: at most
    ``size`` samples, one taken at most every ``interval`` seconds (a request in
    between reuses the last)."""

    def __init__(self, size: int, interval: float) -> None:
        self._samples: collections.deque[RelaySample] = collections.deque(maxlen=size)
        self._interval = interval
        self._lock = threading.Lock()
        self._seq = 0
        self._last: list[RelayProgress] = []
        self._holders: dict[str, str | None] = {}

    def sample(
        self, store: Inspectable
    ) -> tuple[list[RelayProgress], list[RelaySample], dict[str, str | None]]:
        """The relays now (read from the store unless a sample is younger than the
        interval), the history including them, and their lock holders (see
        :class:`~esrc_core.locks.InspectsRelayLocks`; empty when the store cannot
        tell)."""
        with self._lock:
            now = time.time()
            if self._samples and now - self._samples[-1].at < self._interval:
                return list(self._last), list(self._samples), dict(self._holders)
            progress = store.relays()
            if isinstance(store, InspectsRelayLocks):
                self._holders = store.relay_lock_holders([r.name for r in progress])
            moment = dt.datetime.fromtimestamp(now, dt.UTC)
            events = max((r.published + r.pending for r in progress), default=None)
            self._seq += 1
            self._samples.append(
                RelaySample(
                    self._seq,
                    now,
                    {r.name: (r.pending, r.lag_seconds(moment)) for r in progress},
                    events,
                )
            )
            self._last = progress
            return list(progress), list(self._samples), dict(self._holders)


def per_minute(samples: Sequence[RelaySample]) -> list[tuple[float, float]]:
    """Events appended per minute between consecutive samples that know the number of
    events: (time, rate) pairs."""
    rates = []
    for before, after in itertools.pairwise(samples):
        if before.events is None or after.events is None or after.at <= before.at:
            continue
        rates.append((after.at, max(after.events - before.events, 0) * 60 / (after.at - before.at)))
    return rates
