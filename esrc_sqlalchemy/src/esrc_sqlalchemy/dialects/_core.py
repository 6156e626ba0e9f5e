"""The statements SQLite and MariaDB/MySQL share, built once with SQLAlchemy Core.
PostgreSQL writes its own statements by hand (:mod:`.postgresql`) and does not use
these."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from esrc_sqlalchemy.dialects.base import ROWCOUNT, EventRow, OutboxRow, SqlDialect
from esrc_sqlalchemy.schema import Tables

__all__ = ["CoreDialect", "snapshot_source", "snapshot_upsert_on_conflict", "upsert_snapshot_with"]


def snapshot_source(tables: Tables) -> sa.Select[str, str, int]:
    """The stream's key and ``:snap_version`` if the stream is at that version or
    later: the source of a snapshot upsert's ``INSERT ... SELECT`` (parameters
    ``key_type``, ``key_id``, ``snap_version``)."""
    st = tables.streams
    key_t, key_i = tables.key_parameters()
    version = sa.bindparam("snap_version", type_=sa.BigInteger)
    return sa.select(key_t, key_i, version).where(
        st.c.aggregate_type == key_t, st.c.aggregate_id == key_i, st.c.version >= version
    )


def snapshot_upsert_on_conflict(tables: Tables, insert: Any) -> sa.Executable:
    """The snapshot upsert for databases with ``ON CONFLICT`` (PostgreSQL and SQLite),
    built with their dialect's ``insert``: :func:`snapshot_source` plus ``:snap_data``,
    replacing the data of an existing snapshot at that version."""
    sn = tables.snapshots
    source = snapshot_source(tables).add_columns(sa.bindparam("snap_data", type_=sa.LargeBinary))
    stmt = insert(sn).from_select(["aggregate_type", "aggregate_id", "version", "data"], source)
    result: sa.Executable = stmt.on_conflict_do_update(
        index_elements=[sn.c.aggregate_type, sn.c.aggregate_id, sn.c.version],
        set_={"data": stmt.excluded.data, "created_at": sa.func.current_timestamp()},
    )
    return result


def upsert_snapshot_with(
    statement: Any, conn: Connection, key: tuple[str, str], version: int, data: bytes
) -> bool:
    """Run a :func:`snapshot_upsert_on_conflict` statement (or one of its hand-written
    twin's text) for stream ``key``; whether the stream existed (a row was written)."""
    params = {"key_type": key[0], "key_id": key[1], "snap_version": version, "snap_data": data}
    return conn.execute(statement, params, execution_options=ROWCOUNT).rowcount > 0


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

    # --- writes -------------------------------------------------------------------------

    def create_stream(
        self, conn: Connection, key: tuple[str, str], rows: Sequence[EventRow]
    ) -> None:
        """Insert the stream row, then the events (one transaction)."""
        t, i = key
        conn.execute(
            self._insert_stream,
            {"aggregate_type": t, "aggregate_id": i, "version": len(rows)},
        )
        self.insert_events(conn, key, 0, rows)

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

    # --- reads --------------------------------------------------------------------------

    def read_events(
        self, conn: Connection, key: tuple[str, str], from_version: int
    ) -> Sequence[Any] | None:
        """The stream's row outer-joined to its events (see
        :meth:`~esrc_sqlalchemy.schema.Tables.stream_events`)."""
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
        """The snapshot with the highest version."""
        return conn.execute(self._latest_snapshot, {"key_type": key[0], "key_id": key[1]}).first()

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
