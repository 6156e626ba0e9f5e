"""The event store's tables and their versioned migrations.

Every table name starts with the store's ``table_prefix``. The tables:

- ``<prefix>schema_version``: one row per applied migration (version, description).
- ``<prefix>streams``: one row per stream: aggregate type, encoded aggregate id
  (:func:`esrc_core.ids.encode_id`) and its current version.
- ``<prefix>events``: global position (identity / autoincrement), stream key,
  version, name, data (binary), metadata (JSON text, NULL when empty), created_at,
  schema_version (the form of the data, 1 or more; see :mod:`esrc_core.events`);
  unique (aggregate type, aggregate id, version). On PostgreSQL also ``tx_id``, the
  writing transaction's id, indexed with the position for the outbox. On
  MariaDB/MySQL also ``seq``, the outbox sequence number: 0 when written (not yet
  numbered), given once by the outbox after the row committed, never changed
  (indexed; a fixed-size column, so numbering updates the row in place).
- ``<prefix>snapshots``: (aggregate type, aggregate id, version) -> data and its
  schema_version.
- ``<prefix>checkpoints``: relay name -> the outbox position it has published up to,
  as the pair (tx_id, position); tx_id is 0 except on PostgreSQL, and on MariaDB/MySQL
  the position column holds a ``seq``.
- ``<prefix>sequencer`` (MariaDB/MySQL only): one row whose lock the outboxes take in
  turn to hand out sequence numbers; appends never touch it. Its ``seq_floor`` is the
  largest ``seq`` ever given to a row that was deleted since (stream deletion and
  retention): numbering goes on above it, so no number is given twice.

Versions: 1 created the tables; 2 added ``seq`` on MariaDB/MySQL (existing rows get
``seq = position``, which was their commit order, so checkpoints stay valid); 3 added
``sequencer.seq_floor`` on MariaDB/MySQL (0: no row was deleted before) and made the
events' positions ``AUTOINCREMENT`` on SQLite (the table is rebuilt), so that a
position is never given twice even after the rows holding the largest ones are
deleted; 4 added ``schema_version`` to the events and the snapshots (existing rows
read as 1, the only version earlier releases wrote).

Stream keys compare exactly (case, trailing spaces and all). What differs between the
databases (column types, table options, the extra columns, the sequencer, the steps of
a migration that only one database needs) is a :class:`Ddl` that each module of
:mod:`esrc_sqlalchemy.dialects` defines; this module builds the tables from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeEngine

from esrc_sqlalchemy.errors import StoreConfigError

__all__ = [
    "ID_MAX",
    "NAME_MAX",
    "RELAY_NAME_MAX",
    "SCHEMA_VERSION",
    "TYPE_MAX",
    "Ddl",
    "MigrationStep",
    "Tables",
    "apply_migrations",
    "build_tables",
    "check_identifier",
    "schema_version",
]

SCHEMA_VERSION = 4
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


MigrationStep = Callable[[Connection, "Tables"], None]
"""One idempotent migration step run on a connection holding the migration lock."""


def _no_columns(prefix: str) -> list[Any]:
    return []


@dataclass(frozen=True)
class Ddl:
    """How one database spells the store's tables; each database's module in
    :mod:`esrc_sqlalchemy.dialects` defines one, and :func:`build_tables` reads it."""

    key: Callable[[int], TypeEngine[str]]
    """The type of a stream key or relay name column of a given length in characters:
    text that compares exactly (case and trailing spaces included) and sorts by code
    point."""
    position: TypeEngine[int]
    """The events' global position (an identity / autoincrement primary key)."""
    blob: TypeEngine[bytes]
    """Event and snapshot data, up to the store's ``max_payload_bytes``."""
    long_text: TypeEngine[str]
    """Event metadata as JSON text, as long as the data."""
    table_options: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments of every :class:`sqlalchemy.Table` (storage engine, charset)."""
    events_options: Mapping[str, Any] = field(default_factory=dict)
    """More keyword arguments of the events table alone (SQLite: ``AUTOINCREMENT``)."""
    event_columns: Callable[[str], list[Any]] = _no_columns
    """The database's own columns and indexes of the events table, for a prefix."""
    sequencer: bool = False
    """Whether the database has the ``sequencer`` table (a single row, id 1)."""
    steps: Mapping[int, MigrationStep] = field(default_factory=dict)
    """The database's work for each schema version above 1 that needs any."""


