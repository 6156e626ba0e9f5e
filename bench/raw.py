"""The raw side: the same writes and reads done with the bare driver, no esrc in between.

psycopg 3, PyMySQL and the standard ``sqlite3`` module talk to the same database as the
backend, through an equivalent table (one row per event, a unique key on the stream
and version, an auto-incremented global position) and an equivalent snapshot table.
What the raw side does is the floor: the least work the driver and server need for the
same writes, so the backend's figure divided by it is the price of everything esrc adds.

A connection is in autocommit mode unless asked otherwise: every append is one INSERT
statement and nothing else (the fewest round trips the driver allows), and reads are a
bare SELECT. psycopg reads in binary format (``cursor(binary=True)``) and prepares a
statement on the server after it ran a few times; every connection reuses one cursor.
A connection opened with ``autocommit=False`` commits an explicit transaction after
each statement instead: the raw side of earlier versions of the harness, kept so that
old and new figures can be compared.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from esrc_core import mask_url

__all__ = ["RawConnection", "RawDatabase", "Row", "open_raw_database"]

Row = tuple[str, str, int, str, bytes, str]
"""One event as the raw table holds it: aggregate type, encoded aggregate id, version,
event name, payload bytes, metadata as JSON text."""

_COLUMNS = "aggregate_type, aggregate_id, version, name, data, metadata"


class _Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[object] = ..., /) -> object: ...
    def fetchall(self) -> Sequence[Sequence[Any]]: ...
    def fetchone(self) -> Sequence[Any] | None: ...
    def close(self) -> None: ...


class _Connection(Protocol):
    def cursor(self) -> _Cursor: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class _Dialect:
    """What differs between the three databases, as SQL text."""

    placeholder: str
    events_ddl: str
    snapshots_ddl: str
    list_tables: str
    drop_table: str
    analyze_table: str
    before_drop: tuple[str, ...] = ()
    server_queries: tuple[tuple[str, str], ...] = ()


_POSTGRESQL = _Dialect(
    placeholder="%s",
    events_ddl=(
        "CREATE TABLE {table} ("
        "position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "aggregate_type VARCHAR(200) NOT NULL, aggregate_id VARCHAR(400) NOT NULL, "
        "version BIGINT NOT NULL, name VARCHAR(200) NOT NULL, data BYTEA NOT NULL, "
        "metadata TEXT NOT NULL, UNIQUE (aggregate_type, aggregate_id, version))"
    ),
    snapshots_ddl=(
        "CREATE TABLE {table} ("
        "aggregate_type VARCHAR(200) NOT NULL, aggregate_id VARCHAR(400) NOT NULL, "
        "version BIGINT NOT NULL, data BYTEA NOT NULL, "
        "PRIMARY KEY (aggregate_type, aggregate_id, version))"
    ),
    list_tables="SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
    drop_table='DROP TABLE IF EXISTS "{table}" CASCADE',
    analyze_table='ANALYZE "{table}"',
    before_drop=("SET lock_timeout = '30s'",),
    server_queries=(
        ("server_version", "SHOW server_version"),
        ("server", "SELECT version()"),
        ("synchronous_commit", "SHOW synchronous_commit"),
        ("fsync", "SHOW fsync"),
        ("shared_buffers", "SHOW shared_buffers"),
    ),
)

_MYSQL = _Dialect(
    placeholder="%s",
    events_ddl=(
        "CREATE TABLE {table} ("
        "position BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "aggregate_type VARBINARY(800) NOT NULL, aggregate_id VARBINARY(1600) NOT NULL, "
        "version BIGINT NOT NULL, name VARCHAR(200) NOT NULL, data LONGBLOB NOT NULL, "
        "metadata LONGTEXT NOT NULL, UNIQUE KEY (aggregate_type, aggregate_id, version)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    ),
    snapshots_ddl=(
        "CREATE TABLE {table} ("
        "aggregate_type VARBINARY(800) NOT NULL, aggregate_id VARBINARY(1600) NOT NULL, "
        "version BIGINT NOT NULL, data LONGBLOB NOT NULL, "
        "PRIMARY KEY (aggregate_type, aggregate_id, version)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    ),
    list_tables="SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
    drop_table="DROP TABLE IF EXISTS `{table}`",
    analyze_table="ANALYZE TABLE `{table}`",
    before_drop=("SET SESSION FOREIGN_KEY_CHECKS = 0", "SET SESSION lock_wait_timeout = 30"),
    server_queries=(
        ("server_version", "SELECT VERSION()"),
        ("innodb_flush_log_at_trx_commit", "SELECT @@innodb_flush_log_at_trx_commit"),
        ("sync_binlog", "SELECT @@sync_binlog"),
        ("log_bin", "SELECT @@log_bin"),
        ("session_isolation", "SELECT @@tx_isolation"),
        ("innodb_buffer_pool_size", "SELECT @@innodb_buffer_pool_size"),
    ),
)

_SQLITE = _Dialect(
    placeholder="?",
    events_ddl=(
        "CREATE TABLE {table} ("
        "position INTEGER PRIMARY KEY AUTOINCREMENT, "
        "aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT NULL, "
        "version INTEGER NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL, "
        "metadata TEXT NOT NULL, UNIQUE (aggregate_type, aggregate_id, version))"
    ),
    snapshots_ddl=(
        "CREATE TABLE {table} ("
        "aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT NULL, "
        "version INTEGER NOT NULL, data BLOB NOT NULL, "
        "PRIMARY KEY (aggregate_type, aggregate_id, version))"
    ),
    list_tables="SELECT name FROM sqlite_master WHERE type = 'table'",
    drop_table='DROP TABLE IF EXISTS "{table}"',
    analyze_table='ANALYZE "{table}"',
    server_queries=(
        ("server_version", "SELECT sqlite_version()"),
        ("journal_mode", "PRAGMA journal_mode"),
        ("synchronous", "PRAGMA synchronous"),
    ),
)


Cursors = Callable[[Any], _Cursor]
"""Opens the cursor a raw connection reuses (psycopg: a binary one)."""


class RawConnection:
    """One raw driver connection, used by one thread.

    With ``autocommit`` (the default) every method is one statement, committed by the
    server on its own. Without, every method is one transaction that it commits (reads
    too, so the connection is never left idle inside a transaction, which would hold
    back the outbox on PostgreSQL).
    """

    def __init__(
        self,
        connection: _Connection,
        dialect: _Dialect,
        prefix: str,
        *,
        autocommit: bool = True,
        cursor: Cursors | None = None,
    ) -> None:
        self._connection = connection
        self._cursor = cursor(connection) if cursor is not None else connection.cursor()
        self.autocommit = autocommit
        """Whether each statement commits on its own (no explicit transaction)."""
        self._dialect = dialect
        self._events = f"{prefix}events"
        self._snapshots = f"{prefix}snapshots"
        self._inserts: dict[int, str] = {}
        mark = dialect.placeholder
        self._load_snapshot = (
            f"SELECT version, data FROM {self._snapshots} "
            f"WHERE aggregate_type = {mark} AND aggregate_id = {mark} "
            "ORDER BY version DESC LIMIT 1"
        )
        self._load_events = (
            f"SELECT version, name, data, metadata FROM {self._events} "
            f"WHERE aggregate_type = {mark} AND aggregate_id = {mark} AND version > {mark} "
            "ORDER BY version"
        )
        self._page = (
            f"SELECT position, {_COLUMNS} FROM {self._events} "
            f"WHERE position > {mark} ORDER BY position LIMIT {mark}"
        )

    def _insert_sql(self, count: int) -> str:
        sql = self._inserts.get(count)
        if sql is None:
            group = "(" + ", ".join([self._dialect.placeholder] * 6) + ")"
            sql = f"INSERT INTO {self._events} ({_COLUMNS}) VALUES " + ", ".join([group] * count)
            self._inserts[count] = sql
        return sql

    def _commit(self) -> None:
        if not self.autocommit:
            self._connection.commit()

    def insert(self, rows: Sequence[Row]) -> None:
        """Insert ``rows`` with one INSERT statement (one row: a single-row INSERT;
        several: a multi-row INSERT): autocommitted, or in a transaction committed
        explicitly."""
        params = [value for row in rows for value in row]
        if self.autocommit:
            self._cursor.execute(self._insert_sql(len(rows)), params)
            return
        try:
            self._cursor.execute(self._insert_sql(len(rows)), params)
            self._connection.commit()
        except BaseException:
            self._connection.rollback()
            raise

    def insert_snapshot(
        self, aggregate_type: str, aggregate_id: str, version: int, data: bytes
    ) -> None:
        """Store one snapshot row."""
        mark = self._dialect.placeholder
        self._cursor.execute(
            f"INSERT INTO {self._snapshots} (aggregate_type, aggregate_id, version, data) "
            f"VALUES ({mark}, {mark}, {mark}, {mark})",
            (aggregate_type, aggregate_id, version, data),
        )
        self._commit()

    def load(
        self, aggregate_type: str, aggregate_id: str, *, snapshot: bool, decode: bool
    ) -> tuple[Any, list[Any]]:
        """Read a stream the fewest ways the driver allows and return (snapshot or
        ``None``, events).

        With ``snapshot``, first the latest snapshot, then the events after it (two
        statements, both prepared on PostgreSQL: a single ``WITH`` statement returning
        both was measured no faster there, and slower on MariaDB); without, one SELECT
        of every event. With ``decode`` the snapshot
        and every payload are ``json.loads``-ed (what an application pays to decode);
        without, the rows are returned as the driver gives them."""
        after = 0
        state: Any = None
        if snapshot:
            self._cursor.execute(self._load_snapshot, (aggregate_type, aggregate_id))
            state = self._cursor.fetchone()
            if state is not None:
                after = state[0]
        self._cursor.execute(self._load_events, (aggregate_type, aggregate_id, after))
        rows = self._cursor.fetchall()
        self._commit()
        if not decode:
            return state, cast(list[Any], rows)
        decoded = json.loads(state[1]) if state is not None else None
        return decoded, [json.loads(row[2]) for row in rows]

    def page(self, after_position: int, limit: int) -> Sequence[Sequence[Any]]:
        """Up to ``limit`` events with a position above ``after_position``, in position
        order: ``(position, aggregate_type, aggregate_id, version, name, data, metadata)``."""
        self._cursor.execute(self._page, (after_position, limit))
        rows = self._cursor.fetchall()
        self._commit()
        return rows

    def close(self) -> None:
        """Close the connection."""
        try:
            self._cursor.close()
        finally:
            self._connection.close()


class RawDatabase:
    """The raw driver side of one database: connections, the equivalent tables, and the
    server's version and settings.

    Tables are named ``<prefix>events`` and ``<prefix>snapshots``.
    """

    def __init__(
        self,
        kind: str,
        url: str,
        dialect: _Dialect,
        connect: Callable[[bool], _Connection],
        *,
        prefix: str,
        cursor: Cursors | None = None,
        driver: dict[str, str],
        secret: str | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.url = url
        self.prefix = prefix
        self.driver = driver
        self.settings = dict(settings or {})
        """Settings of the raw side the report records beside the store's (SQLite: the
        pragmas every connection runs)."""
        self._dialect = dialect
        self._open = connect
        self._cursor = cursor
        self._secret = secret

    def _connect(self) -> _Connection:
        return self._open(False)

    def scrub(self, message: str) -> str:
        """``message`` with the URL's password, if any, replaced by ``***``."""
        if self._secret:
            message = message.replace(self._secret, "***")
        return message

    def connect(self, *, autocommit: bool = True) -> RawConnection:
        """A new connection (for one thread): in autocommit mode, or one that commits an
        explicit transaction after each statement (``autocommit=False``)."""
        return RawConnection(
            self._open(autocommit),
            self._dialect,
            self.prefix,
            autocommit=autocommit,
            cursor=self._cursor,
        )

    def _execute_all(self, statements: Sequence[str]) -> None:
        connection = self._connect()
        try:
            cursor = connection.cursor()
            for statement in statements:
                cursor.execute(statement)
            connection.commit()
        finally:
            connection.close()

    def server(self) -> dict[str, str]:
        """The server's version and the settings that decide what a commit costs."""
        connection = self._connect()
        info: dict[str, str] = {}
        try:
            cursor = connection.cursor()
            for key, query in self._dialect.server_queries:
                try:
                    cursor.execute(query)
                    row = cursor.fetchone()
                    info[key] = str(row[0]) if row else ""
                except Exception as err:
                    connection.rollback()
                    info[key] = f"unavailable ({type(err).__name__})"
            connection.rollback()
        finally:
            connection.close()
        return info

    def create_tables(self) -> None:
        """Create the raw event and snapshot tables (they must not exist)."""
        self._execute_all(
            [
                self._dialect.events_ddl.format(table=f"{self.prefix}events"),
                self._dialect.snapshots_ddl.format(table=f"{self.prefix}snapshots"),
            ]
        )

    def _tables(self, cursor: _Cursor, prefixes: Sequence[str]) -> list[str]:
        cursor.execute(self._dialect.list_tables)
        return sorted(
            str(row[0])
            for row in cursor.fetchall()
            if any(str(row[0]).startswith(prefix) for prefix in prefixes)
        )

    def analyze_tables(self, prefixes: Sequence[str]) -> list[str]:
        """Gather the planner's statistics of every table whose name starts with one of
        ``prefixes`` (as a database in service has them; fresh tables have none);
        return their names."""
        connection = self._connect()
        try:
            cursor = connection.cursor()
            names = self._tables(cursor, prefixes)
            connection.commit()
            for name in names:
                cursor.execute(self._dialect.analyze_table.format(table=name))
                if self.kind == "mysql":
                    cursor.fetchall()
            connection.commit()
        finally:
            connection.close()
        return names

    def drop_tables(self, prefixes: Sequence[str]) -> list[str]:
        """Drop every table whose name starts with one of ``prefixes``; return their names."""
        connection = self._connect()
        try:
            cursor = connection.cursor()
            names = self._tables(cursor, prefixes)
            connection.commit()
            for statement in self._dialect.before_drop:
                cursor.execute(statement)
            for name in names:
                cursor.execute(self._dialect.drop_table.format(table=name))
            connection.commit()
        finally:
            connection.close()
        return names


