"""The event store's tables and their versioned migrations.

Every table name starts with the store's ``table_prefix``. The tables:

- ``<prefix>schema_version``: one row per applied migration (version, description).
- ``<prefix>streams``: one row per stream: aggregate type, encoded aggregate id
  (:func:`esrc_core.ids.encode_id`) and its current version.
- ``<prefix>events``: global position (identity / autoincrement), stream key,
  version, name, data (binary), metadata (JSON text, NULL when empty), created_at;
  unique (aggregate type, aggregate id, version). On PostgreSQL also ``tx_id``, the
  writing transaction's id, indexed with the position for the outbox. On
  MariaDB/MySQL also ``seq``, the outbox sequence number: 0 when written (not yet
  numbered), given once by the outbox after the row committed, never changed
  (indexed; a fixed-size column, so numbering updates the row in place).
- ``<prefix>snapshots``: (aggregate type, aggregate id, version) -> data.
- ``<prefix>checkpoints``: relay name -> the outbox position it has published up to,
  as the pair (tx_id, position); tx_id is 0 except on PostgreSQL, and on MariaDB/MySQL
  the position column holds a ``seq``.
- ``<prefix>sequencer`` (MariaDB/MySQL only): one row whose lock the outboxes take in
  turn to hand out sequence numbers; appends never touch it.

Versions: 1 created the tables; 2 added ``seq`` on MariaDB/MySQL (existing rows get
``seq = position``, which was their commit order, so checkpoints stay valid).

Stream keys compare exactly (case, trailing spaces and all): on MariaDB/MySQL they are
stored as UTF-8 in ``VARBINARY`` columns, because the text collations there ignore
case or trailing spaces.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from esrc_core.errors import EsrcError
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from esrc_sqlalchemy.errors import StoreConfigError

__all__ = [
    "ID_MAX",
    "NAME_MAX",
    "RELAY_NAME_MAX",
    "SCHEMA_VERSION",
    "TYPE_MAX",
    "Tables",
    "Utf8Key",
    "apply_migrations",
    "build_tables",
    "check_identifier",
    "schema_version",
]

SCHEMA_VERSION = 2
"""The schema version this release writes and reads."""
NAME_MAX = 200
"""Longest event name, in characters."""
TYPE_MAX = 200
"""Longest aggregate type, in characters."""
ID_MAX = 400
"""Longest encoded aggregate id (``encode_id``, 2 characters more than a str id)."""
RELAY_NAME_MAX = 200
"""Longest relay (outbox) name, in characters."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")


