"""The web console benchmark's store: a million events in a hundred thousand streams,
written straight into the SQL store's tables.

Going through the store's API would take many minutes; rows written in one transaction
(SQLite: ``executemany``; PostgreSQL: ``COPY``) take under a minute, and look to every
reader exactly like rows the store wrote itself: the same tables, encoded ids, JSON
metadata, times and, on PostgreSQL, transaction ids below every later snapshot's xmin.

The shape (:class:`Shape`): five aggregate types; ids that are UUIDs, strings and ints
in turn; one big stream, the rest of nearly equal length; events of all streams
interleaved by version, as many writers would leave them; Invoice and Order events
carrying ``correlation_id`` and ``causation_id`` (each caused by the stream's previous
event); a snapshot in every 50th stream; and relays at several distances behind.

A seeded database is reused: :func:`seed` checks the tables of its prefix and writes
only when they are missing or hold another shape (then it drops them first).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from esrc_core.ids import encode_id

from esrc_sqlalchemy import SqlEventStore

__all__ = ["TYPES", "Seeded", "Shape", "seed"]

TYPES = ("Account", "Invoice", "Investor", "Order", "Shipment")
"""The aggregate types, one stream in five each."""

_CAUSED = frozenset({"Invoice", "Order"})
"""The types whose events carry correlation and causation metadata."""

_NAMES = {
    "Account": ("AccountOpened", "FundsDeposited", "FundsWithdrawn"),
    "Invoice": ("InvoiceIssued", "BidAccepted", "PaymentReceived"),
    "Investor": ("InvestorRegistered", "BidPlaced", "FundsCommitted"),
    "Order": ("OrderPlaced", "LineAdded", "OrderShipped"),
    "Shipment": ("ShipmentBooked", "ParcelScanned", "ShipmentDelivered"),
}

_NAMESPACE = uuid.UUID("6f1c2e0a-5d4b-4c3e-9a8f-7b6d5c4e3f2a")
_BATCH = 20_000
"""Rows per ``executemany`` on SQLite."""
_DAYS = 30
"""The events' times spread over this many days up to the seeding."""