@dataclass(frozen=True)
class Tables:
    """The store's tables for one prefix, schema and database."""

    metadata: sa.MetaData
    schema_version: sa.Table
    streams: sa.Table
    events: sa.Table
    snapshots: sa.Table
    checkpoints: sa.Table
    sequencer: sa.Table | None
    prefix: str
    """The table prefix."""
    ddl: Ddl
    """The database's spelling the tables were built with."""

    @property
    def schema(self) -> str | None:
        """The PostgreSQL schema holding the tables, or ``None``."""
        return self.metadata.schema

    def key_parameters(self) -> tuple[sa.BindParameter[str], sa.BindParameter[str]]:
        """The ``key_type`` and ``key_id`` bind parameters that name a stream, typed as
        the key columns are."""
        return (
            sa.bindparam("key_type", type_=self.ddl.key(TYPE_MAX)),
            sa.bindparam("key_id", type_=self.ddl.key(ID_MAX)),
        )

    def relay_name_parameter(self, name: str) -> sa.BindParameter[str]:
        """A bind parameter ``name`` typed as the checkpoints' relay name column."""
        return sa.bindparam(name, type_=self.ddl.key(RELAY_NAME_MAX))

    def stream_events(self, *columns: sa.ColumnElement[Any]) -> sa.Select[Any]:
        """``SELECT columns`` of one stream's events after ``:from_version``, in version
        order, for the parameters ``key_type``, ``key_id`` and ``from_version``.

        The events are outer-joined to the stream's row: a stream with no events after
        ``from_version`` gives one row whose event columns are ``NULL``, and a stream
        that does not exist gives no row, in the same single query."""
        st, ev = self.streams, self.events
        key_t, key_i = self.key_parameters()
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


_Timestamp = sa.DateTime(timezone=True)


def _now() -> sa.FetchedValue:
    return sa.DefaultClause(sa.func.current_timestamp())


def _schema_version_column() -> sa.Column[int]:
    return sa.Column("schema_version", sa.SmallInteger, nullable=False, server_default="1")


def build_tables(prefix: str, schema: str | None, ddl: Ddl) -> Tables:
    """The table definitions for ``prefix`` (checked with :func:`check_identifier`),
    an optional PostgreSQL ``schema`` and a database's :class:`Ddl` (the ``ddl`` of
    its dialect class in :mod:`esrc_sqlalchemy.dialects`)."""
    check_identifier(prefix, "table_prefix")
    if schema is not None:
        check_identifier(schema, "schema")
    md = sa.MetaData(schema=schema)
    options = dict(ddl.table_options)
    key = ddl.key

    def key_columns() -> list[sa.Column[Any]]:
        return [
            sa.Column("aggregate_type", key(TYPE_MAX), primary_key=True),
            sa.Column("aggregate_id", key(ID_MAX), primary_key=True),
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
        sa.Column("position", ddl.position, sa.Identity(), primary_key=True),
        sa.Column("aggregate_type", key(TYPE_MAX), nullable=False),
        sa.Column("aggregate_id", key(ID_MAX), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(NAME_MAX), nullable=False),
        sa.Column("data", ddl.blob, nullable=False),
        sa.Column("metadata", ddl.long_text, nullable=True),
        sa.Column("created_at", _Timestamp, server_default=_now(), nullable=False),
        _schema_version_column(),
        sa.UniqueConstraint(
            "aggregate_type", "aggregate_id", "version", name=f"{prefix}events_stream_version"
        ),
        *ddl.event_columns(prefix),
    ]
    events = sa.Table(f"{prefix}events", md, *event_columns, **options, **ddl.events_options)
    snapshots = sa.Table(
        f"{prefix}snapshots",
        md,
        *key_columns(),
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", ddl.blob, nullable=False),
        sa.Column("created_at", _Timestamp, server_default=_now(), nullable=False),
        _schema_version_column(),
        **options,
    )
    checkpoints = sa.Table(
        f"{prefix}checkpoints",
        md,
        sa.Column("name", key(RELAY_NAME_MAX), primary_key=True),
        sa.Column("tx_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("position", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", _Timestamp, server_default=_now(), nullable=False),
        **options,
    )
    sequencer = None
    if ddl.sequencer:
        sequencer = sa.Table(
            f"{prefix}sequencer",
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("seq_floor", sa.BigInteger, nullable=False, server_default="0"),
            **options,
        )
    return Tables(
        md, schema_version, streams, events, snapshots, checkpoints, sequencer, prefix, ddl
    )


