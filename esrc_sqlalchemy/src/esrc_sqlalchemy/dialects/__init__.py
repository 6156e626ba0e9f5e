"""One module per database the SQL store supports, and the registry that picks one.

- :mod:`.base`: the contract (:class:`SqlDialect`) and the records its hooks exchange.
- :mod:`.sqlite`, :mod:`.postgresql`, :mod:`.mysql` (MariaDB too): everything specific
  to each database - URLs and driver, engine options, DDL, error codes, statements,
  relay locks, waiting for events, limits, and the SQL their tests need.

:func:`dialect_class` finds the dialect for a URL scheme or SQLAlchemy dialect name and
raises :class:`~esrc_sqlalchemy.errors.StoreConfigError` naming the supported databases
for any other. Nothing outside this package compares database names.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, Engine

from esrc_sqlalchemy.dialects.base import EventRow, OutboxRow, SqlDialect
from esrc_sqlalchemy.dialects.mysql import MySqlDialect
from esrc_sqlalchemy.dialects.postgresql import PostgresDialect
from esrc_sqlalchemy.dialects.sqlite import SqliteDialect
from esrc_sqlalchemy.errors import StoreConfigError

__all__ = [
    "DIALECTS",
    "EventRow",
    "OutboxRow",
    "SqlDialect",
    "dialect_class",
    "dialect_of_engine",
    "dialect_of_url",
    "supported",
]

DIALECTS: tuple[type[SqlDialect], ...] = (SqliteDialect, PostgresDialect, MySqlDialect)
"""Every supported database; a new one is added here."""

_BY_SCHEME = {scheme: dialect for dialect in DIALECTS for scheme in dialect.url_schemes}


def supported() -> str:
    """The supported databases and their URL schemes, for messages."""
    return ", ".join(
        f"{d.title} ({' / '.join(f'{s}://' for s in d.url_schemes)})" for d in DIALECTS
    )


def dialect_class(name: str) -> type[SqlDialect]:
    """The dialect for a URL scheme without its driver (``"postgresql"``) or a
    SQLAlchemy dialect name (``"mariadb"``); raises
    :class:`~esrc_sqlalchemy.errors.StoreConfigError` naming ``name`` and the supported
    databases for any other."""
    found = _BY_SCHEME.get(name)
    if found is None:
        raise StoreConfigError(
            f"the SQL event store does not support the database {name!r}; it supports {supported()}"
        )
    return found


def dialect_of_url(url: URL) -> type[SqlDialect]:
    """The dialect for a parsed URL (see :func:`dialect_class`)."""
    return dialect_class(url.get_backend_name())


def dialect_of_engine(engine: Engine) -> type[SqlDialect]:
    """The dialect for an engine's database (see :func:`dialect_class`)."""
    return dialect_class(engine.dialect.name)
