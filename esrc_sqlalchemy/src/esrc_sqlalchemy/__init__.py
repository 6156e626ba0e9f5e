"""SQL event store for esrc on SQLAlchemy Core: SQLite, PostgreSQL and MariaDB/MySQL,
with an outbox whose order never skips an event that commits late.

Open one with ``esrc_core.open_event_store("sqlite:///events.db")`` (or a
``postgresql://`` / ``mysql://`` URL), or directly with :class:`SqlEventStore`, which
also takes an existing SQLAlchemy ``Engine``; the async API
(``esrc_core.open_async_event_store`` with the same URLs, or
:class:`AsyncSqlEventStore`, which also takes an ``AsyncEngine``) runs the same store
on asyncio drivers.

Names are imported on first use, so that the plugin entry point
(:mod:`esrc_sqlalchemy.plugin`) loads without SQLAlchemy or any driver.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esrc_sqlalchemy.async_store import AsyncSqlEventStore
    from esrc_sqlalchemy.errors import StoreConfigError
    from esrc_sqlalchemy.outbox import SqlOutbox
    from esrc_sqlalchemy.schema import SCHEMA_VERSION
    from esrc_sqlalchemy.store import DEFAULT_MAX_PAYLOAD, SqlEventStore

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "SCHEMA_VERSION",
    "AsyncSqlEventStore",
    "SqlEventStore",
    "SqlOutbox",
    "StoreConfigError",
]

_HOME = {
    "AsyncSqlEventStore": "async_store",
    "DEFAULT_MAX_PAYLOAD": "store",
    "SCHEMA_VERSION": "schema",
    "SqlEventStore": "store",
    "SqlOutbox": "outbox",
    "StoreConfigError": "errors",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
