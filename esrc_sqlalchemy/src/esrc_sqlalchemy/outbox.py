"""The SQL store's outbox: one relay's view of the events it has not yet published."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Sequence
from itertools import repeat
from typing import cast

from esrc_core.backoff import Backoff
from esrc_core.errors import EsrcError
from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId, decode_id
from esrc_core.relay import RelayEvent
from esrc_core.store import INT64_MAX, check_int
from sqlalchemy.engine import Connection

from esrc_sqlalchemy._executor import StoreExecutor
from esrc_sqlalchemy.dialects.base import OutboxListener, OutboxRow

__all__ = ["SqlOutbox"]


_HOLD_BACK_POLL = Backoff(base_delay=0.002, max_delay=0.05, jitter=0.0)
"""Pauses between looks at whether held-back transactions ended: 2 ms, doubling to
50 ms."""

_HANDED_BATCHES = 8
"""Batches handed out whose order keys an outbox remembers until they are marked (a
relay reading ahead has two or three): an older one is looked up again if marked."""


class SqlOutbox:
    """Relay ``name``'s outbox over a :class:`~esrc_sqlalchemy.store.SqlEventStore`.

    The order: on PostgreSQL by writing transaction and then position, reading only
    transactions older than the oldest one still in progress; on SQLite by position,
    which it allocates in commit order; on MariaDB/MySQL by ``seq``, a number the
    outboxes give committed events in sequencing passes. Either way an event whose
    transaction commits late is still returned, after everything already returned (each
    database's module in :mod:`esrc_sqlalchemy.dialects` says why).

    The checkpoint is the order key of the last published event, kept in the
    ``checkpoints`` table and only ever moved forward, so a new ``SqlOutbox`` of the
    same name (after a restart) continues where the previous one stopped.

    :meth:`unpublished_events` and :meth:`mark_events_as_published` are thread-safe;
    :meth:`wait_for_events` is for one thread at a time. One relay name should have
    one active consumer: two would publish the same events twice (never lose any).

    Made by :meth:`SqlEventStore.outbox <esrc_sqlalchemy.store.SqlEventStore.outbox>`,
    with the store's executor; ``owner`` names the store in its ``repr``.
    """

    def __init__(
        self,
        executor: StoreExecutor,
        name: str,
        *,
        owner: str,
        poll_interval: float = 0.2,
        hold_back_wait: float = 1.0,
        durable_checkpoint: bool = True,
    ) -> None:
        self._executor = executor
        self._name = name
        self._owner = owner
        self.poll_interval = poll_interval
        """How often :meth:`wait_for_events` polls when it cannot listen."""
        self.hold_back_wait = hold_back_wait
        """PostgreSQL: how long :meth:`unpublished_events` may wait for the
        transactions that hold committed events back to end (0: never wait)."""
        self.durable_checkpoint = durable_checkpoint
        """Whether :meth:`mark_events_as_published` waits until its commit is on disk
        (see :meth:`SqlEventStore.outbox <esrc_sqlalchemy.store.SqlEventStore.outbox>`)."""
        self._lock = threading.Lock()
        self._handed: deque[tuple[tuple[int, int], dict[int, tuple[int, int]]]] = deque()
        """The batches handed out and not yet marked, oldest first: each batch's last
        order key and the order key of each of its events by position."""
        self._listener: OutboxListener | None = None

    def __repr__(self) -> str:
        return f"SqlOutbox({self._owner}, {self._name!r})"

    @property
    def name(self) -> str:
        """The relay name whose progress this outbox tracks."""
        return self._name

    def _fetch(self, limit: int, after: tuple[int, int] | None = None) -> Sequence[OutboxRow]:
        """Up to ``limit`` rows after the checkpoint (or after the order key ``after``);
        when fewer are ready and committed events are held back (PostgreSQL), wait for
        them (:meth:`_wait_for_hold_back`) and read again."""
        executor = self._executor
        dialect = executor.dialect
        doing = f"read outbox {self._name!r} of {executor.url}"
        check_int(limit, "limit", doing=doing, minimum=1)

        def read(conn: Connection) -> tuple[Sequence[OutboxRow], int | None]:
            return dialect.outbox_rows(conn, self._name, limit, after)

        rows, held = executor.run(doing, read, write=False)
        if held is not None and len(rows) < limit and self._wait_for_hold_back(held, doing):
            rows, _ = executor.run(doing, read, write=False)
        return rows

    def _wait_for_hold_back(self, held: int, doing: str) -> bool:
        """Wait up to :attr:`hold_back_wait` until every transaction that holds back
        events up to ``held`` has ended; return whether they did. Waiting only delays
        events: the outbox never returns one before the transactions that could precede
        it have ended."""
        executor = self._executor
        dialect = executor.dialect
        deadline = time.monotonic() + self.hold_back_wait
        looks = 0
        while time.monotonic() < deadline:
            if executor.run(doing, lambda conn: dialect.hold_back_ended(conn, held), write=False):
                return True
            looks += 1
            executor.sleep(min(_HOLD_BACK_POLL.delay(looks), max(deadline - time.monotonic(), 0)))
        return False

    def _decode_id(self, encoded: str, position: int) -> AggregateId:
        try:
            return decode_id(encoded)
        except ValueError as err:
            raise EsrcError(
                f"read outbox {self._name!r}: event at position {position} has an "
                f"aggregate id this store did not write: {err}"
            ) from err

    def unpublished_events(self, limit: int) -> list[RelayEvent]:
        """See :meth:`esrc_core.relay.EventStoreOutbox.unpublished_events`. One query.

        On PostgreSQL, when fewer than ``limit`` events are ready and committed events
        wait behind transactions still in progress, it first waits (up to
        :attr:`hold_back_wait`) for those transactions to end, then reads again."""
        return self._events(self._fetch(limit), restart=True)

    def unpublished_events_after(self, event: RelayEvent, limit: int) -> list[RelayEvent]:
        """See :meth:`esrc_core.relay.ReadAheadOutbox.unpublished_events_after`: one
        query, from ``event``'s order key instead of the checkpoint, with the same
        waiting as :meth:`unpublished_events`. Raises ``ValueError`` for an event this
        store's outbox would not hand out (one not stored, or still held back)."""
        if not isinstance(event, RelayEvent):
            raise TypeError(f"relay {self._name}: unpublished_events_after takes a RelayEvent")
        key = self._known_key(event.position)
        if key is None:
            key = self._lookup_keys([event.position])[event.position]
        return self._events(self._fetch(limit, key), restart=False)

    def _events(self, rows: Sequence[OutboxRow], *, restart: bool) -> list[RelayEvent]:
        """The rows as events, remembering their order keys for the mark (a read from
        the checkpoint, ``restart``, forgets the batches handed out before)."""
        events: list[RelayEvent] = []
        keys: dict[int, tuple[int, int]] = {}
        # Events of one stream (and often of one command) share their id and metadata
        # text: decode each distinct text once per batch.
        ids: dict[str, AggregateId] = {}
        metas: dict[str, dict[str, str]] = {}
        append = events.append
        for row in rows:
            tx_id, order, position, aggregate_type, encoded, version, name, stored, meta = row[:9]
            aggregate_id = ids.get(encoded)
            if aggregate_id is None:
                aggregate_id = ids[encoded] = self._decode_id(encoded, position)
            if meta:
                parsed = metas.get(meta)
                if parsed is None:
                    parsed = metas[meta] = json.loads(meta)
                metadata = parsed.copy()
            else:
                metadata = {}
            append(
                RelayEvent(
                    aggregate_type,
                    aggregate_id,
                    version,
                    position,
                    RawEvent(
                        name,
                        stored if type(stored) is bytes else bytes(stored),
                        metadata,
                        row[10],
                    ),
                )
            )
            keys[position] = (tx_id, order)
        with self._lock:
            handed = self._handed
            if restart:
                handed.clear()
            if events:
                handed.append((keys[events[-1].position], keys))
                if len(handed) > _HANDED_BATCHES:
                    handed.popleft()
        return events

    def _known_key(self, position: int) -> tuple[int, int] | None:
        """The order key of the event at ``position`` if a batch still remembered has it."""
        with self._lock:
            for _, keys in reversed(self._handed):
                key = keys.get(position)
                if key is not None:
                    return key
        return None

    def _lookup_keys(self, positions: Sequence[int]) -> dict[int, tuple[int, int]]:
        """The order keys of ``positions`` from the database (each by its primary key);
        ``ValueError`` naming those the outbox would not hand out."""
        executor = self._executor
        # A position no database column holds was never handed out: not worth a query
        # the driver would refuse.
        asked = [p for p in positions if type(p) is int and 1 <= p <= INT64_MAX]
        found = executor.run(
            f"look up events of outbox {self._name!r} of {executor.url}",
            lambda conn: executor.dialect.outbox_keys(conn, asked),
            write=False,
        )
        never = sorted(set(positions) - found.keys())
        if never:
            raise ValueError(
                f"relay {self._name}: positions {never[:10]} were never handed out "
                "by this store's outbox"
            )
        return found

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        """See :meth:`esrc_core.relay.EventStoreOutbox.mark_events_as_published`.

        Moves the checkpoint to the largest order key among ``events``, in one
        statement on the checkpoint's primary key that never moves it back: its cost
        does not grow with the store. The keys come from the batches this outbox handed
        out; only events it does not remember are looked up (by primary key). Raises
        ``ValueError`` for an event this store never handed out.
        """
        if not events:
            return
        if not all(map(isinstance, events, repeat(RelayEvent))):
            raise TypeError(f"relay {self._name}: mark_events_as_published takes RelayEvents")
        positions = [e.position for e in events]
        top: tuple[int, int] | None = None
        with self._lock:
            for _, keys in reversed(self._handed):
                known = list(map(keys.get, positions))
                if None not in known:
                    top = max(cast(list[tuple[int, int]], known))
                    break
        if top is None:
            top = max(self._lookup_keys(positions).values())
        dialect = self._executor.dialect
        durable = self.durable_checkpoint
        self._executor.run(
            f"mark events of outbox {self._name!r} of {self._executor.url} as published",
            lambda conn: dialect.mark(conn, self._name, top, durable=durable),
            write=True,
            single=True,
        )
        with self._lock:
            handed = self._handed
            # Forget the batches wholly marked now, but the newest: reading ahead goes on
            # from its last event.
            while len(handed) > 1 and handed[0][0] <= top:
                handed.popleft()

    def wait_for_events(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until there may be unpublished events;
        return ``True`` then, ``False`` on timeout.

        On PostgreSQL with ``notify=True`` this listens on the store's channel
        (``LISTEN``; appends notify after they commit) on a connection of its own,
        checking the outbox once when it starts listening. Otherwise it polls the
        outbox every :attr:`poll_interval` seconds. A ``True`` is a hint: the events
        may still be held back behind a transaction in progress.
        """
        listening = self._wait_notified(timeout)
        if listening is not None:
            return listening
        deadline = time.monotonic() + timeout
        while True:
            if self._fetch(1):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._executor.sleep(min(self.poll_interval, remaining))

    def _wait_notified(self, timeout: float) -> bool | None:
        """Wait on the listener (opening it first, then checking the outbox once);
        ``None`` when the store's appends do not notify."""
        executor = self._executor
        doing = f"wait for events of outbox {self._name!r} of {executor.url}"
        try:
            if self._listener is None:
                listener = executor.dialect.open_listener()
                if listener is None:
                    return None
                self._listener = listener
                if self._fetch(1):
                    return True
            return self._listener.wait(timeout)
        except Exception as err:
            failure = executor.driver_failure(err, doing)
            if failure is None:
                raise
            self.close()
            raise failure from err

    def close(self) -> None:
        """Close the listening connection, if any. Calling it twice is harmless."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
