"""PostgreSQL 13+ through psycopg 3: everything the SQL store does differently on it.

URLs: ``postgresql://...`` and ``postgresql+psycopg://...``, naming the database
(``postgresql://host/dbname``; libpq would pick a default one). Operations run in
autocommit mode and each write is a single statement (a data-modifying CTE that claims
or creates the stream and inserts every event from arrays with ``unnest``), so an
append is one round trip and atomic by itself. The statements of the hot paths are
written here by hand and run on psycopg directly (:func:`_on_psycopg`); each exists
once.

**Why the outbox never skips an event.** Every event row records
``pg_current_xact_id()`` of the transaction that wrote it, and all rows of one
transaction share it. The outbox reads only rows with
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

Relay locks are session advisory locks (``pg_try_advisory_lock``); migrations take
``pg_advisory_xact_lock``.

With ``notify=True`` appends wake outboxes that ``LISTEN`` on the store's channel. An
append must not pay for the notification: a ``NOTIFY`` inside the appending
transaction takes a cluster-wide lock at commit, so appends would commit one at a
time, and a ``pg_notify`` in a transaction of its own after the append would cost the
writer a second round trip. A :class:`~esrc_sqlalchemy.notify.Notifier` sends one
``pg_notify`` for any number of appends from a thread of the store's instead.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any, cast

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection, Engine

from esrc_sqlalchemy.dialects._core import snapshot_upsert_on_conflict, upsert_snapshot_with
from esrc_sqlalchemy.dialects.base import (
    LAST_VERSION,
    SERVER_POOL,
    EventRow,
    OutboxListener,
    OutboxRow,
    RelayLockHolder,
    SessionLockHolder,
    SqlDialect,
    StreamPage,
    TestingHooks,
    digest,
    driver_connection,
    stream_page,
)
from esrc_sqlalchemy.errors import StoreConfigError
from esrc_sqlalchemy.notify import Notifier
from esrc_sqlalchemy.schema import Ddl, Tables

__all__ = ["PostgresDialect", "channel_notifier"]

"""Connections kept open per store: SQLAlchemy's default (5, and closing every
connection beyond it when returned) makes busy threads reconnect all the time."""
_XMIN_SQL = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
"""The oldest transaction id still in progress when the statement took its snapshot:
every argument that the outbox never skips an event rests on this one expression."""
_XMIN: sa.ColumnElement[int] = sa.literal_column(_XMIN_SQL)
_NOTIFY = sa.text("SELECT pg_notify(:channel, '')")


def _sqlstate(err: BaseException) -> str | None:
    orig = getattr(err, "orig", None)
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else None


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

    driver: Any = driver_connection(conn.connection)
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


def _send_notification(engine: Engine, channel: str) -> None:
    """One ``pg_notify`` on ``channel``, on a connection from ``engine``'s pool."""
    with engine.connect() as conn:
        conn.execute(_NOTIFY, {"channel": channel})


def channel_notifier(engine: Engine, channel: str) -> Notifier:
    """A :class:`~esrc_sqlalchemy.notify.Notifier` that sends ``pg_notify(channel, '')``
    on a connection from ``engine`` (in autocommit mode). The notifier's thread cannot
    use an asyncio engine (its connections belong to the event loop): for one, it sends
    on a sync psycopg connection of its own to the same server."""
    if getattr(engine.dialect, "is_async", False):
        engine = sa.create_engine(
            engine.url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=0
        )
    return Notifier(functools.partial(_send_notification, engine, channel), channel)


class _ChannelListener:
    """A psycopg connection of its own, detached from the pool, that ``LISTEN``s on a
    channel."""

    def __init__(self, engine: Engine, channel: str) -> None:
        raw = engine.raw_connection()
        driver: Any = driver_connection(raw)
        raw.detach()
        try:
            driver.autocommit = True
            driver.execute(f'LISTEN "{channel}"')
        except BaseException:
            raw.close()
            raise
        self._conn: Any = driver

    def wait(self, timeout: float) -> bool:
        for _ in self._conn.notifies(timeout=timeout, stop_after=1):
            return True
        return False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