@dataclass(frozen=True)
class Shape:
    """How much to write: ``events`` in ``streams`` streams, of which stream 0 holds
    ``big_stream``; every ``snapshot_every``-th stream has a snapshot."""

    streams: int = 100_000
    events: int = 1_000_000
    big_stream: int = 10_000
    snapshot_every: int = 50

    def __post_init__(self) -> None:
        if self.streams < 2 or self.events < self.big_stream + self.streams - 1:
            raise ValueError(f"{self}: need 2 streams or more and an event for each")

    def key(self, index: int) -> tuple[str, str]:
        """Stream ``index``'s (aggregate type, encoded id): a UUID, a str and an int id
        in turn."""
        aggregate_type = TYPES[index % len(TYPES)]
        kind = index % 3
        if kind == 0:
            return aggregate_type, encode_id(uuid.uuid5(_NAMESPACE, str(index)))
        if kind == 1:
            return aggregate_type, encode_id(f"{aggregate_type.lower()}-{index:07d}")
        return aggregate_type, encode_id(index)

    def lengths(self) -> list[int]:
        """Each stream's number of events."""
        rest = self.events - self.big_stream
        base, extra = divmod(rest, self.streams - 1)
        return [self.big_stream] + [base + (i < extra) for i in range(self.streams - 1)]

    def relays(self) -> dict[str, int]:
        """Each relay name and the position it has published up to."""
        n = self.events
        return {"audit": n - n // 10_000, "mailer": n - n // 100, "projector": n, "search": n // 2}


@dataclass(frozen=True)
class Seeded:
    """A seeded store: its URL, table prefix and shape, and whether this run wrote it
    (``seconds`` spent) or found it already there (``seconds`` is 0)."""

    url: str
    prefix: str
    shape: Shape
    written: bool
    seconds: float


def _event_rows(shape: Shape, now: dt.datetime) -> Iterator[tuple[Any, ...]]:
    """(position, type, id, version, name, data, metadata, created_at) in position
    order: version 1 of every stream, then version 2, and so on."""
    lengths = shape.lengths()
    keys = [shape.key(i) for i in range(shape.streams)]
    order = sorted(range(shape.streams), key=lambda i: -lengths[i])
    start = now - dt.timedelta(days=_DAYS)
    step = dt.timedelta(days=_DAYS) / shape.events
    position = 0
    for version in range(1, lengths[order[0]] + 1):
        for index in order:
            if lengths[index] < version:
                break
            position += 1
            aggregate_type, encoded = keys[index]
            names = _NAMES[aggregate_type]
            name = names[0] if version == 1 else names[1 + version % 2]
            data = b'{"n":%d,"amount":%d}' % (version, position * 37 % 100_000)
            meta = None
            if aggregate_type in _CAUSED:
                first = f"{aggregate_type}/{encoded}/1"
                cause = f"{aggregate_type}/{encoded}/{version - 1}" if version > 1 else None
                fields = {"correlation_id": first}
                if cause is not None:
                    fields["causation_id"] = cause
                meta = json.dumps(fields, separators=(",", ":"))
            yield (
                position,
                aggregate_type,
                encoded,
                version,
                name,
                data,
                meta,
                start + position * step,
            )


def _stamp(value: dt.datetime) -> str:
    """A time as SQLite's ``CURRENT_TIMESTAMP`` writes it (UTC, to the second)."""
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _is_seeded(store: SqlEventStore, shape: Shape) -> bool:
    tables = store.tables
    with store.engine.connect() as conn:
        if not sa.inspect(conn).has_table(tables.checkpoints.name, schema=tables.schema):
            return False
        top = conn.execute(sa.select(sa.func.max(tables.events.c.position))).scalar()
        streams = conn.execute(sa.select(sa.func.count()).select_from(tables.streams)).scalar()
        relays = conn.execute(sa.select(tables.checkpoints.c.name)).scalars().all()
    return top == shape.events and streams == shape.streams and set(relays) == set(shape.relays())


def _seed_sqlite(store: SqlEventStore, shape: Shape, now: dt.datetime) -> None:
    t = store.tables
    lengths = shape.lengths()
    with store.engine.begin() as conn:
        raw: Any = conn.connection.driver_connection
        cursor = raw.cursor()
        rows = _event_rows(shape, now)
        sql = (
            f'INSERT INTO "{t.events.name}" (position, aggregate_type, aggregate_id, version, '
            "name, data, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        while batch := [
            (p, ty, i, v, n, d, m, _stamp(c)) for p, ty, i, v, n, d, m, c in _take(rows, _BATCH)
        ]:
            cursor.executemany(sql, batch)
        cursor.executemany(
            f'INSERT INTO "{t.streams.name}" (aggregate_type, aggregate_id, version) '
            "VALUES (?, ?, ?)",
            [(*shape.key(i), lengths[i]) for i in range(shape.streams)],
        )
        cursor.executemany(
            f'INSERT INTO "{t.snapshots.name}" (aggregate_type, aggregate_id, version, data, '
            "created_at) VALUES (?, ?, ?, ?, ?)",
            [
                (*shape.key(i), lengths[i], b'{"snapshot":true}', _stamp(now))
                for i in range(0, shape.streams, shape.snapshot_every)
            ],
        )
        cursor.executemany(
            f'INSERT INTO "{t.checkpoints.name}" (name, tx_id, position) VALUES (?, 0, ?)',
            list(shape.relays().items()),
        )
        cursor.execute("ANALYZE")


def _seed_postgresql(store: SqlEventStore, shape: Shape, now: dt.datetime) -> None:
    t = store.tables
    lengths = shape.lengths()

    def name(table: sa.Table) -> str:
        return f'"{t.schema}"."{table.name}"' if t.schema else f'"{table.name}"'

    with store.engine.begin() as conn:
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")
            tx_id = cursor.fetchone()[0]
            columns = "position, aggregate_type, aggregate_id, version, name, data, metadata, "
            with cursor.copy(
                f"COPY {name(t.events)} ({columns}created_at, tx_id) FROM STDIN"
            ) as copy:
                for row in _event_rows(shape, now):
                    copy.write_row((*row, tx_id))
            with cursor.copy(
                f"COPY {name(t.streams)} (aggregate_type, aggregate_id, version) FROM STDIN"
            ) as copy:
                for i in range(shape.streams):
                    copy.write_row((*shape.key(i), lengths[i]))
            with cursor.copy(
                f"COPY {name(t.snapshots)} (aggregate_type, aggregate_id, version, data, "
                "created_at) FROM STDIN"
            ) as copy:
                for i in range(0, shape.streams, shape.snapshot_every):
                    copy.write_row((*shape.key(i), lengths[i], b'{"snapshot":true}', now))
            with cursor.copy(
                f"COPY {name(t.checkpoints)} (name, tx_id, position) FROM STDIN"
            ) as copy:
                for relay, position in shape.relays().items():
                    copy.write_row((relay, tx_id, position))
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{name(t.events)}', 'position'), "
                f"{shape.events})"
            )
    with store.engine.connect() as plain:
        conn = plain.execution_options(isolation_level="AUTOCOMMIT")
        for table in (t.events, t.streams, t.snapshots, t.checkpoints):
            conn.exec_driver_sql(f"VACUUM ANALYZE {name(table)}")


def _take(rows: Iterator[tuple[Any, ...]], count: int) -> Iterator[tuple[Any, ...]]:
    for _ in range(count):
        row = next(rows, None)
        if row is None:
            return
        yield row


_SEEDERS: dict[str, Callable[[SqlEventStore, Shape, dt.datetime], None]] = {
    "sqlite": _seed_sqlite,
    "postgresql": _seed_postgresql,
}


def seed(url: str, prefix: str, shape: Shape, say: Callable[[str], None]) -> Seeded:
    """Make the tables of ``prefix`` at ``url`` (SQLite or PostgreSQL) hold ``shape``:
    keep them when they already do, else drop them and write them anew."""
    store = SqlEventStore(url, table_prefix=prefix)
    try:
        kind = store.engine.dialect.name
        if kind not in _SEEDERS:
            raise ValueError(f"seeding {url}: only SQLite and PostgreSQL, not {kind}")
        if _is_seeded(store, shape):
            say(f"reusing the seeded tables {prefix}* ({shape.events:,} events)")
            return Seeded(url, prefix, shape, written=False, seconds=0.0)
    finally:
        store.close()
    say(f"seeding {shape.events:,} events in {shape.streams:,} streams into {prefix}*")
    began = time.perf_counter()
    store = SqlEventStore(url, table_prefix=prefix)
    try:
        store.tables.metadata.drop_all(store.engine)
    finally:
        store.close()
    store = SqlEventStore(url, table_prefix=prefix)
    try:
        store.migrate()  # the tables anew, at the current schema version
        _SEEDERS[kind](store, shape, dt.datetime.now(dt.UTC).replace(microsecond=0))
    finally:
        store.close()
    seconds = time.perf_counter() - began
    say(f"seeded in {seconds:.1f} s")
    return Seeded(url, prefix, shape, written=True, seconds=seconds)