def check_identifier(value: object, what: str) -> str:
    """Return ``value`` if it matches ``^[A-Za-z_][A-Za-z0-9_]{0,40}$``, else raise
    :class:`StoreConfigError`. Table prefixes and schema names must pass this before
    they reach SQL (where SQLAlchemy also quotes them)."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise StoreConfigError(
            f"{what} {value!r} is not allowed: use 1 to 41 letters, digits or "
            "underscores, not starting with a digit"
        )
    return value


def _is_mysql(dialect: Dialect) -> bool:
    return dialect.name in ("mysql", "mariadb")


class Utf8Key(TypeDecorator[str]):
    """Text that compares exactly, for stream keys and relay names.

    ``VARCHAR(length)`` on PostgreSQL and SQLite; on MariaDB/MySQL a
    ``VARBINARY(4 * length)`` holding the UTF-8 bytes, converted on the way in and out.
    """

    impl = sa.String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """``VARBINARY`` on MariaDB/MySQL, ``VARCHAR`` elsewhere."""
        if _is_mysql(dialect):
            return dialect.type_descriptor(mysql.VARBINARY(4 * self.length))
        return dialect.type_descriptor(sa.String(self.length))

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """Encode to UTF-8 on MariaDB/MySQL; nothing to do elsewhere."""
        if not _is_mysql(dialect):
            return None

        def encode(value: Any) -> Any:
            return value.encode() if isinstance(value, str) else value

        return encode

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        """Decode UTF-8 on MariaDB/MySQL; nothing to do elsewhere."""
        if not _is_mysql(dialect):
            return None

        def decode(value: Any) -> Any:
            return bytes(value).decode() if isinstance(value, bytes | bytearray) else value

        return decode

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """Unused: :meth:`bind_processor` does the work."""
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        """Unused: :meth:`result_processor` does the work."""
        return value


_Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
_LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
_Timestamp = sa.DateTime(timezone=True)


def _seq_index(prefix: str) -> str:
    return f"{prefix}events_seq"


def _now() -> sa.FetchedValue:
    return sa.DefaultClause(sa.func.current_timestamp())


def stream_key_parameters() -> tuple[sa.BindParameter[str], sa.BindParameter[str]]:
    """The ``key_type`` and ``key_id`` bind parameters that name a stream, typed as
    the key columns are."""
    return (
        sa.bindparam("key_type", type_=Utf8Key(TYPE_MAX)),
        sa.bindparam("key_id", type_=Utf8Key(ID_MAX)),
    )


@dataclass(frozen=True)
class Tables:
    """The store's tables for one prefix, schema and database family."""

    metadata: sa.MetaData
    schema_version: sa.Table
    streams: sa.Table
    events: sa.Table
    snapshots: sa.Table
    checkpoints: sa.Table
    sequencer: sa.Table | None

    def stream_events(self, *columns: sa.ColumnElement[Any]) -> sa.Select[Any]:
        """``SELECT columns`` of one stream's events after ``:from_version``, in version
        order, for the parameters ``key_type``, ``key_id`` and ``from_version``.

        The events are outer-joined to the stream's row: a stream with no events after
        ``from_version`` gives one row whose event columns are ``NULL``, and a stream
        that does not exist gives no row, in the same single query."""
        st, ev = self.streams, self.events
        key_t, key_i = stream_key_parameters()
        return (
            sa.select(*columns)
            .select_from(
                st.outerjoin(
                    ev,
                    sa.and_(
                        ev.c.aggregate_type == st.c.aggregate_type,
                        ev.c.aggregate_id == st.c.aggregate_id,
                        ev.c.version > sa.bindparam("from_version"),
                    ),
                )
            )
            .where(st.c.aggregate_type == key_t, st.c.aggregate_id == key_i)
            .order_by(ev.c.version)
        )

    def all(self) -> list[sa.Table]:
        """Every table, in creation order."""
        tables = [self.schema_version, self.streams, self.events, self.snapshots]
        tables.append(self.checkpoints)
        if self.sequencer is not None:
            tables.append(self.sequencer)
        return tables


def build_tables(prefix: str, schema: str | None, family: str) -> Tables:
    """The table definitions for ``prefix`` (checked with :func:`check_identifier`),
    an optional PostgreSQL ``schema`` and a family from
    :func:`esrc_sqlalchemy.engines.family_of`."""
    check_identifier(prefix, "table_prefix")
    if schema is not None:
        check_identifier(schema, "schema")
    md = sa.MetaData(schema=schema)
    options: dict[str, Any] = {}
    if family == "mysql":
        options = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

    def key_columns() -> list[sa.Column[Any]]:
        return [
            sa.Column("aggregate_type", Utf8Key(TYPE_MAX), primary_key=True),
            sa.Column("aggregate_id", Utf8Key(ID_MAX), primary_key=True),
        ]

    schema_version = sa.Table(
        f"{prefix}schema_version",
        md,
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("applied_at", _Timestamp, server_default=_now(), nullable=False),
        **options,
    )
    streams = sa.Table(
        f"{prefix}streams",
        md,
        *key_columns(),
        sa.Column("version", sa.BigInteger, nullable=False),
        **options,
    )
    event_columns: list[Any] = [
        sa.Column("position", _Position, sa.Identity(), primary_key=True),
        sa.Column("aggregate_type", Utf8Key(TYPE_MAX), nullable=False),
        sa.Column("aggregate_id", Utf8Key(ID_MAX), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(NAME_MAX), nullable=False),
        sa.Column("data", _Blob, nullable=False),
        sa.Column("metadata", _LongText, nullable=True),
        sa.Column("created_at", _Timestamp, server_default=_now(), nullable=False),
        sa.UniqueConstraint(
            "aggregate_type", "aggregate_id", "version", name=f"{prefix}events_stream_version"
        ),
    ]
    if family == "postgresql":
        event_columns.append(sa.Column("tx_id", sa.BigInteger, nullable=False))
        event_columns.append(sa.Index(f"{prefix}events_tx_order", "tx_id", "position"))
    if family == "mysql":
        event_columns.append(sa.Column("seq", sa.BigInteger, nullable=False, server_default="0"))
        event_columns.append(sa.Index(_seq_index(prefix), "seq"))
    events = sa.Table(f"{prefix}events", md, *event_columns, **options)
    snapshots = sa.Table(
        f"{prefix}snapshots",
        md,
        *key_columns(),
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", _Blob, nullable=False),
        sa.Column("created_at", _Timestamp, server_default=_now(), nullable=False),
        **options,
    )
    checkpoints = sa.Table(
        f"{prefix}checkpoints",
        md,
        sa.Column("name", Utf8Key(RELAY_NAME_MAX), primary_key=True),
        sa.Column("tx_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("position", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", _Timestamp, server_default=_now(), nullable=False),
        **options,
    )
    sequencer = None
    if family == "mysql":
        sequencer = sa.Table(
            f"{prefix}sequencer",
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            **options,
        )
    return Tables(md, schema_version, streams, events, snapshots, checkpoints, sequencer)