def schema_version(conn: Connection, tables: Tables) -> int | None:
    """The highest applied migration, 0 when the version table is empty, ``None`` when
    it does not exist."""
    if not sa.inspect(conn).has_table(tables.schema_version.name, schema=tables.schema):
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


_MIGRATIONS: list[tuple[int, str]] = [
    (2, "events.seq: outbox order numbers given after commit (MariaDB/MySQL)"),
    (3, "no outbox number given twice after rows are deleted (MariaDB/MySQL, SQLite)"),
    (4, "events.schema_version and snapshots.schema_version (existing rows: 1)"),
]
"""The versions above 1 and what each changed; every database does the work of a
version in :data:`_STEPS`, then its own in its :attr:`Ddl.steps` (nothing when
neither has any for it). A new database gets :func:`_initial` (the current tables)
and then every step, each of which is idempotent."""


def _add_schema_versions(conn: Connection, tables: Tables) -> None:
    """Schema version 4: add ``schema_version`` (``NOT NULL DEFAULT 1``) to the events
    and the snapshots where it is missing; every row written before holds version 1."""
    inspector = sa.inspect(conn)
    prep = conn.dialect.identifier_preparer
    for table in (tables.events, tables.snapshots):
        columns = {c["name"] for c in inspector.get_columns(table.name, schema=tables.schema)}
        if "schema_version" not in columns:
            conn.execute(
                sa.text(
                    f"ALTER TABLE {prep.format_table(table)} "
                    "ADD COLUMN schema_version SMALLINT NOT NULL DEFAULT 1"
                )
            )


_STEPS: Mapping[int, MigrationStep] = {4: _add_schema_versions}
"""The work of a version that every database does alike (before its own steps)."""


def _run_step(version: int, conn: Connection, tables: Tables) -> None:
    if version in _STEPS:
        _STEPS[version](conn, tables)
    if version in tables.ddl.steps:
        tables.ddl.steps[version](conn, tables)


def schema_sql(tables: Tables, dialect: sa.Dialect) -> list[str]:
    """The statements, in ``dialect``'s SQL, that create ``tables`` at
    :data:`SCHEMA_VERSION` in an empty database: what :func:`apply_migrations` does
    there, built without a connection (the schema if one is named, each table with
    its indexes, the sequencer's row, the version row)."""
    statements: list[sa.ExecutableDDLElement | sa.Insert] = []
    if tables.schema is not None:
        statements.append(sa.schema.CreateSchema(tables.schema, if_not_exists=True))
    for table in tables.all():
        statements.append(sa.schema.CreateTable(table))
        statements.extend(sa.schema.CreateIndex(index) for index in table.indexes)
    if tables.sequencer is not None:
        statements.append(tables.sequencer.insert().values(id=1))
    statements.append(
        tables.schema_version.insert().values(version=SCHEMA_VERSION, description=_INITIAL)
    )
    return [
        str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})).strip()
        for statement in statements
    ]


def apply_migrations(conn: Connection, tables: Tables) -> int:
    """Bring the tables up to :data:`SCHEMA_VERSION` on ``conn``; return the version.

    A new database gets the current tables and one version row; an older one runs the
    steps above its version, recording each. The caller holds the database's
    migration lock for the tables, so concurrent runs wait for each other; every step
    is idempotent, so running again is harmless. Raises
    :class:`~esrc_sqlalchemy.errors.StoreConfigError` when the database's schema is
    newer than this release understands (no retry fixes that: upgrade).
    """
    tables.schema_version.create(conn, checkfirst=True)
    current = schema_version(conn, tables) or 0
    if current > SCHEMA_VERSION:
        raise StoreConfigError(
            f"the tables {tables.schema_version.fullname} are at schema version {current}, "
            f"newer than this esrc-sqlalchemy understands ({SCHEMA_VERSION}); upgrade it"
        )
    record = tables.schema_version.insert()
    if current == 0:
        _initial(conn, tables)
        for version, _ in _MIGRATIONS:
            _run_step(version, conn, tables)
        conn.execute(record.values(version=SCHEMA_VERSION, description=_INITIAL))
        return SCHEMA_VERSION
    for version, description in _MIGRATIONS:
        if version > current:
            _run_step(version, conn, tables)
            conn.execute(record.values(version=version, description=description))
            current = version
    return current
