"""The statements SQLite and MariaDB/MySQL share, built once with SQLAlchemy Core.
PostgreSQL writes its own statements by hand (:mod:`.postgresql`) and does not use
these."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.compiler import SQLCompiler

from esrc_sqlalchemy.dialects.base import (
    LAST_VERSION,
    ROWCOUNT,
    EventRow,
    OutboxRow,
    SqlDialect,
    StreamPage,
)
from esrc_sqlalchemy.schema import Tables

__all__ = [
    "SNAPSHOT_COLUMNS",
    "CoreDialect",
    "snapshot_source",
    "snapshot_upsert_on_conflict",
    "upsert_snapshot_with",
]


SNAPSHOT_COLUMNS = ["aggregate_type", "aggregate_id", "version", "schema_version", "data"]
"""The columns a snapshot upsert's ``INSERT ... SELECT`` fills, in the order of
:func:`snapshot_source` followed by the data."""


def snapshot_source(tables: Tables) -> sa.Select[str, str, int, int]:
    """The stream's key, ``:snap_version`` and ``:snap_schema`` if the stream is at that
    version or later: the source of a snapshot upsert's ``INSERT ... SELECT``
    (parameters ``key_type``, ``key_id``, ``snap_version``, ``snap_schema``)."""
    st = tables.streams
    key_t, key_i = tables.key_parameters()
    version = sa.bindparam("snap_version", type_=sa.BigInteger)
    schema = sa.bindparam("snap_schema", type_=sa.SmallInteger)
    return sa.select(key_t, key_i, version, schema).where(
        st.c.aggregate_type == key_t, st.c.aggregate_id == key_i, st.c.version >= version
    )


def snapshot_upsert_on_conflict(tables: Tables, insert: Any) -> sa.Executable:
    """The snapshot upsert for databases with ``ON CONFLICT`` (PostgreSQL and SQLite),
    built with their dialect's ``insert``: :func:`snapshot_source` plus ``:snap_data``,
    replacing the data and schema version of an existing snapshot at that version."""
    sn = tables.snapshots
    source = snapshot_source(tables).add_columns(sa.bindparam("snap_data", type_=sa.LargeBinary))
    stmt = insert(sn).from_select(SNAPSHOT_COLUMNS, source)
    result: sa.Executable = stmt.on_conflict_do_update(
        index_elements=[sn.c.aggregate_type, sn.c.aggregate_id, sn.c.version],
        set_={
            "data": stmt.excluded.data,
            "schema_version": stmt.excluded.schema_version,
            "created_at": sa.func.current_timestamp(),
        },
    )
    return result


def upsert_snapshot_with(
    statement: Any,
    conn: Connection,
    key: tuple[str, str],
    version: int,
    data: bytes,
    *,
    schema_version: int,
) -> bool:
    """Run a :func:`snapshot_upsert_on_conflict` statement (or one of its hand-written
    twin's text) for stream ``key``; whether the stream existed (a row was written)."""
    params = {
        "key_type": key[0],
        "key_id": key[1],
        "snap_version": version,
        "snap_schema": schema_version,
        "snap_data": data,
    }
    return conn.execute(statement, params, execution_options=ROWCOUNT).rowcount > 0


def _after_snapshot(
    found: Any, read_after: Callable[[int], StreamPage | None]
) -> StreamPage | None:
    """A load done in two statements: the newest snapshot's row ``found`` (version,
    data, schema version; ``None`` when there is none) and the page ``read_after`` reads
    after its version, as one :class:`StreamPage`."""
    snapshot = None if found is None else (int(found[0]), bytes(found[1]), int(found[2]))
    page = read_after(snapshot[0] if snapshot else 0)
    return None if page is None else StreamPage(page.version, snapshot, page.events)


class CoreDialect(SqlDialect):
    """A dialect whose appends, reads and outbox reads are SQLAlchemy Core statements:
    an append is a conditional ``UPDATE`` of the stream's version (or an ``INSERT`` of
    a new stream) and an executemany ``INSERT`` of the events; the outbox reads the
    events after the checkpoint, or after a given order key, in the order of one column
    (:attr:`_outbox` and :attr:`_outbox_after`, built by
    :meth:`outbox_ordered_by`), with ``tx_id`` 0."""

    _outbox: sa.Select[Any]
    _outbox_after: sa.Select[Any]
    """The outbox query: rows after the checkpoint named ``:name``, ``:limit`` of them;
    set by the subclass."""

    def __init__(self, tables: Tables, engine: Engine, *, notify: bool = False) -> None:
        super().__init__(tables, engine, notify=notify)
        st, ev, sn = tables.streams, tables.events, tables.snapshots
        key_t, key_i = tables.key_parameters()
        self._latest_snapshot = (
            sa.select(sn.c.version, sn.c.data, sn.c.schema_version)
            .where(sn.c.aggregate_type == key_t, sn.c.aggregate_id == key_i)
            .order_by(sn.c.version.desc())
            .limit(1)
        )
        self._read_page, self._load_page = self._page_statements()
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
        prep = engine.dialect.identifier_preparer
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        st_name, ev_name = prep.format_table(st), prep.format_table(ev)
        self._direct_insert_stream = (
            f"INSERT INTO {st_name} (aggregate_type, aggregate_id, version) "
            f"VALUES ({mark}, {mark}, {mark})"
        )
        """The stream row, for the driver (positional parameters)."""
        self._direct_claim = (
            f"UPDATE {st_name} SET version = {mark} WHERE aggregate_type = {mark} "
            f"AND aggregate_id = {mark} AND version = {mark}"
        )
        """:meth:`claim_stream`'s ``UPDATE``, for the driver."""
        self._direct_insert_events = (
            f"INSERT INTO {ev_name} (aggregate_type, aggregate_id, version, name, data, "
            f"metadata) VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark})"
        )
        """One event row, for the driver."""

    # --- writes -------------------------------------------------------------------------

    def create_stream(
        self, conn: Connection, key: tuple[str, str], rows: Sequence[EventRow]
    ) -> None:
        """Insert the stream row, then the events (one transaction)."""
        self.insert_stream(conn, key, len(rows))
        self.insert_events(conn, key, 0, rows)

    def insert_stream(self, conn: Connection, key: tuple[str, str], version: int) -> None:
        """The stream row alone."""
        conn.execute(
            self._insert_stream,
            {"aggregate_type": key[0], "aggregate_id": key[1], "version": version},
        )

    def extend_stream(
        self, conn: Connection, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> bool:
        """:meth:`claim_stream`, then :meth:`insert_events` if the claim matched."""
        if not self.claim_stream(conn, key, from_version, len(rows)):
            return False
        self.insert_events(conn, key, from_version, rows)
        return True

    def claim_stream(
        self, conn: Connection, key: tuple[str, str], from_version: int, count: int
    ) -> bool:
        """A conditional ``UPDATE`` of the stream's version."""
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
        """One executemany ``INSERT``."""
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

    # --- the direct write path ------------------------------------------------------

    direct_writes = True

    def direct_key(self, key: tuple[str, str]) -> tuple[Any, Any]:
        """The stream key as the driver takes it (what the key columns' type binds)."""
        return key

    def direct_begin(self, cursor: Any) -> None:
        """Open the write transaction on ``cursor``'s connection."""
        raise NotImplementedError

    def _direct_events(
        self, cursor: Any, key: tuple[Any, Any], from_version: int, rows: Sequence[EventRow]
    ) -> None:
        t, i = key
        if len(rows) == 1:
            name, data, meta = rows[0]
            cursor.execute(self._direct_insert_events, (t, i, from_version + 1, name, data, meta))
            return
        cursor.executemany(
            self._direct_insert_events,
            [
                (t, i, from_version + n, name, data, meta)
                for n, (name, data, meta) in enumerate(rows, 1)
            ],
        )

    def direct_create(self, cursor: Any, key: tuple[str, str], rows: Sequence[EventRow]) -> None:
        """:meth:`create_stream` on the driver: the stream row, then the events, in
        one transaction (committed)."""
        t, i = self.direct_key(key)
        self.direct_begin(cursor)
        cursor.execute(self._direct_insert_stream, (t, i, len(rows)))
        self._direct_events(cursor, (t, i), 0, rows)
        cursor.connection.commit()

    def direct_extend(
        self, cursor: Any, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> bool:
        """:meth:`extend_stream` on the driver, in one transaction (committed, or
        rolled back when the claim did not match)."""
        t, i = self.direct_key(key)
        self.direct_begin(cursor)
        cursor.execute(self._direct_claim, (from_version + len(rows), t, i, from_version))
        if cursor.rowcount != 1:
            cursor.connection.rollback()
            return False
        self._direct_events(cursor, (t, i), from_version, rows)
        cursor.connection.commit()
        return True

    # --- reads --------------------------------------------------------------------------

    def latest_snapshot(self, conn: Connection, key: tuple[str, str]) -> Any:
        """The snapshot with the highest version."""
        return conn.execute(self._latest_snapshot, {"key_type": key[0], "key_id": key[1]}).first()

    def _page_statements(self) -> tuple[sa.Executable, sa.Executable | None]:
        """The statements of :meth:`read_page` and :meth:`load_page` (``None``: the
        snapshot and the page are read with two statements on one connection, for a
        database in the process, where a statement costs no round trip).

        Here the stream's row outer-joined to the page, ordered and limited by the
        events' version, with the stream's version on every row: SQLite reads the
        single stream row first and walks the events' index in version order (no
        sort, and the limit stops the scan), cheaper than a derived table. A database
        that sorts such a join instead overrides this (MariaDB)."""
        tables = self.tables
        st, ev = tables.streams, tables.events
        key_t, key_i = tables.key_parameters()
        page = sa.and_(
            ev.c.aggregate_type == st.c.aggregate_type,
            ev.c.aggregate_id == st.c.aggregate_id,
            ev.c.version > sa.bindparam("from_version", type_=sa.BigInteger),
            ev.c.version <= sa.bindparam("to_version", type_=sa.BigInteger),
        )
        read = (
            sa.select(
                ev.c.version, ev.c.name, ev.c.data, ev.c.metadata, ev.c.schema_version, st.c.version
            )
            .select_from(st.outerjoin(ev, page))
            .where(st.c.aggregate_type == key_t, st.c.aggregate_id == key_i)
            .order_by(ev.c.version)
            .limit(sa.bindparam("limit", type_=sa.Integer))
        )
        return read, None

    @staticmethod
    def _stream_page(rows: list[Any]) -> StreamPage | None:
        """The :class:`StreamPage` of the rows of the join of :meth:`_page_statements`."""
        if not rows:
            return None
        head = rows[0]
        return StreamPage(int(head[5]), None, rows if head[0] is not None else [])

    def read_page(
        self, conn: Connection, key: tuple[str, str], from_version: int, to_version: int, limit: int
    ) -> StreamPage | None:
        """See :meth:`SqlDialect.read_page`."""
        params = {
            "key_type": key[0],
            "key_id": key[1],
            "from_version": from_version,
            "to_version": to_version,
            "limit": limit,
        }
        return self._stream_page(list(conn.execute(self._read_page, params)))

    def load_page(self, conn: Connection, key: tuple[str, str], limit: int) -> StreamPage | None:
        """See :meth:`SqlDialect.load_page`: one statement, or two on one connection
        (see :meth:`_page_statements`)."""
        if self._load_page is None:
            return _after_snapshot(
                self.latest_snapshot(conn, key),
                lambda after: self.read_page(conn, key, after, LAST_VERSION, limit),
            )
        params = {"key_type": key[0], "key_id": key[1], "to_version": LAST_VERSION, "limit": limit}
        return self._stream_page(list(conn.execute(self._load_page, params)))

    # --- reads on the driver ------------------------------------------------------------

    direct_reads = True

    def _driver_statement(
        self, statement: sa.Executable
    ) -> tuple[str, Callable[[Mapping[str, Any]], Any]]:
        """``statement`` as the driver's SQL, and what turns named values into the
        driver's parameters (a list in the statement's order for a positional
        paramstyle). Values go in as the driver takes them (:meth:`direct_key`)."""
        compiled = cast(
            SQLCompiler, cast(sa.ClauseElement, statement).compile(dialect=self.engine.dialect)
        )
        defaults = compiled.construct_params({}, _check=False)
        order = compiled.positiontup

        def parameters(named: Mapping[str, Any]) -> Any:
            values = {**defaults, **named}
            return values if order is None else [values[name] for name in order]

        return compiled.string, parameters

    @functools.cached_property
    def _direct_reads(self) -> dict[str, tuple[str, Callable[[Mapping[str, Any]], Any]]]:
        statements = {"page": self._read_page, "snapshot": self._latest_snapshot}
        if self._load_page is not None:
            statements["load"] = self._load_page
        return {name: self._driver_statement(s) for name, s in statements.items()}

    def _direct_rows(
        self, cursor: Any, which: str, key: tuple[str, str], **values: int
    ) -> list[Any]:
        sql, parameters = self._direct_reads[which]
        t, i = self.direct_key(key)
        cursor.execute(sql, parameters({"key_type": t, "key_id": i, **values}))
        rows = list(cursor.fetchall())
        self.direct_read_done(cursor)
        return rows

    def direct_read_done(self, cursor: Any) -> None:
        """End what a read left open on ``cursor``'s connection; nothing by default (a
        ``SELECT`` opens no transaction on the kept connections)."""

    def direct_read_page(
        self, cursor: Any, key: tuple[str, str], from_version: int, to_version: int, limit: int
    ) -> StreamPage | None:
        """:meth:`read_page`'s statement on the driver."""
        rows = self._direct_rows(
            cursor, "page", key, from_version=from_version, to_version=to_version, limit=limit
        )
        return self._stream_page(rows)

    def direct_load_page(self, cursor: Any, key: tuple[str, str], limit: int) -> StreamPage | None:
        """:meth:`load_page`'s statement(s) on the driver."""
        if self._load_page is not None:
            rows = self._direct_rows(cursor, "load", key, to_version=LAST_VERSION, limit=limit)
            return self._stream_page(rows)
        found = self._direct_rows(cursor, "snapshot", key)
        return _after_snapshot(
            found[0] if found else None,
            lambda after: self.direct_read_page(cursor, key, after, LAST_VERSION, limit),
        )

    # --- outbox -------------------------------------------------------------------------

    def outbox_ordered_by(
        self, order: sa.ColumnElement[int], *, after: bool = False
    ) -> sa.Select[Any]:
        """The outbox query with ``order`` as ``ord`` and tx_id 0: the rows after relay
        ``:name``'s checkpoint (a value of ``order``), or with ``after`` the rows after
        the value ``:after``, first ``:limit`` of them, in the columns of
        :class:`~esrc_sqlalchemy.dialects.base.OutboxRow`."""
        ev, cp = self.tables.events, self.tables.checkpoints
        lower: sa.ColumnElement[int]
        if after:
            lower = sa.bindparam("after", type_=sa.BigInteger)
        else:
            lower = (
                sa.select(sa.func.coalesce(sa.func.max(cp.c.position), 0))
                .where(cp.c.name == self.tables.relay_name_parameter("name"))
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
                ev.c.schema_version,
            )
            .where(order > lower)
            .order_by(order)
            .limit(sa.bindparam("limit", type_=sa.Integer))
        )

    def read_outbox(
        self, conn: Connection, name: str, limit: int, after: tuple[int, int] | None = None
    ) -> list[OutboxRow]:
        """Run :attr:`_outbox` for relay ``name`` (or :attr:`_outbox_after`, after the
        order key ``after``). The rows are the driver's, in the columns of
        :class:`~esrc_sqlalchemy.dialects.base.OutboxRow`."""
        if after is None:
            rows = conn.execute(self._outbox, {"name": name, "limit": limit})
        else:
            rows = conn.execute(self._outbox_after, {"after": after[1], "limit": limit})
        return cast(list[OutboxRow], rows.all())