def schema_version(conn: Connection, tables: Tables) -> int | None:
    """The highest applied migration, 0 when the version table is empty, ``None`` when
    it does not exist."""
    if not sa.inspect(conn).has_table(tables.schema_version.name, schema=tables.metadata.schema):
        return None
    found = conn.execute(sa.select(sa.func.max(tables.schema_version.c.version))).scalar()
    return int(found or 0)


_INITIAL = "streams, events, snapshots, checkpoints"


def _initial(conn: Connection, tables: Tables) -> None:
    for table in tables.all():
        table.create(conn, checkfirst=True)
    if tables.sequencer is not None:
        seq = tables.sequencer
        if conn.execute(sa.select(seq.c.id).where(seq.c.id == 1)).first() is None:
            conn.execute(seq.insert().values(id=1))


_SEQ_CHUNK = 10_000


def _add_seq(conn: Connection, tables: Tables) -> None:
    """MariaDB/MySQL: add ``events.seq`` and its index if missing, and number the rows
    that have none with their position. Before version 2 an append took the sequencer
    lock to insert and commit, so position order was commit order: the numbers keep
    the order every relay has seen, and checkpoints (positions) stay valid as seqs."""
    if tables.sequencer is None:
        return
    ev = tables.events
    prep = conn.dialect.identifier_preparer
    table = prep.format_table(ev)
    columns = {c["name"] for c in sa.inspect(conn).get_columns(ev.name)}
    if "seq" not in columns:
        index = prep.quote(_seq_index(ev.name[: -len("events")]))
        conn.execute(
            sa.text(
                f"ALTER TABLE {table} ADD COLUMN seq BIGINT NOT NULL DEFAULT 0, "
                f"ADD INDEX {index} (seq)"
            )
        )
    number = sa.text(
        f"UPDATE {table} SET seq = position WHERE seq = 0 ORDER BY position LIMIT {_SEQ_CHUNK}"
    )
    while conn.execute(number).rowcount:
        conn.commit()


_MIGRATIONS: list[tuple[int, str, Callable[[Connection, Tables], None]]] = [
    (2, "events.seq: outbox order numbers given after commit (MariaDB/MySQL)", _add_seq),
]
"""Steps from one version to the next; a new database gets :func:`_initial` (the
current tables) and then every step, each of which is idempotent."""


def apply_migrations(conn: Connection, tables: Tables) -> int:
    """Bring the tables up to :data:`SCHEMA_VERSION` on ``conn``; return the version.

    A new database gets the current tables and one version row; an older one runs the
    steps above its version, recording each. The caller holds the database's
    migration lock for the tables, so concurrent runs wait for each other; every step
    is idempotent, so running again is harmless. Raises
    :class:`~esrc_core.errors.EsrcError` when the database's schema is newer than this
    release understands.
    """
    tables.schema_version.create(conn, checkfirst=True)
    current = schema_version(conn, tables) or 0
    if current > SCHEMA_VERSION:
        raise EsrcError(
            f"the tables {tables.schema_version.fullname} are at schema version {current}, "
            f"newer than this esrc-sqlalchemy understands ({SCHEMA_VERSION}); upgrade it"
        )
    record = tables.schema_version.insert()
    if current == 0:
        _initial(conn, tables)
        for _, _, step in _MIGRATIONS:
            step(conn, tables)
        conn.execute(record.values(version=SCHEMA_VERSION, description=_INITIAL))
        return SCHEMA_VERSION
    for version, description, step in _MIGRATIONS:
        if version > current:
            step(conn, tables)
            conn.execute(record.values(version=version, description=description))
            current = version
    return current
