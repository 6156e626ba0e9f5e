"""The statements behind the SQL store's operator views
(:class:`esrc_core.inspection.Inspectable`): streams, recorded events with their times,
relay progress, and copying or forgetting a relay name. For tools, not the hot path.
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
            when(ev.c.created_at).label("created_at"),
        )
        # Published is every event less the pending ones (the two conditions are
        # complementary on every database): the events are counted once for all relays,
        # and each relay counts only what is after its checkpoint.
        _, waiting = dialect.relay_progress()
        count = sa.func.count()
        self._relays = sa.select(
            cp.c.name,
            sa.select(count).select_from(ev).scalar_subquery(),
            sa.select(count).select_from(ev).where(waiting).scalar_subquery(),
            sa.select(when(sa.func.min(ev.c.created_at))).where(waiting).scalar_subquery(),
        ).order_by(ordered(cp.c.name))
        name = tables.relay_name_parameter("name")
        source = tables.relay_name_parameter("source")
        target = tables.relay_name_parameter("target")
        self._forget = cp.delete().where(cp.c.name == name)
        self._copy = cp.insert().from_select(
            ["name", "tx_id", "position"],
            sa.select(target, cp.c.tx_id, cp.c.position).where(cp.c.name == source),
        )

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
