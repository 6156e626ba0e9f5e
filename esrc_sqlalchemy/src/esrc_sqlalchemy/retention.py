"""The statements behind the SQL store's stream deletion and retention
(:class:`esrc_core.retention.DeletesStreams`), built once with the database's dialect.

A deleted stream keeps its row in the streams table with the version
:data:`DELETED_VERSION` (a tombstone): appends, whose claim matches the expected
version, never match it, creating the stream again hits the row's primary key, and
reads that find it answer "does not exist". Its events and snapshots are deleted. No
schema change is needed: versions are never negative otherwise.

Truncation deletes the stream's events at or below its latest snapshot for which no
checkpoint row is still waiting (the dialect's
:meth:`~esrc_sqlalchemy.dialects.base.SqlDialect.relay_progress` condition), so no
relay the store knows loses an event it has not passed.

Both run in one transaction, after the dialect's
:meth:`~esrc_sqlalchemy.dialects.base.SqlDialect.before_removing_events` (on
MariaDB/MySQL: the sequencer's lock, so that a sequencing pass never numbers a row
deleted under it).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from esrc_sqlalchemy.dialects import SqlDialect
from esrc_sqlalchemy.dialects.base import ROWCOUNT

__all__ = ["DELETED_VERSION", "StreamRemoval"]

DELETED_VERSION = -1
"""The version a deleted stream's row keeps."""


class StreamRemoval:
    """The statements that delete or truncate one stream of ``dialect``'s tables; each
    method runs in the caller's transaction and leaves committing to it."""

    def __init__(self, dialect: SqlDialect) -> None:
        self._dialect = dialect
        tables = dialect.tables
        st, ev, sn = tables.streams, tables.events, tables.snapshots
        key_t, key_i = tables.key_parameters()
        self._tombstone = (
            st.update()
            .where(st.c.aggregate_type == key_t, st.c.aggregate_id == key_i, st.c.version >= 0)
            .values(version=DELETED_VERSION)
        )
        self._events = ev.delete().where(ev.c.aggregate_type == key_t, ev.c.aggregate_id == key_i)
        self._snapshots = sn.delete().where(
            sn.c.aggregate_type == key_t, sn.c.aggregate_id == key_i
        )
        self._latest = sa.select(sa.func.max(sn.c.version)).where(
            sn.c.aggregate_type == key_t, sn.c.aggregate_id == key_i
        )
        _, waiting = dialect.relay_progress()
        still_needed = sa.exists().where(waiting).correlate(ev)
        self._truncate = ev.delete().where(
            ev.c.aggregate_type == key_t,
            ev.c.aggregate_id == key_i,
            ev.c.version <= sa.bindparam("upto", type_=sa.BigInteger),
            ~still_needed,
        )

    @staticmethod
    def _key(key: tuple[str, str]) -> dict[str, Any]:
        return {"key_type": key[0], "key_id": key[1]}

    def delete(self, conn: Connection, key: tuple[str, str]) -> int | None:
        """Tombstone stream ``key`` and delete its events and snapshots. Returns the
        stream's version before (``DELETED_VERSION`` when it was deleted already:
        nothing changes) or ``None`` when it does not exist."""
        dialect = self._dialect
        dialect.before_removing_events(conn)
        version = dialect.stream_version(conn, key)
        if version is None or version < 0:
            return version
        if conn.execute(self._tombstone, self._key(key), execution_options=ROWCOUNT).rowcount != 1:
            return dialect.stream_version(conn, key)
        conn.execute(self._events, self._key(key))
        conn.execute(self._snapshots, self._key(key))
        return version

    def truncate(self, conn: Connection, key: tuple[str, str]) -> int | None:
        """Delete stream ``key``'s events at or below its latest snapshot that no known
        relay still waits for; return how many (``None`` when the stream does not
        exist or was deleted)."""
        dialect = self._dialect
        dialect.before_removing_events(conn)
        version = dialect.stream_version(conn, key)
        if version is None or version < 0:
            return None
        upto = conn.execute(self._latest, self._key(key)).scalar()
        if upto is None:
            return 0
        removed = conn.execute(
            self._truncate, {**self._key(key), "upto": int(upto)}, execution_options=ROWCOUNT
        )
        return int(removed.rowcount)