class _AdvisoryLock(SessionLockHolder):
    """A session advisory lock on the pair of keys ``keys``."""

    def __init__(self, engine: Engine, keys: tuple[int, int]) -> None:
        super().__init__(engine)
        self._keys = keys

    def _take(self, conn: Any) -> bool:
        conn.autocommit = True
        return bool(conn.execute("SELECT pg_try_advisory_lock(%s, %s)", self._keys).fetchone()[0])

    def _check(self, conn: Any) -> bool:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND granted AND classid = %s "
                "AND objid = %s AND objsubid = 2",
                self._keys,
            )
            row = cursor.fetchone()
        return bool(row and row[0])

    def _session(self, conn: Any) -> int:
        return int(conn.info.backend_pid)

    def _unlock(self, conn: Any) -> None:
        if not conn.closed and not conn.broken:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", self._keys)


class PostgresTesting(TestingHooks):
    """Backend pids: ``pg_backend_pid()``, ``pg_terminate_backend``, ``pg_stat_activity``."""

    def session_id(self, conn: Connection) -> int:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())

    def kill_session(self, conn: Connection, session: int) -> None:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": session})

    def sessions_waiting(self, conn: Connection, pattern: str) -> list[int]:
        found = conn.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE :pattern AND pid <> pg_backend_pid()"
            ),
            {"pattern": pattern},
        ).scalars()
        return [int(pid) for pid in found]

    def kill_sessions_of(self, conn: Connection, application_name: str) -> int:
        ended = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": application_name},
        ).scalar_one()
        return int(ended)


def _tx_columns(prefix: str) -> list[Any]:
    return [
        sa.Column("tx_id", sa.BigInteger, nullable=False),
        sa.Index(f"{prefix}events_tx_order", "tx_id", "position"),
    ]