@dataclass(frozen=True)
class _Url:
    scheme: str
    user: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str
    query: dict[str, str]


def _parse(url: str) -> _Url:
    parts = urlsplit(url)
    return _Url(
        scheme=parts.scheme.lower(),
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        host=parts.hostname,
        port=parts.port,
        database=unquote(parts.path[1:]) if parts.path.startswith("/") else parts.path,
        query=dict(parse_qsl(parts.query)),
    )


def _postgresql(url: str, prefix: str, timeout: float, _pragmas: Sequence[str]) -> RawDatabase:
    import psycopg

    parsed = _parse(url)
    params: dict[str, Any] = {"dbname": parsed.database, **parsed.query}
    for key, value in (
        ("host", parsed.host),
        ("port", parsed.port),
        ("user", parsed.user),
        ("password", parsed.password),
    ):
        if value is not None:
            params[key] = value
    params.setdefault("connect_timeout", max(1, round(timeout)))

    def connect(autocommit: bool) -> _Connection:
        return cast(_Connection, psycopg.connect(**params, autocommit=autocommit))

    def binary(connection: Any) -> _Cursor:
        return cast(_Cursor, connection.cursor(binary=True))

    driver = {"name": "psycopg", "version": psycopg.__version__}
    try:
        driver["libpq"] = str(psycopg.pq.version())
        driver["implementation"] = psycopg.pq.__impl__
    except Exception as err:  # the version is a nicety; never fail the run on it
        driver["libpq"] = f"unavailable ({type(err).__name__})"
    return RawDatabase(
        "postgresql",
        url,
        _POSTGRESQL,
        connect,
        prefix=prefix,
        driver=driver,
        secret=parsed.password,
        cursor=binary,
        settings={"raw_reads": "binary", "raw_appends": "autocommit"},
    )


