"""Database URLs and engines: parsing a store URL into one with an explicit, supported
driver, and creating SQLAlchemy engines configured by the database's dialect
(:mod:`esrc_sqlalchemy.dialects`), for the store and for an application's own tables
beside it.

Accepted URLs (SQLAlchemy style): see each dialect's module; today ``sqlite://``,
``postgresql://`` (psycopg 3) and ``mysql://`` / ``mariadb://`` (PyMySQL), with or
without ``+driver``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from esrc_core.errors import BackendUnavailableError
from esrc_core.urls import mask_url, url_scheme
from sqlalchemy.engine import URL, Engine

from esrc_sqlalchemy._install import INSTALL_HINT
from esrc_sqlalchemy.dialects import SqlDialect, dialect_class, dialect_of_engine, supported
from esrc_sqlalchemy.errors import StoreConfigError

__all__ = [
    "check_engine",
    "create_application_engine",
    "create_store_engine",
    "insert_ignoring_duplicates",
    "normalize_url",
]


_UNESCAPED_AT = (
    "its password (or user name) holds an unescaped '@', so the part after it would be "
    "taken for the host; percent-encode each '@' in it as %40 "
    "(urllib.parse.quote(password, safe=''))"
)


def check_engine(engine: Engine) -> type[SqlDialect]:
    """The dialect of an application's ``engine`` (an asyncio engine's ``sync_engine``
    too); raises :class:`StoreConfigError` for a database the store does not support,
    when its driver is not one the store supports for that database (psycopg 3, PyMySQL,
    the standard library's sqlite3; asyncio: psycopg 3, aiomysql, aiosqlite), or when
    its host name holds an ``@`` (a password with an unescaped ``@`` in its URL)."""
    dialect = dialect_of_engine(engine)
    if "@" in (engine.url.host or ""):
        # The host would quote the part of the password after its first "@".
        raise StoreConfigError(
            f"the engine for {engine.url.get_backend_name()}://... has an '@' in its host "
            f"name: {_UNESCAPED_AT}"
        )
    driver = engine.dialect.driver
    asyncio = bool(getattr(engine.dialect, "is_async", False))
    drivers = dialect.async_drivers if asyncio else dialect.drivers
    if driver not in drivers:
        wanted = next(iter(dialect.async_drivers)) if asyncio else dialect.default_driver
        raise StoreConfigError(
            f"the {'asyncio ' if asyncio else ''}engine for "
            f"{engine.url.render_as_string(hide_password=True)!r} uses driver {driver!r}; "
            f"the SQL event store needs {dialect.name}+{wanted}"
        )
    return dialect


def normalize_url(url: str, *, asyncio: bool = False) -> URL:
    """Parse a store URL into a SQLAlchemy :class:`~sqlalchemy.engine.URL` with an
    explicit, supported driver (``postgresql://`` becomes ``postgresql+psycopg://``,
    ``mysql://`` and ``mariadb://`` use ``pymysql``).

    With ``asyncio=True`` the URL is for an asyncio engine (the async store): a URL that
    names the sync driver or none gets the database's asyncio driver (aiosqlite, async
    psycopg, aiomysql), one that names a supported asyncio driver keeps it. Without it,
    a URL naming an asyncio driver is refused, saying to open it with the async API.

    Raises :class:`StoreConfigError` for a malformed URL (one whose password holds an
    unescaped ``@`` too: SQLAlchemy would take the rest of it for the host), an
    unsupported database or driver, and
    :class:`~esrc_core.errors.BackendUnavailableError` naming the extra to install when
    the driver is missing. Messages mask the password.
    """
    if not isinstance(url, str):
        raise StoreConfigError(f"a store URL must be a str, got {type(url).__name__}")
    shown = mask_url(url)
    scheme = url_scheme(url)
    if scheme is None:
        raise StoreConfigError(f"malformed store URL {shown!r}: expected scheme://...")
    database, _, driver = scheme.partition("+")
    try:
        dialect = dialect_class(database)
    except StoreConfigError:
        raise StoreConfigError(
            f"store URL {shown!r}: the SQL backend handles {supported()}, not {database}://"
        ) from None
    driver = driver or dialect.default_driver
    module = dialect.driver_module
    extra = dialect.extra
    if asyncio:
        if driver in dialect.drivers and driver not in dialect.async_drivers:
            driver = next(iter(dialect.async_drivers))
        if driver not in dialect.async_drivers:
            raise StoreConfigError(
                f"store URL {shown!r}: driver {driver!r} is not supported for {database} by "
                f"the async store; use {database}:// (it opens "
                f"{database}+{next(iter(dialect.async_drivers))}), whose statements and error "
                f"handling are the sync store's"
            )
        module, extra = dialect.async_drivers[driver], dialect.async_extra
    elif driver not in dialect.drivers:
        if driver in dialect.async_drivers:
            raise StoreConfigError(
                f"store URL {shown!r}: {driver!r} is an asyncio driver; open the store "
                "with esrc_core.open_async_event_store (the async API), or use "
                f"{database}:// with the sync API"
            )
        raise StoreConfigError(
            f"store URL {shown!r}: driver {driver!r} is not supported for {database}; "
            f"use {database}+{dialect.default_driver}:// (or plain {database}://)"
        )
    try:
        parsed = sa.make_url(f"{database}+{driver}" + url[len(scheme) :])
    except (sqlalchemy.exc.ArgumentError, ValueError, TypeError) as err:
        # The parser's message may quote the raw URL; say what is wrong without it.
        problem = type(err).__name__
        if isinstance(err, ValueError) and "int()" in str(err):
            problem = "the port is not a number"
        raise StoreConfigError(f"malformed store URL {shown!r}: {problem}") from None
    if "@" in (parsed.host or ""):
        raise StoreConfigError(f"store URL {shown!r}: {_UNESCAPED_AT}")
    wrong = dialect.check_url(parsed, shown)
    if wrong is not None:
        raise StoreConfigError(wrong)
    for needed in (module, "greenlet") if asyncio else (module,):
        if importlib.util.find_spec(needed) is None:
            install = f'pip install "esrc-sqlalchemy[{extra}]"' if extra else INSTALL_HINT
            raise BackendUnavailableError(
                f"cannot open {shown!r}: its driver {needed!r} is not installed; {install}"
            )
    return parsed


def _create(url: URL, options: dict[str, Any], *, asyncio: bool = False) -> Engine:
    try:
        if asyncio:
            from sqlalchemy.ext.asyncio import create_async_engine

            return create_async_engine(url, **options).sync_engine
        return sa.create_engine(url, **options)
    except ImportError as err:
        raise BackendUnavailableError(
            f"cannot open {url.render_as_string(hide_password=True)!r}: {err}; {INSTALL_HINT}"
        ) from err
    except (sqlalchemy.exc.ArgumentError, TypeError) as err:
        raise StoreConfigError(
            f"cannot create an engine for {url.render_as_string(hide_password=True)!r}: {err}"
        ) from err


def create_store_engine(
    url: URL,
    *,
    connect_timeout: float,
    engine_options: Mapping[str, Any] | None = None,
    asyncio: bool = False,
) -> Engine:
    """A new engine for ``url`` (from :func:`normalize_url`) set up for the event store
    by its dialect's :meth:`~esrc_sqlalchemy.dialects.base.SqlDialect.engine_options`
    and :meth:`~esrc_sqlalchemy.dialects.base.SqlDialect.configure_engine` (pool size,
    ``connect_timeout``, on SQLite the WAL journal, on MariaDB/MySQL autocommit).

    Bound parameters are hidden from SQLAlchemy's error messages. ``engine_options``
    are passed to :func:`sqlalchemy.create_engine` and override these settings. With
    ``asyncio=True`` (``url`` from ``normalize_url(..., asyncio=True)``) the engine is
    an asyncio engine's ``sync_engine``: usable only inside SQLAlchemy's greenlet bridge.
    """
    dialect = dialect_class(url.get_backend_name())
    options: dict[str, Any] = {"hide_parameters": True}
    options.update(dialect.engine_options(url, connect_timeout))
    options.update(engine_options or {})
    engine = _create(url, options, asyncio=asyncio)
    dialect.configure_engine(engine)
    return engine


def create_application_engine(
    url: str, *, connect_timeout: float = 10.0, lock_timeout: float = 30.0
) -> Engine:
    """A new engine for an application's own tables in a store's database (read
    models, say): the driver the store supports (URLs as :func:`normalize_url` takes
    them), ordinary transactions (never autocommit), ``connect_timeout`` seconds to
    connect, on SQLite the WAL journal and ``lock_timeout`` seconds of waiting for the
    write lock (``sqlite://`` shares one connection), on MariaDB/MySQL utf8mb4. Bound
    parameters are hidden from error messages.

    Raises as :func:`normalize_url` does. Pair it with
    :func:`insert_ignoring_duplicates` for idempotent inserts.
    """
    parsed = normalize_url(url)
    dialect = dialect_class(parsed.get_backend_name())
    options: dict[str, Any] = {"hide_parameters": True}
    options.update(
        dialect.application_engine_options(
            parsed, connect_timeout=connect_timeout, lock_timeout=lock_timeout
        )
    )
    engine = _create(parsed, options)
    dialect.configure_application_engine(engine)
    return engine


def insert_ignoring_duplicates(engine: Engine, table: sa.Table) -> sa.Insert:
    """An ``INSERT`` into ``table`` for ``engine``'s database that inserts nothing
    (row count 0) when the row's key exists: ``ON CONFLICT DO NOTHING`` or
    ``INSERT IGNORE``. Execute it with ``execution_options={"preserve_rowcount": True}``
    to read the row count."""
    return dialect_of_engine(engine).insert_ignoring_duplicates(table)