class PostgresDialect(SqlDialect):
    """PostgreSQL 13+ with psycopg 3: one-statement appends, an outbox below xmin."""

    name = "postgresql"
    title = "PostgreSQL"
    url_schemes = ("postgresql",)
    default_driver = "psycopg"
    drivers = frozenset({"psycopg"})
    driver_module = "psycopg"
    async_drivers = MappingProxyType({"psycopg": "psycopg", "psycopg_async": "psycopg"})
    async_extra = "postgresql"
    extra = "postgresql"
    ddl = Ddl(
        key=sa.String,
        position=sa.BigInteger(),
        blob=sa.LargeBinary(),
        long_text=sa.Text(),
        event_columns=_tx_columns,
    )
    supports_schema = True
    supports_notify = True
    requires_database = True
    testing = PostgresTesting()

    @classmethod
    def engine_options(cls, url: URL, connect_timeout: float) -> dict[str, Any]:
        """A pool of up to 16 open connections (30 at most) and ``connect_timeout``
        (libpq rounds it up to whole seconds, at least 2)."""
        return {
            **SERVER_POOL,
            "connect_args": {"connect_timeout": max(2, math.ceil(connect_timeout))},
        }

    @classmethod
    def application_engine_options(
        cls, url: URL, *, connect_timeout: float, lock_timeout: float
    ) -> dict[str, Any]:
        """``connect_timeout`` (whole seconds, at least 2)."""
        return {"connect_args": {"connect_timeout": max(2, math.ceil(connect_timeout))}}

    @classmethod
    def insert_ignoring_duplicates(cls, table: sa.Table) -> sa.Insert:
        """``INSERT ... ON CONFLICT DO NOTHING``."""
        return postgresql.insert(table).on_conflict_do_nothing()

    @classmethod
    def is_deadlock(cls, err: BaseException) -> bool:
        """SQLSTATE 40P01 (deadlock) or 40001 (serialization failure)."""
        return _sqlstate(err) in {"40P01", "40001"}

    @classmethod
    def is_unique_violation(cls, err: BaseException) -> bool:
        """SQLSTATE 23505."""
        return isinstance(err, sqlalchemy.exc.IntegrityError) and _sqlstate(err) == "23505"

    def __init__(self, tables: Tables, engine: Engine, *, notify: bool = False) -> None:
        super().__init__(tables, engine.execution_options(isolation_level="AUTOCOMMIT"))
        self.base_engine = engine
        self.notify_enabled = notify
        """Whether appends notify :attr:`channel`."""
        schema, prefix = tables.schema, tables.prefix
        self.channel = "esrc_" + digest(schema, prefix).hex()
        """The LISTEN/NOTIFY channel appends of these tables notify on."""
        self._notifier = channel_notifier(self.engine, self.channel) if notify else None
        self._lock_key = int.from_bytes(digest("migrate", schema, prefix), "big", signed=True)
        prep = engine.dialect.identifier_preparer
        st = prep.format_table(tables.streams)
        ev = prep.format_table(tables.events)
        cp = prep.format_table(tables.checkpoints)
        sn = prep.format_table(tables.snapshots)
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
        self._claim = (
            f"UPDATE {st} SET version = %(to_version)s "
            "WHERE aggregate_type = %(aggregate_type)s AND aggregate_id = %(aggregate_id)s "
            "AND version = %(from_version)s"
        )
        """Move the stream to ``to_version`` if it is at ``from_version``."""
        self._insert_stream = (
            f"INSERT INTO {st} (aggregate_type, aggregate_id, version) "
            "VALUES (%(aggregate_type)s, %(aggregate_id)s, %(to_version)s)"
        )
        """The row of a new stream alone."""
        self._create = (
            f"WITH created AS (INSERT INTO {st} (aggregate_type, aggregate_id, version) "
            "VALUES (%(aggregate_type)s, %(aggregate_id)s, %(to_version)s) RETURNING version) "
            + insert.format(base="0", source="created")
        )
        """Insert the stream row and, from it, every event."""
        self._append = f"WITH claimed AS ({self._claim} RETURNING version) " + insert.format(
            base="%(from_version)s", source="claimed"
        )
        """:attr:`_claim`, and the events only if it matched a row."""
        columns = "(aggregate_type, aggregate_id, version, name, data, metadata, tx_id)"
        one = (
            f"INSERT INTO {ev} {columns} SELECT s.aggregate_type, s.aggregate_id, s.version, "
            "%s, %b, %s, pg_current_xact_id()::text::bigint FROM s"
        )
        self._create_one = (
            f"WITH s AS (INSERT INTO {st} (aggregate_type, aggregate_id, version) "
            "VALUES (%s, %s, 1) RETURNING aggregate_type, aggregate_id, version) " + one
        )
        """:attr:`_create` for one event, with scalar (positional) parameters."""
        self._append_one = (
            f"WITH s AS (UPDATE {st} SET version = version + 1 WHERE aggregate_type = %s "
            "AND aggregate_id = %s AND version = %s "
            "RETURNING aggregate_type, aggregate_id, version) " + one
        )
        """:attr:`_append` for one event, with scalar (positional) parameters."""
        self._insert_only = insert.format(base="%(from_version)s", source="(SELECT 1) one")
        """The events alone (the second step of an append done in two)."""
        self._prepare_outbox(ev, cp)
        self._latest_snapshot = (
            f"SELECT version, data, schema_version FROM {sn} "
            "WHERE aggregate_type = %(key_type)s AND aggregate_id = %(key_id)s "
            "ORDER BY version DESC LIMIT 1"
        )
        page = (
            f"(SELECT version, name, data, metadata, schema_version FROM {ev} "
            "WHERE aggregate_type = %(key_type)s AND aggregate_id = %(key_id)s "
            "AND version > {after} AND version <= %(to_version)s "
            "ORDER BY version LIMIT %(limit)s) UNION ALL "
        )
        stream = "WHERE s.aggregate_type = %(key_type)s AND s.aggregate_id = %(key_id)s"
        self._read_page = (
            page.format(after="%(from_version)s")
            + f"SELECT NULL, NULL, NULL, s.version::text, NULL FROM {st} s {stream}"
        )
        """A page of a stream's events and the header row of
        :func:`~esrc_sqlalchemy.dialects.base.stream_page`."""
        self._load_page = (
            f"WITH snap AS (SELECT version, data, schema_version FROM {sn} "
            "WHERE aggregate_type = %(key_type)s "
            "AND aggregate_id = %(key_id)s ORDER BY version DESC LIMIT 1) "
            + page.format(after="COALESCE((SELECT version FROM snap), 0)")
            + f"SELECT snap.version, NULL, snap.data, s.version::text, snap.schema_version "
            f"FROM {st} s "
            f"LEFT JOIN snap ON TRUE {stream}"
        )
        """The newest snapshot (a common table expression) and the first page after it,
        with the header row of :func:`~esrc_sqlalchemy.dialects.base.stream_page`."""
        self._xmin = sa.select(_XMIN)
        self._snapshot = snapshot_upsert_on_conflict(tables, postgresql.insert)
        events = tables.events
        self._keys = sa.select(events.c.tx_id, events.c.position).where(
            events.c.position.in_(sa.bindparam("positions", expanding=True)),
            events.c.tx_id < _XMIN,
        )

    def _prepare_outbox(self, ev: str, cp: str) -> None:
        """The outbox and checkpoint statements on the events table ``ev`` and the
        checkpoints table ``cp`` (both quoted)."""
        held = f"SELECT MAX(tx_id) FROM {ev} WHERE tx_id >= (SELECT xmin FROM x)"
        self._outbox = (
            "WITH cp AS (SELECT COALESCE(MAX(tx_id), 0) AS tx_id, "
            f"COALESCE(MAX(position), 0) AS position FROM {cp} WHERE name = %(name)s), "
            f"x AS (SELECT {_XMIN_SQL} AS xmin) "
            "SELECT e.tx_id, e.position, e.position, e.aggregate_type, e.aggregate_id, "
            f"e.version, e.name, e.data, e.metadata, ({held}), e.schema_version FROM {ev} e "
            "WHERE (e.tx_id, e.position) > ((SELECT tx_id FROM cp), (SELECT position FROM cp)) "
            "AND e.tx_id < (SELECT xmin FROM x) "
            "ORDER BY e.tx_id, e.position LIMIT %(limit)s"
        )
        """The outbox query: the ready rows in index order, each with the largest
        held-back ``tx_id`` last (the columns of
        :class:`~esrc_sqlalchemy.dialects.base.OutboxRow`)."""
        self._outbox_after = (
            f"WITH x AS (SELECT {_XMIN_SQL} AS xmin) "
            "SELECT e.tx_id, e.position, e.position, e.aggregate_type, e.aggregate_id, "
            f"e.version, e.name, e.data, e.metadata, ({held}), e.schema_version FROM {ev} e "
            "WHERE (e.tx_id, e.position) > (%(tx_id)s, %(position)s) "
            "AND e.tx_id < (SELECT xmin FROM x) "
            "ORDER BY e.tx_id, e.position LIMIT %(limit)s"
        )
        """:attr:`_outbox` after a given (tx_id, position) instead of the checkpoint:
        reading ahead. The key was handed out, so it is below an earlier xmin, and the
        region below xmin never grows behind it (the module docstring's argument)."""
        self._held = f"WITH x AS (SELECT {_XMIN_SQL} AS xmin) " + held
        """The largest held-back ``tx_id`` alone, for when no row is ready."""
        self._mark = (
            f"INSERT INTO {cp} AS c (name, tx_id, position) "
            "VALUES (%(name)s, %(tx_id)s, %(position)s) ON CONFLICT (name) DO UPDATE "
            "SET tx_id = excluded.tx_id, position = excluded.position, "
            "updated_at = CURRENT_TIMESTAMP "
            "WHERE (c.tx_id, c.position) < (excluded.tx_id, excluded.position)"
        )
        self._mark_lazily = self._mark.replace(
            "VALUES (%(name)s, %(tx_id)s, %(position)s)",
            "SELECT %(name)s, %(tx_id)s, %(position)s "
            "FROM (SELECT set_config('synchronous_commit', 'off', true)) lazily",
        )
        """:attr:`_mark` committing with ``synchronous_commit`` off: the statement is
        its own transaction (autocommit), and ``set_config(..., true)`` sets the
        parameter for that transaction only, so its commit does not wait for the WAL
        flush and nothing else on the connection changes."""

    @contextlib.contextmanager
    def migration(self) -> Iterator[Connection]:
        """A transaction holding ``pg_advisory_xact_lock`` for these tables (released
        at commit); creates the schema if one was given."""
        with self.base_engine.connect() as conn:
            conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(self._lock_key)))
                schema = self.tables.schema
                if schema is not None:
                    conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
                yield conn

    def prepare(self, conn: Connection) -> None:
        """Require PostgreSQL 13 or later (``pg_current_xact_id``), and events written
        by transactions this cluster has handed out.

        Events restored from a logical dump into another cluster carry transaction ids
        above the new cluster's counter: the outbox would hold them back, and events
        appended afterwards would sort below every relay's checkpoint, skipped. That
        is refused with :class:`~esrc_sqlalchemy.errors.StoreConfigError` (one
        index-only query, on the store's first use)."""
        version = conn.dialect.server_version_info or (0,)
        if version < (13,):
            shown = ".".join(str(v) for v in version)
            raise StoreConfigError(
                f"the SQL event store needs PostgreSQL 13 or later, found {shown}"
            )
        events = self.tables.events
        if not sa.inspect(conn).has_table(events.name, schema=self.tables.schema):
            return
        newest, following = conn.execute(
            sa.select(
                sa.func.max(events.c.tx_id),
                sa.text("pg_snapshot_xmax(pg_current_snapshot())::text::bigint"),
            )
        ).one()
        if newest is not None and newest >= following:
            raise StoreConfigError(
                f"the events in {events.fullname} were written by transactions up to id "
                f"{newest}, but this cluster hands out ids from {following} on: the tables "
                "were restored from a logical dump into another cluster. The outbox orders "
                "events by transaction id, so relays would skip events appended now. "
                f"Advance the cluster's transaction id above {newest} (pg_resetwal) before "
                "using the store; see the deployment guide's section on backups"
            )

    def close(self) -> None:
        """Stop the notifier thread, if there is one."""
        if self._notifier is not None:
            self._notifier.close()

    # --- writes -------------------------------------------------------------------------

    @staticmethod
    def _arrays(rows: Sequence[EventRow]) -> dict[str, Any]:
        return {
            "names": [r[0] for r in rows],
            "datas": [r[1] for r in rows],
            "metas": [r[2] for r in rows],
        }

    def _extend_params(
        self, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> dict[str, Any]:
        """The parameters of :attr:`_append`."""
        params = self._arrays(rows)
        params.update(
            aggregate_type=key[0],
            aggregate_id=key[1],
            from_version=from_version,
            to_version=from_version + len(rows),
        )
        return params

    def create_stream(
        self, conn: Connection, key: tuple[str, str], rows: Sequence[EventRow]
    ) -> None:
        """One statement: insert the stream row and, from it, every event."""
        params = self._arrays(rows)
        params.update(aggregate_type=key[0], aggregate_id=key[1], to_version=len(rows))
        _on_psycopg(conn, self._create, params, fetch=False)

    def insert_stream(self, conn: Connection, key: tuple[str, str], version: int) -> None:
        """The stream row of :meth:`create_stream` alone."""
        params = {"aggregate_type": key[0], "aggregate_id": key[1], "to_version": version}
        _on_psycopg(conn, self._insert_stream, params, fetch=False)

    def extend_stream(
        self, conn: Connection, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> bool:
        """One statement: claim the stream at ``from_version`` and insert the events
        only if the claim matched a row."""
        params = self._extend_params(key, from_version, rows)
        return _on_psycopg(conn, self._append, params, fetch=False)[1] == len(rows)

    def claim_stream(
        self, conn: Connection, key: tuple[str, str], from_version: int, count: int
    ) -> bool:
        """The claim of :meth:`extend_stream` alone."""
        params = {
            "aggregate_type": key[0],
            "aggregate_id": key[1],
            "from_version": from_version,
            "to_version": from_version + count,
        }
        return _on_psycopg(conn, self._claim, params, fetch=False)[1] == 1

    def insert_events(
        self, conn: Connection, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> None:
        """The insert of :meth:`extend_stream` alone (with this transaction's id)."""
        params = self._arrays(rows)
        params.update(aggregate_type=key[0], aggregate_id=key[1], from_version=from_version)
        _on_psycopg(conn, self._insert_only, params, fetch=False)

    direct_writes = True

    def direct_checkout(self, driver: Any) -> Any:
        """Autocommit mode: every append is one statement."""
        was = driver.autocommit
        driver.autocommit = True
        return was

    def direct_checkin(self, driver: Any, state: Any) -> None:
        """Back to the pool's transaction mode."""
        driver.autocommit = state

    def direct_rollback(self, driver: Any) -> None:
        """Nothing: in autocommit mode a failed statement left nothing open."""

    def direct_create(self, cursor: Any, key: tuple[str, str], rows: Sequence[EventRow]) -> None:
        """:meth:`create_stream`'s statement (scalar parameters for one event)."""
        if len(rows) == 1:
            name, data, meta = rows[0]
            cursor.execute(self._create_one, (key[0], key[1], name, data, meta))
            return
        params = self._arrays(rows)
        params.update(aggregate_type=key[0], aggregate_id=key[1], to_version=len(rows))
        cursor.execute(self._create, params)

    def direct_extend(
        self, cursor: Any, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> bool:
        """:meth:`extend_stream`'s statement (scalar parameters for one event)."""
        if len(rows) == 1:
            name, data, meta = rows[0]
            cursor.execute(self._append_one, (key[0], key[1], from_version, name, data, meta))
            return bool(cursor.rowcount == 1)
        cursor.execute(self._append, self._extend_params(key, from_version, rows))
        return bool(cursor.rowcount == len(rows))

    def events_written(self) -> None:
        """Have the notifier send a ``pg_notify`` on :attr:`channel` soon: after the
        append committed and outside it, so appends neither wait on the notification
        queue's commit lock nor pay a round trip."""
        if self._notifier is not None:
            self._notifier.poke()

    def upsert_snapshot(
        self, conn: Connection, key: tuple[str, str], version: int, data: bytes, schema_version: int
    ) -> bool:
        """``INSERT ... SELECT FROM streams ... ON CONFLICT DO UPDATE``."""
        return upsert_snapshot_with(
            self._snapshot, conn, key, version, data, schema_version=schema_version
        )

    # --- reads --------------------------------------------------------------------------

    def latest_snapshot(self, conn: Connection, key: tuple[str, str]) -> Any:
        """On psycopg directly."""
        params = {"key_type": key[0], "key_id": key[1]}
        rows, _ = _on_psycopg(conn, self._latest_snapshot, params)
        return rows[0] if rows else None

    @staticmethod
    def _page_params(
        key: tuple[str, str], from_version: int, to_version: int, limit: int
    ) -> dict[str, Any]:
        return {
            "key_type": key[0],
            "key_id": key[1],
            "from_version": from_version,
            "to_version": to_version,
            "limit": limit,
        }

    def read_page(
        self, conn: Connection, key: tuple[str, str], from_version: int, to_version: int, limit: int
    ) -> StreamPage | None:
        """On psycopg directly (plain tuples)."""
        params = self._page_params(key, from_version, to_version, limit)
        return stream_page(_on_psycopg(conn, self._read_page, params)[0])

    def load_page(self, conn: Connection, key: tuple[str, str], limit: int) -> StreamPage | None:
        """On psycopg directly: one statement."""
        params = self._page_params(key, 0, LAST_VERSION, limit)
        return stream_page(_on_psycopg(conn, self._load_page, params)[0])

    direct_reads = True

    def direct_read_page(
        self, cursor: Any, key: tuple[str, str], from_version: int, to_version: int, limit: int
    ) -> StreamPage | None:
        """:meth:`read_page`'s statement, results in binary format."""
        cursor.execute(
            self._read_page, self._page_params(key, from_version, to_version, limit), binary=True
        )
        return stream_page(cursor.fetchall())

    def direct_load_page(self, cursor: Any, key: tuple[str, str], limit: int) -> StreamPage | None:
        """:meth:`load_page`'s statement, results in binary format."""
        cursor.execute(self._load_page, self._page_params(key, 0, LAST_VERSION, limit), binary=True)
        return stream_page(cursor.fetchall())

    # --- outbox -------------------------------------------------------------------------

    def outbox_rows(
        self, conn: Connection, name: str, limit: int, after: tuple[int, int] | None = None
    ) -> tuple[list[OutboxRow], int | None]:
        """Rows above the checkpoint (or above ``after``) and below xmin, in (tx_id,
        position) order, and the largest ``tx_id`` at or above xmin (events committed
        but held back). One query (a second, small one when no row is ready), fetched
        from psycopg in binary format, as plain tuples."""
        if after is None:
            rows, _ = _on_psycopg(conn, self._outbox, {"name": name, "limit": limit})
        else:
            params = {"tx_id": after[0], "position": after[1], "limit": limit}
            rows, _ = _on_psycopg(conn, self._outbox_after, params)
        if not rows:
            return [], _on_psycopg(conn, self._held, {})[0][0][0]
        return cast(list[OutboxRow], rows), rows[0][9]

    def hold_back_ended(self, conn: Connection, held: int) -> bool:
        """Whether ``pg_snapshot_xmin(pg_current_snapshot())`` is above ``held``: every
        transaction with a smaller id has ended."""
        return int(conn.execute(self._xmin).scalar_one()) > held

    def outbox_keys(self, conn: Connection, positions: Sequence[int]) -> dict[int, tuple[int, int]]:
        """(tx_id, position) of the events among ``positions`` below xmin: the outbox
        has not handed out the others yet."""
        found = conn.execute(self._keys, {"positions": list(positions)}).all()
        return {int(p): (int(t), int(p)) for t, p in found}

    def mark(
        self, conn: Connection, name: str, key: tuple[int, int], *, durable: bool = True
    ) -> None:
        """Upsert the checkpoint where (tx_id, position) grows (on psycopg directly, by
        the primary key ``name``). With ``durable=False`` the statement sets
        ``synchronous_commit`` off for its own transaction: the commit returns before
        the WAL reaches the disk (a crash of the server may lose the last checkpoints,
        never other data; a server that runs with ``synchronous_commit=off`` anyway
        gains nothing)."""
        params = {"name": name, "tx_id": key[0], "position": key[1]}
        _on_psycopg(conn, self._mark if durable else self._mark_lazily, params, fetch=False)

    def open_listener(self) -> OutboxListener | None:
        """With ``notify=True``: a connection of its own that ``LISTEN``s on
        :attr:`channel`."""
        if not self.notify_enabled:
            return None
        return _ChannelListener(self.base_engine, self.channel)

    @property
    def notify_channel(self) -> str | None:
        """:attr:`channel` with ``notify=True``, else ``None``."""
        return self.channel if self.notify_enabled else None

    # --- relay locks and views ----------------------------------------------------------

    def relay_lock(self, name: str) -> RelayLockHolder:
        """A session advisory lock on two keys hashed from the database, schema, table
        prefix and relay name."""
        return _AdvisoryLock(self.base_engine, self._advisory_keys(name))

    def _advisory_keys(self, name: str) -> tuple[int, int]:
        hashed = self.relay_lock_digest(name)
        return (
            int.from_bytes(hashed[:4], "big") & 0x7FFFFFFF,
            int.from_bytes(hashed[4:], "big") & 0x7FFFFFFF,
        )

    def relay_lock_holders(self, conn: Connection, names: Sequence[str]) -> dict[str, str | None]:
        """From ``pg_locks`` and ``pg_stat_activity``: the holding backend's pid,
        application name and client address, for every name."""
        keys = {self._advisory_keys(name): name for name in names}
        found: dict[str, str | None] = dict.fromkeys(names)
        if not keys:
            return found
        rows = conn.execute(
            sa.text(
                "SELECT l.classid, l.objid, l.pid, a.application_name, host(a.client_addr) "
                "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
        for classid, objid, pid, application, address in rows:
            name = keys.get((int(classid), int(objid)))
            if name is not None:
                parts = [f"pid {pid}", application or "", f"from {address}" if address else ""]
                found[name] = " ".join(p for p in parts if p)
        return found

    def code_point_order(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """``COLLATE "C"``: the database's default collation sorts by language rules."""
        return sa.collate(column, "C")

    def relay_queue_order(self) -> tuple[sa.ColumnElement[Any], ...]:
        """(tx_id, position), the outbox index's order. ``created_at`` is the writing
        transaction's start, so the earliest one among the pending events need not be
        the event the relay waits on; the first in this order is."""
        ev = self.tables.events
        return ev.c.tx_id, ev.c.position

    def relay_progress(self) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[bool]]:
        """By (tx_id, position)."""
        ev, cp = self.tables.events, self.tables.checkpoints
        event, checkpoint = (
            sa.tuple_(ev.c.tx_id, ev.c.position),
            sa.tuple_(cp.c.tx_id, cp.c.position),
        )
        return event <= checkpoint, event > checkpoint
