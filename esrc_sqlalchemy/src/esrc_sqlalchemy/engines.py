"""Database URLs and engines: the URLs the SQL backend accepts, the driver behind each,
and SQLAlchemy engines configured for an event store.

Accepted URLs (SQLAlchemy style):

- ``sqlite:///path/to/events.db`` (a file) and ``sqlite://`` (in memory, private to
  the store, usable from many threads);
- ``postgresql://...`` and ``postgresql+psycopg://...`` (psycopg 3);
- ``mysql://...``, ``mariadb://...`` and their ``+pymysql`` forms (PyMySQL).
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from esrc_core.errors import BackendUnavailableError
from esrc_core.urls import mask_url, url_scheme
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import StaticPool

from esrc_sqlalchemy.errors import StoreConfigError
from esrc_sqlalchemy.plugin import INSTALL_HINT

__all__ = [
    "check_engine",
    "create_store_engine",
    "family_of",
    "is_memory_sqlite",
    "normalize_url",
]

# family -> (default driver, {accepted drivers}, extra to install)
_FAMILIES: dict[str, tuple[str, frozenset[str], str | None]] = {
    "sqlite": ("pysqlite", frozenset({"pysqlite"}), None),
    "postgresql": ("psycopg", frozenset({"psycopg"}), "postgresql"),
    "mysql": ("pymysql", frozenset({"pymysql"}), "mysql"),
    "mariadb": ("pymysql", frozenset({"pymysql"}), "mysql"),
}
_MODULES = {"pysqlite": "sqlite3", "psycopg": "psycopg", "pymysql": "pymysql"}
_WAL_SWITCH_SECONDS = 10.0
_SERVER_STATUS_IN_TRANS = 1  # MySQL protocol server status flag
_SERVER_POOL = {"pool_size": 10, "max_overflow": 20}
"""Connections kept open per server store: SQLAlchemy's default (5, and closing every
connection beyond it when returned) makes busy threads reconnect all the time."""


def family_of(dialect_name: str) -> str:
    """``"postgresql"``, ``"mysql"`` (also for MariaDB) or ``"sqlite"`` for a SQLAlchemy
    dialect name; raises :class:`StoreConfigError` for any other database."""
    if dialect_name in ("mysql", "mariadb"):
        return "mysql"
    if dialect_name in ("postgresql", "sqlite"):
        return dialect_name
    raise StoreConfigError(
        f"the SQL event store supports SQLite, PostgreSQL and MariaDB/MySQL, not {dialect_name!r}"
    )


def check_engine(engine: Engine) -> str:
    """The family of an application's ``engine`` (see :func:`family_of`); raises
    :class:`StoreConfigError` when its driver is not the one the store supports for
    that database (psycopg 3, PyMySQL, the standard library's sqlite3)."""
    family = family_of(engine.dialect.name)
    default, accepted, _ = _FAMILIES[family]
    driver = engine.dialect.driver
    if driver not in accepted:
        raise StoreConfigError(
            f"the engine for {engine.url.render_as_string(hide_password=True)!r} uses "
            f"driver {driver!r}; the SQL event store needs {family}+{default}"
        )
    return family


def normalize_url(url: str) -> URL:
    """Parse a store URL into a SQLAlchemy :class:`~sqlalchemy.engine.URL` with an
    explicit, supported driver (``postgresql://`` becomes ``postgresql+psycopg://``,
    ``mysql://`` and ``mariadb://`` use ``pymysql``).

    Raises :class:`StoreConfigError` for a malformed URL or an unsupported database or
    driver, and :class:`~esrc_core.errors.BackendUnavailableError` naming the extra to
    install when the driver is missing. Messages mask the password.
    """
    if not isinstance(url, str):
        raise StoreConfigError(f"a store URL must be a str, got {type(url).__name__}")
    shown = mask_url(url)
    scheme = url_scheme(url)
    if scheme is None:
        raise StoreConfigError(f"malformed store URL {shown!r}: expected scheme://...")
    family, _, driver = scheme.partition("+")
    if family not in _FAMILIES:
        raise StoreConfigError(
            f"store URL {shown!r}: the SQL backend handles sqlite://, postgresql:// and "
            f"mysql:// / mariadb:// URLs, not {family}://"
        )
    default, accepted, extra = _FAMILIES[family]
    driver = driver or default
    if driver not in accepted:
        raise StoreConfigError(
            f"store URL {shown!r}: driver {driver!r} is not supported for {family}; "
            f"use {family}+{default}:// (or plain {family}://)"
        )
    try:
        parsed = sa.make_url(f"{family}+{driver}" + url[len(scheme) :])
    except (sqlalchemy.exc.ArgumentError, ValueError, TypeError) as err:
        # The parser's message may quote the raw URL; say what is wrong without it.
        problem = type(err).__name__
        if isinstance(err, ValueError) and "int()" in str(err):
            problem = "the port is not a number"
        raise StoreConfigError(f"malformed store URL {shown!r}: {problem}") from None
    if family == "mysql" and not parsed.database:
        raise StoreConfigError(f"store URL {shown!r} names no database: use {family}://host/db")
    module = _MODULES[driver]
    if importlib.util.find_spec(module) is None:
        install = f'pip install "esrc-sqlalchemy[{extra}]"' if extra else INSTALL_HINT
        raise BackendUnavailableError(
            f"cannot open {shown!r}: its driver {module!r} is not installed; {install}"
        )
    return parsed


def is_memory_sqlite(url: URL) -> bool:
    """Whether ``url`` is an in-memory SQLite database (``sqlite://``)."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """Put the database file in WAL mode (it stays so). Switching needs the file to
    itself and SQLite does not wait for that (no busy timeout), so connections that
    open a new file at the same moment retry for a while instead of failing."""
    import sqlite3

    cursor = dbapi_connection.cursor()
    deadline = time.monotonic() + _WAL_SWITCH_SECONDS
    try:
        while True:
            try:
                if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    cursor.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
    finally:
        cursor.close()


def create_store_engine(
    url: URL, *, connect_timeout: float, engine_options: Mapping[str, Any] | None = None
) -> Engine:
    """A new engine for ``url`` (from :func:`normalize_url`) set up for the event store.

    - SQLite file: a connection pool usable from any thread, WAL journal, and
      ``connect_timeout`` as the time a writer waits for the database lock.
    - SQLite in memory: one shared connection (the store serializes its use).
    - PostgreSQL and MariaDB/MySQL: a pool keeping up to 10 connections open (30 at
      most), so that concurrent threads do not reconnect for every call.
    - PostgreSQL: ``connect_timeout`` (libpq rounds it up to whole seconds, at least 2).
    - MariaDB/MySQL: ``connect_timeout``, utf8mb4, autocommit (single statements
      commit by themselves; appends open a READ COMMITTED transaction explicitly), and
      no ``COMMIT``/``ROLLBACK`` round trip when the server reports no open transaction,
      and connections replaced after an hour (before the server's ``wait_timeout``).

    Bound parameters are hidden from SQLAlchemy's error messages. ``engine_options``
    are passed to :func:`sqlalchemy.create_engine` and override these settings.
    """
    family = family_of(url.get_backend_name())
    options: dict[str, Any] = {"hide_parameters": True}
    if family == "sqlite":
        if is_memory_sqlite(url):
            options["poolclass"] = StaticPool
            options["connect_args"] = {"check_same_thread": False}
        else:
            options["connect_args"] = {"check_same_thread": False, "timeout": connect_timeout}
    elif family == "postgresql":
        options.update(_SERVER_POOL)
        options["connect_args"] = {"connect_timeout": max(2, math.ceil(connect_timeout))}
    else:
        options.update(_SERVER_POOL)
        options["pool_recycle"] = 3600
        options["connect_args"] = {
            "connect_timeout": connect_timeout,
            "charset": "utf8mb4",
            "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        }
        options["isolation_level"] = "AUTOCOMMIT"
    options.update(engine_options or {})
    try:
        engine = sa.create_engine(url, **options)
    except ImportError as err:
        raise BackendUnavailableError(
            f"cannot open {url.render_as_string(hide_password=True)!r}: {err}; {INSTALL_HINT}"
        ) from err
    except (sqlalchemy.exc.ArgumentError, TypeError) as err:
        raise StoreConfigError(
            f"cannot create an engine for {url.render_as_string(hide_password=True)!r}: {err}"
        ) from err
    if family == "sqlite" and not is_memory_sqlite(url):
        sa.event.listen(engine, "connect", _sqlite_wal)
    if family == "mysql":
        _skip_idle_transaction_ends(engine)
    return engine


def _skip_idle_transaction_ends(engine: Engine) -> None:
    """Make ``engine``'s dialect skip ``COMMIT`` and ``ROLLBACK`` when PyMySQL's last
    server status says no transaction is open (in autocommit mode, after a single
    statement), instead of spending a round trip on a no-op."""
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def in_transaction(dbapi_connection: Any) -> bool:
        status = getattr(dbapi_connection, "server_status", None)
        return not isinstance(status, int) or bool(status & _SERVER_STATUS_IN_TRANS)

    def do_commit(dbapi_connection: Any) -> None:
        if in_transaction(dbapi_connection):
            commit(dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        if in_transaction(dbapi_connection):
            rollback(dbapi_connection)

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]