def _mysql(url: str, prefix: str, timeout: float, _pragmas: Sequence[str]) -> RawDatabase:
    import pymysql  # type: ignore[import-untyped,unused-ignore]

    parsed = _parse(url)
    params: dict[str, Any] = {
        "host": parsed.host or "localhost",
        "port": parsed.port or 3306,
        "user": parsed.user or "root",
        "password": parsed.password or "",
        "database": parsed.database,
        "charset": parsed.query.get("charset", "utf8mb4"),
        "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "connect_timeout": max(1, round(timeout)),
    }

    def connect(autocommit: bool) -> _Connection:
        return cast(_Connection, pymysql.connect(**params, autocommit=autocommit))

    return RawDatabase(
        "mysql",
        url,
        _MYSQL,
        connect,
        prefix=prefix,
        driver={"name": "pymysql", "version": pymysql.VERSION_STRING},
        secret=parsed.password,
        settings={"raw_appends": "autocommit"},
    )


def _sqlite(url: str, prefix: str, timeout: float, pragmas: Sequence[str]) -> RawDatabase:
    path = _parse(url).database
    if not path or path == ":memory:":
        raise ValueError(f"the benchmark needs an SQLite file, got {mask_url(url)!r}")

    def connect(autocommit: bool) -> _Connection:
        connection = sqlite3.connect(
            path,
            timeout=max(timeout, 30.0),
            isolation_level=None if autocommit else "DEFERRED",
        )
        for pragma in pragmas:
            connection.execute(pragma)
        return cast(_Connection, connection)

    return RawDatabase(
        "sqlite",
        url,
        _SQLITE,
        connect,
        prefix=prefix,
        driver={
            "name": "sqlite3",
            "version": sqlite3.sqlite_version,
            "pragmas": "; ".join(pragmas),
        },
        settings={"raw_sqlite_pragmas": "; ".join(pragmas), "raw_appends": "autocommit"},
    )


_OPENERS: dict[str, Callable[[str, str, float, Sequence[str]], RawDatabase]] = {
    "postgresql": _postgresql,
    "mysql": _mysql,
    "sqlite": _sqlite,
}
"""How to open each database's raw side, by backend name: ``(url, prefix, timeout,
sqlite_pragmas)``."""


def open_raw_database(
    kind: str,
    url: str,
    *,
    prefix: str,
    timeout: float = 5.0,
    sqlite_pragmas: Sequence[str] = (),
) -> RawDatabase:
    """The raw side for ``url`` (an SQLAlchemy-style URL of kind ``postgresql``,
    ``mysql`` or ``sqlite``), with tables named ``<prefix>...``.

    Imports the driver; raises ``ImportError`` when it is missing and ``ValueError``
    for an unknown kind. ``sqlite_pragmas`` run on every new SQLite connection.
    Nothing is connected yet.
    """
    opener = _OPENERS.get(kind)
    if opener is None:
        raise ValueError(f"no raw driver for {kind!r}; expected {', '.join(_OPENERS)}")
    return opener(url, prefix, timeout, tuple(sqlite_pragmas))
