"""What differs between SQLite, PostgreSQL and MariaDB/MySQL: how an append is written,
how the outbox finds the events it may hand out without ever skipping one, and how a
migration is made safe against concurrent runs.

The outbox order is the pair ``(tx_id, position)`` everywhere; ``tx_id`` is the writing
transaction's id on PostgreSQL and 0 on the other databases, where the position alone
is already commit order. Why each database's order never skips an event:

**PostgreSQL.** Every event row records ``pg_current_xact_id()`` of the transaction that
wrote it, and all rows of one transaction share it. The outbox reads only rows with
``tx_id < pg_snapshot_xmin(pg_current_snapshot())``: xmin is the oldest transaction id
still in progress when the reading statement took its snapshot, so every transaction
with a smaller id has finished - committed (its rows are visible to the read) or
aborted (its rows never will be). Transaction ids are handed out in increasing order
and a transaction gets one before its first write, so any transaction that commits
later has an id >= that xmin: the set of rows below xmin can never grow again. The
outbox walks that final region in ``(tx_id, position)`` order from a checkpoint that is
itself below xmin, so a late commit always sorts after the checkpoint and is returned.
The price: an open writing transaction anywhere in the cluster holds back every event
written after it began, until it ends (latency, never loss).

**MariaDB/MySQL: sequence after commit.** An append takes no lock beyond its own
stream's row (the conditional ``UPDATE`` of the stream's version, or the ``INSERT`` of
a new stream) and inserts its events with ``seq`` 0 (not numbered yet); writers to
different streams never wait for each other. ``position`` (``AUTO_INCREMENT``) is only
a tie-breaker: it is allocated at insert time, not at commit, so it alone is not commit
order. The outbox
order is ``seq``, handed out by the readers: an outbox that finds fewer than ``limit``
numbered events after its checkpoint runs a short *sequencing pass* in a transaction
of its own - lock the single row of the ``sequencer`` table (``SELECT ... FOR
UPDATE``; outboxes take turns on it, appends never touch it), read the committed rows
whose ``seq`` is 0 in position order together with the largest ``seq`` given so far
(one consistent, non-locking read), number them consecutively after it (an ``UPDATE``
by primary key), commit. Then it reads ``seq > checkpoint`` in ``seq`` order; the
checkpoint is a ``seq``.

Why nothing is skipped and the order holds:

- Only committed rows are numbered: the pass finds them with a consistent read, which
  neither sees nor waits for rows of transactions in flight, and updates them by
  primary key, locking only rows no writer holds. Rolled-back rows never get a number.
- A number, once given, never changes, and passes run one at a time (the lock), each
  reading after the previous one committed: the numbers form one total order that only
  grows at its end, the same for every relay and after every restart.
- A row that commits late is numbered by a later pass, above everything numbered
  before it, so a reader past checkpoint c still finds it: nothing is skipped.
- Per stream, version v+1 can only be appended after v committed (the stream row's
  version check), so v was inserted first and has the smaller position: within one
  pass rows are numbered by position, and across passes v is numbered no later than
  v+1. Each stream's versions appear in order.

The price: every event is written once more, by the reader that numbers it, and relays
number events for each other (whichever outbox runs a pass numbers every committed
row). Positions come from one server's ``AUTO_INCREMENT``, monotonic in time; a
multi-writer cluster that interleaves ranges would break the per-stream argument above.

**SQLite.** The database has one writer at a time (``BEGIN IMMEDIATE``), so positions
are allocated and committed in the same order.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from esrc_core.errors import EsrcError, InvalidEventError, StoreUnavailableError
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from esrc_sqlalchemy.notify import Notifier
from esrc_sqlalchemy.schema import (
    RELAY_NAME_MAX,
    Tables,
    Utf8Key,
    stream_key_parameters,
)

__all__ = [
    "EventRow",
    "MySqlDialect",
    "PostgresDialect",
    "SqlDialect",
    "SqliteDialect",
    "dialect_for",
]

EventRow = tuple[str, bytes, str | None]
"""One event to write: name, data, metadata as JSON text (``None`` when empty)."""

_MIGRATION_LOCK_TIMEOUT = 120
_PASS_MIN = 1000
"""Fewest events a MariaDB/MySQL sequencing pass numbers when there are that many, so
that reading in small batches does not run a pass per batch."""
_ROWCOUNT = {"preserve_rowcount": True}  # rowcount of INSERT ... SELECT and CTE statements
_XMIN: sa.ColumnElement[int] = sa.literal_column(
    "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
)


def _digest(*parts: object) -> bytes:
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()


class SqlDialect:
    """The statements common to all databases, and the hooks each one overrides.

    Methods take a :class:`~sqlalchemy.engine.Connection` the store opened; the store
    commits. Nothing here catches driver errors: the store translates them.
    """

    family = ""
    _snapshot: sa.Executable
    """The snapshot upsert (see :meth:`upsert_snapshot`)."""
    _outbox: sa.Executable
    """The outbox query: rows after the checkpoint named ``:name``, ``:limit`` of them."""

    def __init__(self, tables: Tables, engine: Engine) -> None:
        self.tables = tables
        self.engine = engine
        """The engine the store runs its operations on."""
        self.base_engine = engine
        """The engine the store was given or created (migrations run on it)."""
        st, ev, sn = tables.streams, tables.events, tables.snapshots
        key_t, key_i = stream_key_parameters()
        self._stream_version = sa.select(st.c.version).where(
            st.c.aggregate_type == key_t, st.c.aggregate_id == key_i
        )
        self._read_events = tables.stream_events(ev.c.version, ev.c.name, ev.c.data, ev.c.metadata)
        self._latest_snapshot = (
            sa.select(sn.c.version, sn.c.data)
            .where(sn.c.aggregate_type == key_t, sn.c.aggregate_id == key_i)
            .order_by(sn.c.version.desc())
            .limit(1)
        )
        self._insert_stream = st.insert()
        self._insert_events = ev.insert()
        self._claim_stream = (
            st.update()
            .where(
                st.c.aggregate_type == key_t,
                st.c.aggregate_id == key_i,
                st.c.version == sa.bindparam("from_version"),
            )
            .values(version=sa.bindparam("to_version"))
        )
        cp = tables.checkpoints
        self._checkpoint = sa.select(cp.c.tx_id, cp.c.position).where(
            cp.c.name == sa.bindparam("name", type_=Utf8Key(RELAY_NAME_MAX))
        )
        version = sa.bindparam("snap_version", type_=sa.BigInteger)
        self._snapshot_source = sa.select(key_t, key_i, version).where(
            st.c.aggregate_type == key_t, st.c.aggregate_id == key_i, st.c.version >= version
        )

    # --- lifecycle -------------------------------------------------------------------

    @contextmanager
    def migration(self) -> Iterator[Connection]:
        """A connection holding this database's migration lock for the tables, in a
        transaction that commits when the block ends without an error."""
        raise NotImplementedError
        yield  # pragma: no cover

    def prepare(self, conn: Connection) -> None:
        """Check the server once, on the store's first use (version, limits)."""

    # --- writes ----------------------------------------------------------------------

    def begin_write(self, conn: Connection, *, single: bool) -> None:
        """Start a write transaction on ``conn``; ``single`` says the write is one
        statement (atomic by itself). SQLite takes the write lock now; MariaDB/MySQL in
        autocommit mode opens a transaction unless ``single``."""

    def check_rows(self, rows: Sequence[EventRow], doing: str) -> None:
        """Raise :class:`InvalidEventError` for rows this database cannot take."""

    def check_snapshot(self, data: bytes, doing: str) -> None:
        """Raise :class:`InvalidEventError` for snapshot data this database cannot take."""

    def create_stream(
        self, conn: Connection, key: tuple[str, str], rows: Sequence[EventRow]
    ) -> None:
        """Insert a new stream at version ``len(rows)`` and its events; a stream that
        exists raises the driver's unique-violation ``IntegrityError``."""
        t, i = key
        conn.execute(
            self._insert_stream,
            {"aggregate_type": t, "aggregate_id": i, "version": len(rows)},
        )
        self.insert_events(conn, key, 0, rows)

    def extend_stream(
        self, conn: Connection, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> bool:
        """Append ``rows`` if the stream is at ``from_version``; return whether it was
        (nothing is written when it is not): :meth:`claim_stream`, then
        :meth:`insert_events`."""
        if not self.claim_stream(conn, key, from_version, len(rows)):
            return False
        self.insert_events(conn, key, from_version, rows)
        return True

    def claim_stream(
        self, conn: Connection, key: tuple[str, str], from_version: int, count: int
    ) -> bool:
        """Move the stream from ``from_version`` to ``from_version + count`` if it is
        there (a conditional ``UPDATE`` that locks the stream's row until the end of
        the transaction); return whether it was."""
        claimed = conn.execute(
            self._claim_stream,
            {
                "key_type": key[0],
                "key_id": key[1],
                "from_version": from_version,
                "to_version": from_version + count,
            },
        )
        return claimed.rowcount == 1

    def insert_events(
        self, conn: Connection, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> None:
        """Insert ``rows`` at versions ``from_version + 1`` on (executemany)."""
        t, i = key
        conn.execute(
            self._insert_events,
            [
                {
                    "aggregate_type": t,
                    "aggregate_id": i,
                    "version": from_version + n,
                    "name": name,
                    "data": data,
                    "metadata": meta,
                }
                for n, (name, data, meta) in enumerate(rows, 1)
            ],
        )

    def after_write(self, conn: Connection) -> None:
        """Release per-connection state a write left behind (after commit or rollback)."""

    def events_written(self) -> None:
        """Events were appended and committed: wake up outboxes waiting for events
        (PostgreSQL with ``notify=True``). Returns at once."""

    def close(self) -> None:
        """Stop what the dialect runs in the background, if anything."""

    # --- reads -----------------------------------------------------------------------

    def stream_version(self, conn: Connection, key: tuple[str, str]) -> int | None:
        """The stream's version, or ``None`` if it does not exist."""
        found = conn.execute(self._stream_version, {"key_type": key[0], "key_id": key[1]}).scalar()
        return None if found is None else int(found)

    def read_events(
        self, conn: Connection, key: tuple[str, str], from_version: int
    ) -> Sequence[Any] | None:
        """Rows (version, name, data, metadata) after ``from_version`` in version order;
        ``None`` if the stream does not exist. One query."""
        rows = conn.execute(
            self._read_events,
            {"key_type": key[0], "key_id": key[1], "from_version": from_version},
        ).all()
        if not rows:
            return None
        if rows[0][1] is None:
            return []
        return rows

    def latest_snapshot(self, conn: Connection, key: tuple[str, str]) -> Any:
        """The row (version, data) of the newest snapshot, or ``None``. One query."""
        return conn.execute(self._latest_snapshot, {"key_type": key[0], "key_id": key[1]}).first()

    # --- snapshots -------------------------------------------------------------------

    def upsert_snapshot(
        self, conn: Connection, key: tuple[str, str], version: int, data: bytes
    ) -> bool:
        """Store (or replace) the snapshot if the stream exists at ``version`` or later;
        return whether it did. One statement: ``INSERT ... SELECT FROM streams ... ON
        CONFLICT DO UPDATE`` (MariaDB/MySQL: ``ON DUPLICATE KEY UPDATE``)."""
        params = {"key_type": key[0], "key_id": key[1], "snap_version": version}
        params["snap_data"] = data
        return conn.execute(self._snapshot, params, execution_options=_ROWCOUNT).rowcount > 0

    def _snapshot_on_conflict(self, insert: Any) -> sa.Executable:
        """The snapshot upsert for databases with ``ON CONFLICT`` (PostgreSQL and
        SQLite), built with their dialect's ``insert``."""
        sn = self.tables.snapshots
        source = self._snapshot_source.add_columns(sa.bindparam("snap_data", type_=sa.LargeBinary))
        stmt = insert(sn).from_select(["aggregate_type", "aggregate_id", "version", "data"], source)
        result: sa.Executable = stmt.on_conflict_do_update(
            index_elements=[sn.c.aggregate_type, sn.c.aggregate_id, sn.c.version],
            set_={"data": stmt.excluded.data, "created_at": sa.func.current_timestamp()},
        )
        return result

    # --- outbox ----------------------------------------------------------------------

    def outbox_rows(
        self, conn: Connection, name: str, limit: int
    ) -> tuple[Sequence[Any], int | None]:
        """Up to ``limit`` rows (tx_id, ord, position, aggregate_type, aggregate_id,
        version, name, data, metadata) after relay ``name``'s checkpoint, first in
        outbox order - the order key is (tx_id, ord); ord is the position except on
        MariaDB/MySQL, where it is the ``seq`` -
        only from transactions that can no longer change the order; and the largest
        ``tx_id`` of committed events held back behind transactions in progress
        (PostgreSQL; ``None`` when there are none, and always elsewhere). One query."""
        return conn.execute(self._outbox, {"name": name, "limit": limit}).all(), None

    def _outbox_by_position(self) -> sa.Select[Any]:
        """The outbox query where position order is commit order (tx_id is 0)."""
        return self._outbox_ordered_by(self.tables.events.c.position)

    def _outbox_ordered_by(self, order: sa.ColumnElement[int]) -> sa.Select[Any]:
        """The outbox query with ``order`` as ``ord`` and tx_id 0: the rows after relay
        ``:name``'s checkpoint (a value of ``order``), first ``:limit`` of them."""
        ev, cp = self.tables.events, self.tables.checkpoints
        checkpoint = (
            sa.select(sa.func.coalesce(sa.func.max(cp.c.position), 0))
            .where(cp.c.name == sa.bindparam("name", type_=Utf8Key(RELAY_NAME_MAX)))
            .scalar_subquery()
        )
        return (
            sa.select(
                sa.literal(0, sa.BigInteger).label("tx_id"),
                order.label("ord"),
                ev.c.position,
                ev.c.aggregate_type,
                ev.c.aggregate_id,
                ev.c.version,
                ev.c.name,
                ev.c.data,
                ev.c.metadata,
                sa.null().label("held"),
            )
            .where(order > checkpoint)
            .order_by(order)
            .limit(sa.bindparam("limit", type_=sa.Integer))
        )

    def outbox_keys(self, conn: Connection, positions: Sequence[int]) -> dict[int, tuple[int, int]]:
        """The outbox order key (tx_id, position) of each stored event among
        ``positions``; positions that were never stored are missing from the result."""
        ev = self.tables.events
        tx = ev.c.tx_id if "tx_id" in ev.c else sa.literal(0, sa.BigInteger)
        stmt = sa.select(tx, ev.c.position).where(
            ev.c.position.in_(sa.bindparam("positions", expanding=True))
        )
        found = conn.execute(stmt, {"positions": list(positions)}).all()
        return {int(p): (int(t), int(p)) for t, p in found}

    def checkpoint(self, conn: Connection, name: str) -> tuple[int, int]:
        """Relay ``name``'s checkpoint (tx_id, position); (0, 0) before the first mark."""
        row = conn.execute(self._checkpoint, {"name": name}).first()
        return (0, 0) if row is None else (int(row.tx_id), int(row.position))

    def mark(self, conn: Connection, name: str, key: tuple[int, int]) -> None:
        """Move relay ``name``'s checkpoint forward to ``key``; never backwards."""
        raise NotImplementedError


def _on_psycopg(
    conn: Connection, sql: str, params: dict[str, Any], *, fetch: bool = True
) -> tuple[list[tuple[Any, ...]], int]:
    """Run ``sql`` (psycopg placeholders) on ``conn``'s psycopg connection; return
    every row as a tuple (none unless ``fetch``; results in binary format) and the
    row count. The hot paths use it to skip SQLAlchemy's statement and row handling.

    Inside a transaction the caller commits through ``conn`` as usual (a SQLAlchemy
    transaction is begun if none is). A driver error is raised as SQLAlchemy's
    ``DBAPIError``, so the store translates it as any other, and a broken connection
    is invalidated (not returned to the pool)."""
    import psycopg

    driver: Any = conn.connection.driver_connection
    if not driver.autocommit and not conn.in_transaction():
        conn.begin()
    try:
        with driver.cursor(binary=True) as cursor:
            cursor.execute(sql, params)
            rows: list[tuple[Any, ...]] = cursor.fetchall() if fetch else []
            return rows, cursor.rowcount
    except psycopg.Error as err:
        if driver.broken:
            conn.invalidate(err)
        raise sa.exc.DBAPIError.instance(
            sql, params, err, psycopg.Error, hide_parameters=True
        ) from err


class PostgresDialect(SqlDialect):
    """PostgreSQL 13+ with psycopg 3.

    Operations run in autocommit mode and each write is a single statement (a
    data-modifying CTE that claims or creates the stream and inserts every event from
    arrays with ``unnest``), so an append is one round trip and atomic by itself. The
    outbox reads below ``pg_snapshot_xmin`` (see the module docstring).
    """

    family = "postgresql"

    def __init__(self, tables: Tables, engine: Engine, *, notify: bool = False) -> None:
        super().__init__(tables, engine.execution_options(isolation_level="AUTOCOMMIT"))
        self.base_engine = engine
        self.notify_enabled = notify
        schema = tables.metadata.schema
        prefix = tables.streams.name[: -len("streams")]
        self.channel = "esrc_" + _digest(schema, prefix).hex()
        """The LISTEN/NOTIFY channel appends of these tables notify on."""
        self._notifier = Notifier(self.engine, self.channel) if notify else None
        self._lock_key = int.from_bytes(_digest("migrate", schema, prefix), "big", signed=True)
        prep = engine.dialect.identifier_preparer
        st = prep.format_table(tables.streams)
        ev = prep.format_table(tables.events)
        cp = prep.format_table(tables.checkpoints)
        # Arrays go in binary format (%(...)b): text format escapes every byte of a
        # bytea element in Python.
        unnest = (
            "unnest(CAST(%(names)b AS text[]), CAST(%(datas)b AS bytea[]), "
            "CAST(%(metas)b AS text[])) WITH ORDINALITY AS e(name, data, metadata, ord)"
        )
        insert = (
            f"INSERT INTO {ev} (aggregate_type, aggregate_id, version, name, data, metadata, "
            "tx_id) SELECT %(aggregate_type)s, %(aggregate_id)s, {base} + e.ord, e.name, "
            "e.data, e.metadata, pg_current_xact_id()::text::bigint "
            f"FROM {{source}}, {unnest} ORDER BY e.ord"
        )
        self._create = (
            f"WITH created AS (INSERT INTO {st} (aggregate_type, aggregate_id, version) "
            "VALUES (%(aggregate_type)s, %(aggregate_id)s, %(to_version)s) RETURNING version) "
            + insert.format(base="0", source="created")
        )
        self._append = (
            f"WITH claimed AS (UPDATE {st} SET version = %(to_version)s "
            "WHERE aggregate_type = %(aggregate_type)s AND aggregate_id = %(aggregate_id)s "
            "AND version = %(from_version)s RETURNING version) "
            + insert.format(base="%(from_version)s", source="claimed")
        )
        held = f"SELECT MAX(tx_id) FROM {ev} WHERE tx_id >= (SELECT xmin FROM x)"
        self._outbox_sql = (
            "WITH cp AS (SELECT COALESCE(MAX(tx_id), 0) AS tx_id, "
            f"COALESCE(MAX(position), 0) AS position FROM {cp} WHERE name = %(name)s), "
            "x AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin) "
            "SELECT e.tx_id, e.position, e.position, e.aggregate_type, e.aggregate_id, "
            f"e.version, e.name, e.data, e.metadata, ({held}) FROM {ev} e "
            "WHERE (e.tx_id, e.position) > ((SELECT tx_id FROM cp), (SELECT position FROM cp)) "
            "AND e.tx_id < (SELECT xmin FROM x) "
            "ORDER BY e.tx_id, e.position LIMIT %(limit)s"
        )
        """The outbox query, run on psycopg directly (binary results, plain tuples): the
        ready rows in index order, each with the largest held-back ``tx_id`` last."""
        self._held_sql = (
            "WITH x AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin) "
            + held
        )
        """The largest held-back ``tx_id`` alone, for when no row is ready."""
        self._xmin = sa.select(_XMIN)
        self._insert_only = insert.format(base="%(from_version)s", source="(SELECT 1) one")
        sn = prep.format_table(tables.snapshots)
        self._read_sql = (
            f"SELECT e.version, e.name, e.data, e.metadata FROM {st} s LEFT JOIN {ev} e "
            "ON e.aggregate_type = s.aggregate_type AND e.aggregate_id = s.aggregate_id "
            "AND e.version > %(from_version)s "
            "WHERE s.aggregate_type = %(key_type)s AND s.aggregate_id = %(key_id)s "
            "ORDER BY e.version"
        )
        self._snapshot_sql = (
            f"SELECT version, data FROM {sn} WHERE aggregate_type = %(key_type)s "
            "AND aggregate_id = %(key_id)s ORDER BY version DESC LIMIT 1"
        )
        self._mark_sql = (
            f"INSERT INTO {cp} AS c (name, tx_id, position) "
            "VALUES (%(name)s, %(tx_id)s, %(position)s) ON CONFLICT (name) DO UPDATE "
            "SET tx_id = excluded.tx_id, position = excluded.position, "
            "updated_at = CURRENT_TIMESTAMP "
            "WHERE (c.tx_id, c.position) < (excluded.tx_id, excluded.position)"
        )
        self._snapshot = self._snapshot_on_conflict(postgresql.insert)

    @contextmanager
    def migration(self) -> Iterator[Connection]:
        """A transaction holding ``pg_advisory_xact_lock`` for these tables (released
        at commit); creates the schema if one was given."""
        with self.base_engine.connect() as conn:
            conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(self._lock_key)))
                schema = self.tables.metadata.schema
                if schema is not None:
                    conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
                yield conn

    def prepare(self, conn: Connection) -> None:
        """Require PostgreSQL 13 or later (``pg_current_xact_id``)."""
        version = conn.dialect.server_version_info or (0,)
        if version < (13,):
            shown = ".".join(str(v) for v in version)
            raise EsrcError(f"the SQL event store needs PostgreSQL 13 or later, found {shown}")

    @staticmethod
    def _arrays(rows: Sequence[EventRow]) -> dict[str, Any]:
        return {
            "names": [r[0] for r in rows],
            "datas": [r[1] for r in rows],
            "metas": [r[2] for r in rows],
        }

    def create_stream(
        self, conn: Connection, key: tuple[str, str], rows: Sequence[EventRow]
    ) -> None:
        """One statement: insert the stream row and, from it, every event."""
        params = self._arrays(rows)
        params.update(aggregate_type=key[0], aggregate_id=key[1], to_version=len(rows))
        _on_psycopg(conn, self._create, params, fetch=False)

    def extend_stream(
        self, conn: Connection, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> bool:
        """One statement: claim the stream at ``from_version`` and insert the events
        only if the claim matched a row."""
        params = self._arrays(rows)
        params.update(
            aggregate_type=key[0],
            aggregate_id=key[1],
            from_version=from_version,
            to_version=from_version + len(rows),
        )
        return _on_psycopg(conn, self._append, params, fetch=False)[1] == len(rows)

    def insert_events(
        self, conn: Connection, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> None:
        """Insert ``rows`` (with this transaction's id) in one statement; appends use
        :meth:`extend_stream`, which claims the stream in the same statement."""
        params = self._arrays(rows)
        params.update(aggregate_type=key[0], aggregate_id=key[1], from_version=from_version)
        _on_psycopg(conn, self._insert_only, params, fetch=False)

    def read_events(
        self, conn: Connection, key: tuple[str, str], from_version: int
    ) -> Sequence[Any] | None:
        """Like :meth:`SqlDialect.read_events`, on psycopg directly (plain tuples)."""
        params = {"key_type": key[0], "key_id": key[1], "from_version": from_version}
        rows, _ = _on_psycopg(conn, self._read_sql, params)
        if not rows:
            return None
        return [] if rows[0][1] is None else rows

    def latest_snapshot(self, conn: Connection, key: tuple[str, str]) -> Any:
        """Like :meth:`SqlDialect.latest_snapshot`, on psycopg directly."""
        rows, _ = _on_psycopg(conn, self._snapshot_sql, {"key_type": key[0], "key_id": key[1]})
        return rows[0] if rows else None

    def events_written(self) -> None:
        """Have the :class:`~esrc_sqlalchemy.notify.Notifier` send a ``pg_notify`` on
        :attr:`channel` soon: after the append committed and outside it, so appends
        neither wait on the notification queue's commit lock nor pay a round trip."""
        if self._notifier is not None:
            self._notifier.poke()

    def close(self) -> None:
        """Stop the notifier thread, if there is one."""
        if self._notifier is not None:
            self._notifier.close()

    def outbox_rows(
        self, conn: Connection, name: str, limit: int
    ) -> tuple[Sequence[Any], int | None]:
        """Rows above the checkpoint and below xmin, in (tx_id, position) order, and
        the largest ``tx_id`` at or above xmin (events committed but held back). One
        query (a second, small one when no row is ready), fetched from psycopg in
        binary format as plain tuples."""
        rows, _ = _on_psycopg(conn, self._outbox_sql, {"name": name, "limit": limit})
        if not rows:
            return [], _on_psycopg(conn, self._held_sql, {})[0][0][0]
        return rows, rows[0][-1]

    def current_xmin(self, conn: Connection) -> int:
        """``pg_snapshot_xmin(pg_current_snapshot())``: every transaction with a
        smaller id has ended."""
        return int(conn.execute(self._xmin).scalar_one())

    def outbox_keys(self, conn: Connection, positions: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Like :meth:`SqlDialect.outbox_keys`, but only for events below xmin: the
        outbox has not handed out the others yet."""
        ev = self.tables.events
        stmt = sa.select(ev.c.tx_id, ev.c.position).where(
            ev.c.position.in_(sa.bindparam("positions", expanding=True)),
            ev.c.tx_id < _XMIN,
        )
        found = conn.execute(stmt, {"positions": list(positions)}).all()
        return {int(p): (int(t), int(p)) for t, p in found}

    def mark(self, conn: Connection, name: str, key: tuple[int, int]) -> None:
        """Upsert the checkpoint where (tx_id, position) grows (on psycopg directly)."""
        params = {"name": name, "tx_id": key[0], "position": key[1]}
        _on_psycopg(conn, self._mark_sql, params, fetch=False)


class MySqlDialect(SqlDialect):
    """MariaDB 10.5+ / MySQL 8 with PyMySQL.

    An append claims its stream and inserts its events with ``seq`` 0; the outbox
    numbers committed events in sequencing passes (see the module docstring). PyMySQL
    sends bytes hex-encoded, so a row must fit in ``max_allowed_packet`` twice over;
    payloads larger than that are first sent in pieces into a session variable and
    inserted from it. A payload larger than ``max_allowed_packet`` itself cannot be
    stored or read and is refused with :class:`InvalidEventError` before anything is
    written.
    """

    family = "mysql"
    _ROW_OVERHEAD = 4096

    def __init__(self, tables: Tables, engine: Engine) -> None:
        super().__init__(tables, engine)
        assert tables.sequencer is not None
        sequencer, ev = tables.sequencer, tables.events
        self._lock_sequencer = (
            sa.select(sequencer.c.id).where(sequencer.c.id == 1).with_for_update()
        )
        unnumbered = (
            sa.select(ev.c.position)
            .where(ev.c.seq == 0)
            .order_by(ev.c.position)
            .limit(sa.bindparam("limit", type_=sa.Integer))
        )
        top = sa.select(sa.func.coalesce(sa.func.max(ev.c.seq), 0)).scalar_subquery()
        self._unnumbered_after = unnumbered.add_columns(top.label("top"))
        cpt = tables.checkpoints
        checkpoint = (
            sa.select(sa.func.coalesce(sa.func.max(cpt.c.position), 0))
            .where(cpt.c.name == sa.bindparam("name", type_=Utf8Key(RELAY_NAME_MAX)))
            .scalar_subquery()
        )
        self._probe = sa.select(
            top.label("top"),
            sa.select(sa.func.min(ev.c.position)).where(ev.c.seq == 0).scalar_subquery(),
            checkpoint,
        )
        """The largest ``seq``, the first unnumbered position (or NULL) and relay
        ``:name``'s checkpoint, in one read."""
        self._events_table = engine.dialect.identifier_preparer.format_table(ev)
        prefix = tables.streams.name[: -len("streams")]
        self._lock_name = "esrc:" + _digest(engine.url.database, prefix).hex()
        self.max_packet = 16 * 1024 * 1024
        """The server's ``max_allowed_packet``, read on first use."""
        cpt = tables.checkpoints
        ins = mysql.insert(cpt)
        self._mark = ins.on_duplicate_key_update(
            [
                (
                    "updated_at",
                    sa.func.if_(
                        ins.inserted.position > cpt.c.position,
                        sa.func.current_timestamp(),
                        cpt.c.updated_at,
                    ),
                ),
                ("position", sa.func.greatest(cpt.c.position, ins.inserted.position)),
            ]
        )
        self._outbox = self._outbox_ordered_by(ev.c.seq)

    def _snapshot_statement(self, data: sa.ColumnElement[Any]) -> sa.Executable:
        sins = mysql.insert(self.tables.snapshots).from_select(
            ["aggregate_type", "aggregate_id", "version", "data"],
            self._snapshot_source.add_columns(data),
        )
        return sins.on_duplicate_key_update(
            data=sins.inserted.data, created_at=sa.func.current_timestamp()
        )

    @contextmanager
    def migration(self) -> Iterator[Connection]:
        """A connection holding ``GET_LOCK`` for these tables (DDL commits by itself on
        MariaDB/MySQL; the steps are idempotent)."""
        with self.base_engine.connect() as conn:
            got = conn.execute(
                sa.text("SELECT GET_LOCK(:name, :timeout)"),
                {"name": self._lock_name, "timeout": _MIGRATION_LOCK_TIMEOUT},
            ).scalar()
            if got != 1:
                raise StoreUnavailableError(
                    f"migrate {self.tables.streams.name}: another migration held the lock "
                    f"for {_MIGRATION_LOCK_TIMEOUT}s"
                )
            try:
                yield conn
                conn.commit()
            finally:
                # A lost connection has already dropped the lock with its session.
                with contextlib.suppress(sa.exc.DBAPIError):
                    conn.rollback()
                    conn.execute(sa.text("DO RELEASE_LOCK(:name)"), {"name": self._lock_name})
                    conn.commit()

    def begin_write(self, conn: Connection, *, single: bool) -> None:
        """``START TRANSACTION`` when the connection is in autocommit mode, unless
        ``single``; a connection that is not (an application's engine) has already
        begun one implicitly."""
        dbapi: Any = conn.connection.dbapi_connection
        if not single and dbapi.get_autocommit():
            conn.exec_driver_sql("START TRANSACTION")

    def prepare(self, conn: Connection) -> None:
        """Read ``max_allowed_packet``."""
        found = conn.execute(sa.text("SELECT @@max_allowed_packet")).scalar()
        self.max_packet = int(found or self.max_packet)

    def _check(self, data: bytes, text_bytes: int, what: str, doing: str) -> None:
        limit = self.max_packet
        if len(data) + 2 * text_bytes + self._ROW_OVERHEAD > limit:
            raise InvalidEventError(
                f"{doing}: {what} is {len(data)} bytes, too large for this MariaDB/MySQL "
                f"server's max_allowed_packet of {limit} bytes; raise it on the server "
                f"(SET GLOBAL max_allowed_packet = ...) above the largest payload plus 1 MiB"
            )

    def check_rows(self, rows: Sequence[EventRow], doing: str) -> None:
        """Every row must fit in one ``max_allowed_packet``."""
        for index, (name, data, meta) in enumerate(rows):
            text_bytes = len(name) * 4 + len(meta or "")
            self._check(data, text_bytes, f"event {index} ({name})", doing)

    def check_snapshot(self, data: bytes, doing: str) -> None:
        """The snapshot must fit in one ``max_allowed_packet``."""
        self._check(data, 0, "the snapshot", doing)

    def _inline(self, data: bytes, text_bytes: int) -> bool:
        return 2 * len(data) + 2 * text_bytes + self._ROW_OVERHEAD <= self.max_packet

    def _stage(self, conn: Connection, slot: int, data: bytes) -> sa.ColumnElement[Any]:
        """Send ``data`` in pieces into the session variable ``@esrc_data<slot>``."""
        var = f"@esrc_data{slot}"
        step = max(64 * 1024, (self.max_packet - self._ROW_OVERHEAD) // 2)
        conn.execute(sa.text(f"SET {var} = :piece"), {"piece": data[:step]})
        for start in range(step, len(data), step):
            conn.execute(
                sa.text(f"SET {var} = CONCAT({var}, :piece)"),
                {"piece": data[start : start + step]},
            )
        conn.info.setdefault("esrc_staged", []).append(var)
        return sa.literal_column(var)

    def after_write(self, conn: Connection) -> None:
        """Free the session variables large payloads were staged in."""
        staged = conn.info.pop("esrc_staged", None)
        if staged:
            conn.execute(sa.text("SET " + ", ".join(f"{v} = NULL" for v in staged)))
            conn.commit()

    def insert_events(
        self, conn: Connection, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> None:
        """Stage large payloads, then insert ``rows`` with ``seq`` 0 (executemany
        of the small ones, PyMySQL sends them as multi-row ``INSERT``)."""
        t, i = key
        staged: dict[int, sa.ColumnElement[Any]] = {}
        for index, (name, data, meta) in enumerate(rows):
            if not self._inline(data, len(name) * 4 + len(meta or "")):
                staged[index] = self._stage(conn, index, data)
        batch: list[dict[str, Any]] = []
        for index, (name, data, meta) in enumerate(rows):
            params = {
                "aggregate_type": t,
                "aggregate_id": i,
                "version": from_version + index + 1,
                "name": name,
                "metadata": meta,
            }
            if index in staged:
                if batch:
                    conn.execute(self._insert_events, batch)
                    batch = []
                conn.execute(self._insert_events.values(data=staged[index]), params)
            else:
                params["data"] = data
                batch.append(params)
        if batch:
            conn.execute(self._insert_events, batch)

    def upsert_snapshot(
        self, conn: Connection, key: tuple[str, str], version: int, data: bytes
    ) -> bool:
        """``INSERT ... SELECT FROM streams ... ON DUPLICATE KEY UPDATE``."""
        params: dict[str, Any] = {
            "key_type": key[0],
            "key_id": key[1],
            "snap_version": version,
        }
        if self._inline(data, 0):
            stmt = self._snapshot_statement(sa.bindparam("snap_data", type_=sa.LargeBinary))
            params["snap_data"] = data
        else:
            stmt = self._snapshot_statement(self._stage(conn, 0, data))
        return conn.execute(stmt, params, execution_options=_ROWCOUNT).rowcount > 0

    def outbox_rows(
        self, conn: Connection, name: str, limit: int
    ) -> tuple[Sequence[Any], int | None]:
        """Rows after the checkpoint in ``seq`` order. When fewer than ``limit`` came
        back: if unnumbered events are waiting, number them (:meth:`sequence`) and read
        again (whether this pass or another outbox's numbered them); else read again
        only if numbered events beyond those rows appeared since the read."""
        params = {"name": name, "limit": limit}
        rows = conn.execute(self._outbox, params).all()
        if len(rows) < limit:
            conn.commit()
            top, waiting, checkpoint = conn.execute(self._probe, {"name": name}).one()
            beyond = int(top) > (int(rows[-1].ord) if rows else int(checkpoint))
            if waiting is not None:
                # Read again even if this pass numbered nothing: another outbox's pass
                # may have numbered the waiting events after the probe above.
                self.sequence(conn, max(limit, _PASS_MIN))
                beyond = True
            if beyond:
                rows = conn.execute(self._outbox, params).all()
        return rows, None

    def sequence(self, conn: Connection, most: int) -> int:
        """Number up to ``most`` committed events that have no ``seq`` yet (0), in position
        order, after the largest ``seq`` given so far; return how many it numbered.

        In a transaction of its own: lock the sequencer row, read the unnumbered
        committed rows and the largest ``seq`` in one consistent read (taken after the
        lock, so it sees every earlier pass), update them by primary key, commit. It
        never waits for, or sees, an append in flight; it waits only for another pass.
        """
        conn.commit()
        self.begin_write(conn, single=False)
        try:
            conn.execute(self._lock_sequencer)
            found = conn.execute(self._unnumbered_after, {"limit": most}).all()
            if found:
                top = int(found[0].top)
                listed = ",".join(str(int(row.position)) for row in found)
                numbered = conn.exec_driver_sql(
                    f"UPDATE {self._events_table} SET seq = {top} + FIELD(position, {listed}) "
                    f"WHERE position IN ({listed})"
                ).rowcount
                if numbered != len(found):
                    raise EsrcError(
                        f"number events of {self._events_table}: {numbered} of "
                        f"{len(found)} rows updated; another pass ran without the lock"
                    )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return len(found)

    def outbox_keys(self, conn: Connection, positions: Sequence[int]) -> dict[int, tuple[int, int]]:
        """The outbox order key (0, seq) of each numbered event among ``positions``."""
        ev = self.tables.events
        stmt = sa.select(ev.c.seq, ev.c.position).where(
            ev.c.position.in_(sa.bindparam("positions", expanding=True)),
            ev.c.seq > 0,
        )
        found = conn.execute(stmt, {"positions": list(positions)}).all()
        return {int(p): (0, int(s)) for s, p in found}

    def mark(self, conn: Connection, name: str, key: tuple[int, int]) -> None:
        """Upsert the checkpoint (a ``seq``, kept in the position column) with
        ``GREATEST``."""
        conn.execute(self._mark, {"name": name, "tx_id": 0, "position": key[1]})


class SqliteDialect(SqlDialect):
    """SQLite 3.24+ (the standard library's driver).

    Writes start with ``BEGIN IMMEDIATE``, so writers queue for the database lock
    instead of failing to upgrade a read lock; one writer at a time makes position
    order commit order.
    """

    family = "sqlite"

    def __init__(self, tables: Tables, engine: Engine) -> None:
        super().__init__(tables, engine)
        cpt = tables.checkpoints
        ins = sqlite.insert(cpt)
        self._mark = ins.on_conflict_do_update(
            index_elements=[cpt.c.name],
            set_={
                "position": ins.excluded.position,
                "updated_at": sa.func.current_timestamp(),
            },
            where=cpt.c.position < ins.excluded.position,
        )
        self._outbox = self._outbox_by_position()
        self._snapshot = self._snapshot_on_conflict(sqlite.insert)

    @contextmanager
    def migration(self) -> Iterator[Connection]:
        """A ``BEGIN IMMEDIATE`` transaction (DDL is transactional in SQLite)."""
        with self.base_engine.connect() as conn:
            self.begin_write(conn, single=False)
            yield conn
            conn.commit()

    def begin_write(self, conn: Connection, *, single: bool) -> None:
        """``BEGIN IMMEDIATE`` unless the driver already opened a transaction."""
        dbapi = conn.connection.dbapi_connection
        if not getattr(dbapi, "in_transaction", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def mark(self, conn: Connection, name: str, key: tuple[int, int]) -> None:
        """Upsert the checkpoint where the position grows."""
        conn.execute(self._mark, {"name": name, "tx_id": 0, "position": key[1]})


def dialect_for(family: str, tables: Tables, engine: Engine, *, notify: bool) -> SqlDialect:
    """The :class:`SqlDialect` for a database family."""
    if family == "postgresql":
        return PostgresDialect(tables, engine, notify=notify)
    if family == "mysql":
        return MySqlDialect(tables, engine)
    return SqliteDialect(tables, engine)
