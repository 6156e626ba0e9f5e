"""The SQL store's outbox: one relay's view of the events it has not yet published."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from itertools import repeat

from esrc_core.backoff import Backoff
from esrc_core.errors import EsrcError
from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId, decode_id
from esrc_core.relay import RelayEvent
from sqlalchemy.engine import Connection

from esrc_sqlalchemy._executor import StoreExecutor
from esrc_sqlalchemy.dialects.base import OutboxListener, OutboxRow

__all__ = ["SqlOutbox"]


_HOLD_BACK_POLL = Backoff(base_delay=0.002, max_delay=0.05, jitter=0.0)
"""Pauses between looks at whether held-back transactions ended: 2 ms, doubling to
50 ms."""


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
    ) -> None:
        self._executor = executor
        self._name = name
        self._owner = owner
        self.poll_interval = poll_interval
        """How often :meth:`wait_for_events` polls when it cannot listen."""
        self.hold_back_wait = hold_back_wait
        """PostgreSQL: how long :meth:`unpublished_events` may wait for the
        transactions that hold committed events back to end (0: never wait)."""
        self._lock = threading.Lock()
        self._keys: dict[int, OutboxRow] = {}
        """The rows of the last batch handed out, by position (rows compare as their
        order keys do)."""
        self._listener: OutboxListener | None = None

    def __repr__(self) -> str:
        return f"SqlOutbox({self._owner}, {self._name!r})"

    @property
    def name(self) -> str:
        """The relay name whose progress this outbox tracks."""
        return self._name

    def _fetch(self, limit: int) -> Sequence[OutboxRow]:
        """Up to ``limit`` rows after the checkpoint; when fewer are ready and committed
        events are held back (PostgreSQL), wait for them (:meth:`_wait_for_hold_back`)
        and read again."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        executor = self._executor
        dialect = executor.dialect
        doing = f"read outbox {self._name!r} of {executor.url}"
        rows, held = executor.run(
            doing, lambda conn: dialect.outbox_rows(conn, self._name, limit), write=False
        )
        if held is not None and len(rows) < limit and self._wait_for_hold_back(held, doing):
            rows, _ = executor.run(
                doing, lambda conn: dialect.outbox_rows(conn, self._name, limit), write=False
            )
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
            time.sleep(min(_HOLD_BACK_POLL.delay(looks), max(deadline - time.monotonic(), 0)))
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
        rows = self._fetch(limit)
        events: list[RelayEvent] = []
        keys: dict[int, OutboxRow] = {}
        # Events of one stream (and often of one command) share their id and metadata
        # text: decode each distinct text once per batch.
        ids: dict[str, AggregateId] = {}
        metas: dict[str, dict[str, str]] = {}
        append = events.append
        for row in rows:
            _, _, position, aggregate_type, encoded, version, name, stored, meta, _ = row
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
            data = stored if type(stored) is bytes else bytes(stored)
            append(
                RelayEvent(
                    aggregate_type, aggregate_id, version, position, RawEvent(name, data, metadata)
                )
            )
            keys[position] = row
        with self._lock:
            self._keys = keys
        return events

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        """See :meth:`esrc_core.relay.EventStoreOutbox.mark_events_as_published`.

        Moves the checkpoint to the largest order key among ``events``, in one
        statement that never moves it back. Raises ``ValueError`` for an event this
        store never handed out.
        """
        if not events:
            return
        if not all(map(isinstance, events, repeat(RelayEvent))):
            raise TypeError(f"relay {self._name}: mark_events_as_published takes RelayEvents")
        positions = [e.position for e in events]
        with self._lock:
            known = list(map(self._keys.get, positions))
        dialect = self._executor.dialect

        def work(conn: Connection) -> None:
            if None in known:
                found = dialect.outbox_keys(conn, positions)
                never = sorted(set(positions) - found.keys())
                if never:
                    raise ValueError(
                        f"relay {self._name}: positions {never[:10]} were never handed out "
                        "by this store's outbox"
                    )
                top = max(found.values())
            else:
                last = max(row for row in known if row is not None)
                top = (last.tx_id, last.ord)
            dialect.mark(conn, self._name, top)

        self._executor.run(
            f"mark events of outbox {self._name!r} of {self._executor.url} as published",
            work,
            write=True,
            single=True,
        )

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
            time.sleep(min(self.poll_interval, remaining))

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
