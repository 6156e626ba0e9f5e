"""The statements behind the SQL store's operator views
(:class:`esrc_core.inspection.Inspectable`): streams, recorded events with their times,
relay progress, and copying or forgetting a relay name. For tools, not the hot path.

The paged reads (:class:`esrc_core.inspection.PagedInspectable`, for the web console)
use the keys' indexes: a page of streams is a range of the streams table's primary key
(type, id) after a cursor, one event is a primary-key lookup by position, a stream's
page is a range of the (type, id, version) unique index, and the events after a
position a range of the primary key. Counting streams and searching ids read the
streams table (not the events).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from esrc_sqlalchemy.dialects import SqlDialect

__all__ = ["StoreViews"]


class StoreViews:
    """Prepared statements for the operator views of one store's tables, built with
    the database's ``dialect``: names sort by code point
    (:meth:`~esrc_sqlalchemy.dialects.base.SqlDialect.code_point_order`) and times
    come back timezone-aware in UTC, however the database stores them
    (:meth:`~esrc_sqlalchemy.dialects.base.SqlDialect.stored_time`).
    """

    def __init__(self, dialect: SqlDialect) -> None:
        tables = dialect.tables
        st, ev, cp = tables.streams, tables.events, tables.checkpoints
        ordered, when = dialect.code_point_order, dialect.stored_time
        key_t, _ = tables.key_parameters()
        last_at = (
            sa.select(when(ev.c.created_at))
            .where(
                ev.c.aggregate_type == st.c.aggregate_type,
                ev.c.aggregate_id == st.c.aggregate_id,
                ev.c.version == st.c.version,
            )
            .scalar_subquery()
        )
        streams = sa.select(st.c.aggregate_type, st.c.aggregate_id, st.c.version, last_at).where(
            st.c.version >= 0  # not deleted (esrc_sqlalchemy.retention)
        )
        self._streams = streams.order_by(ordered(st.c.aggregate_type), ordered(st.c.aggregate_id))
        self._streams_of_type = streams.where(st.c.aggregate_type == key_t).order_by(
            ordered(st.c.aggregate_id)
        )
        self._recorded = tables.stream_events(
            st.c.version.label("stream_version"),
            ev.c.position,
            ev.c.version,
            ev.c.name,
            ev.c.data,
            ev.c.metadata,
            ev.c.schema_version,
            when(ev.c.created_at).label("created_at"),
        )
        # Published is every event less the pending ones (the two conditions are
        # complementary on every database): the events are counted once for all relays,
        # and each relay counts only what is after its checkpoint.
        _, waiting = dialect.relay_progress()
        count = sa.func.count()
        queue = dialect.relay_queue_order()
        oldest = (
            sa.select(when(sa.func.min(ev.c.created_at))).where(waiting)
            if queue is None
            else sa.select(when(ev.c.created_at)).where(waiting).order_by(*queue).limit(1)
        )
        self._relays = sa.select(
            cp.c.name,
            sa.select(count).select_from(ev).scalar_subquery(),
            sa.select(count).select_from(ev).where(waiting).scalar_subquery(),
            oldest.scalar_subquery(),
        ).order_by(ordered(cp.c.name))
        name = tables.relay_name_parameter("name")
        source = tables.relay_name_parameter("source")
        target = tables.relay_name_parameter("target")
        self._forget = cp.delete().where(cp.c.name == name)
        self._copy = cp.insert().from_select(
            ["name", "tx_id", "position"],
            sa.select(target, cp.c.tx_id, cp.c.position).where(cp.c.name == source),
        )
        self._dialect = dialect
        self._live = st.c.version >= 0  # not deleted (esrc_sqlalchemy.retention)
        # One index probe per type (a loose index scan), not a pass over every stream.
        self._first_type = sa.select(sa.func.min(st.c.aggregate_type)).where(self._live)
        self._next_type = self._first_type.where(
            st.c.aggregate_type > sa.bindparam("after", type_=st.c.aggregate_type.type)
        )
        event_columns = (
            ev.c.position,
            ev.c.aggregate_type,
            ev.c.aggregate_id,
            ev.c.version,
            ev.c.name,
            ev.c.data,
            ev.c.metadata,
            ev.c.schema_version,
            when(ev.c.created_at).label("created_at"),
        )
        position = sa.bindparam("position", type_=sa.BigInteger)
        self._event_at = (
            sa.select(*event_columns)
            .select_from(
                ev.join(
                    st,
                    sa.and_(
                        st.c.aggregate_type == ev.c.aggregate_type,
                        st.c.aggregate_id == ev.c.aggregate_id,
                    ),
                )
            )
            .where(ev.c.position == position, self._live)
        )
        self._after = (
            sa.select(*event_columns)
            .where(ev.c.position > position)
            .order_by(ev.c.position)
            .limit(sa.bindparam("limit", type_=sa.Integer))
        )
        self._recorded_page = self._recorded.limit(sa.bindparam("limit", type_=sa.Integer))

    def time(self, value: Any) -> dt.datetime | None:
        """A time as read by these statements, as an aware UTC datetime."""
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return dt.datetime.fromtimestamp(float(value), dt.UTC)

    def streams(
        self, conn: Connection, aggregate_type: str | None, limit: int | None
    ) -> Sequence[Any]:
        """Rows (type, encoded id, version, last time) by type then id."""
        stmt = self._streams if aggregate_type is None else self._streams_of_type
        if limit is not None:
            stmt = stmt.limit(limit)
        return conn.execute(stmt, {"key_type": aggregate_type}).all()

    def recorded(
        self, conn: Connection, key: tuple[str, str], from_version: int
    ) -> Sequence[Any] | None:
        """Rows (position, version, name, data, metadata, time) after ``from_version``;
        ``None`` when the stream does not exist or was deleted."""
        rows = conn.execute(
            self._recorded,
            {"key_type": key[0], "key_id": key[1], "from_version": from_version},
        ).all()
        if not rows or rows[0].stream_version < 0:  # none, or deleted
            return None
        return [] if rows[0].name is None else rows

    def relays(self, conn: Connection) -> Sequence[Any]:
        """Rows (name, published, pending, oldest pending time) by name."""
        return [
            (name, every - pending, pending, oldest)
            for name, every, pending, oldest in conn.execute(self._relays)
        ]

    def _filters(
        self, aggregate_type: str | None, search: str | None
    ) -> tuple[list[sa.ColumnElement[bool]], dict[str, Any]]:
        """The conditions on the streams table for a type and an id search, and their
        parameters. The search is a case-sensitive substring test (``strpos`` on
        PostgreSQL, ``instr`` elsewhere; the key columns compare by code point except
        on PostgreSQL, whose test is byte-wise anyway)."""
        st = self._dialect.tables.streams
        where: list[sa.ColumnElement[bool]] = [self._live]
        params: dict[str, Any] = {}
        if aggregate_type is not None:
            where.append(
                st.c.aggregate_type == sa.bindparam("f_type", type_=st.c.aggregate_type.type)
            )
            params["f_type"] = aggregate_type
        if search:
            needle = sa.bindparam("f_search", type_=st.c.aggregate_id.type)
            find = sa.func.strpos if self._dialect.name == "postgresql" else sa.func.instr
            where.append(find(st.c.aggregate_id, needle) > 0)
            params["f_search"] = search
        return where, params

    def stream_page(
        self,
        conn: Connection,
        aggregate_type: str | None,
        search: str | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> Sequence[Any]:
        """Rows (type, encoded id, version, last time): the first ``limit`` streams
        matching the filters after the (type, encoded id) key ``after``, by type then
        id. The page is chosen first and only its streams' last events are read."""
        st, ev = self._dialect.tables.streams, self._dialect.tables.events
        ordered = self._dialect.code_point_order
        where, params = self._filters(aggregate_type, search)
        if after is not None:
            a_type = sa.bindparam("a_type", type_=st.c.aggregate_type.type)
            a_id = sa.bindparam("a_id", type_=st.c.aggregate_id.type)
            where.append(
                sa.or_(
                    ordered(st.c.aggregate_type) > ordered(a_type),
                    sa.and_(
                        st.c.aggregate_type == a_type, ordered(st.c.aggregate_id) > ordered(a_id)
                    ),
                )
            )
            params.update(a_type=after[0], a_id=after[1])
        page = (
            sa.select(st.c.aggregate_type, st.c.aggregate_id, st.c.version)
            .where(*where)
            .order_by(ordered(st.c.aggregate_type), ordered(st.c.aggregate_id))
            .limit(limit)
            .subquery("page")
        )
        last_at = (
            sa.select(self._dialect.stored_time(ev.c.created_at))
            .where(
                ev.c.aggregate_type == page.c.aggregate_type,
                ev.c.aggregate_id == page.c.aggregate_id,
                ev.c.version == page.c.version,
            )
            .scalar_subquery()
        )
        stmt = sa.select(
            page.c.aggregate_type, page.c.aggregate_id, page.c.version, last_at
        ).order_by(ordered(page.c.aggregate_type), ordered(page.c.aggregate_id))
        return conn.execute(stmt, params).all()

    def count_streams(
        self, conn: Connection, aggregate_type: str | None, search: str | None
    ) -> int:
        """How many streams match the filters."""
        st = self._dialect.tables.streams
        where, params = self._filters(aggregate_type, search)
        stmt = sa.select(sa.func.count()).select_from(st).where(*where)
        return int(conn.execute(stmt, params).scalar_one())

    def aggregate_types(self, conn: Connection) -> list[str]:
        """Every type with a stream that is not deleted, by code point: the smallest
        type, then the smallest above it, and so on, each an index probe (in the key
        columns' own order, sorted by code point at the end)."""
        found: list[str] = []
        current = conn.execute(self._first_type).scalar()
        while current is not None:
            found.append(current)
            current = conn.execute(self._next_type, {"after": current}).scalar()
        return sorted(found)

    def event_at(self, conn: Connection, position: int) -> Any | None:
        """The row (position, type, encoded id, version, name, data, metadata, time)
        of the event at ``position`` in a stream that is not deleted, or ``None``."""
        return conn.execute(self._event_at, {"position": position}).first()

    def events_after(self, conn: Connection, position: int, limit: int) -> Sequence[Any]:
        """Rows as :meth:`event_at`'s of the first ``limit`` events after
        ``position``, by position."""
        return conn.execute(self._after, {"position": position, "limit": limit}).all()

    def recorded_page(
        self, conn: Connection, key: tuple[str, str], from_version: int, limit: int
    ) -> Sequence[Any] | None:
        """:meth:`recorded`, at most ``limit`` events."""
        rows = conn.execute(
            self._recorded_page,
            {"key_type": key[0], "key_id": key[1], "from_version": from_version, "limit": limit},
        ).all()
        if not rows or rows[0].stream_version < 0:
            return None
        return [] if rows[0].name is None else rows

    def copy(self, conn: Connection, source: str, target: str) -> None:
        """Give ``target`` exactly ``source``'s checkpoint (or none), in the caller's
        transaction."""
        if source == target:
            return
        conn.execute(self._forget, {"name": target})
        conn.execute(self._copy, {"target": target, "source": source})

    def forget(self, conn: Connection, name: str) -> None:
        """Delete relay ``name``'s checkpoint."""
        conn.execute(self._forget, {"name": name})
