"""Entry point of the ``sqlalchemy`` backend: claims ``sqlite``, ``postgresql``,
``mysql`` and ``mariadb`` URLs.

This module stays light: SQLAlchemy and the drivers are imported only when a store
is opened.
"""

from __future__ import annotations

from typing import Any

from esrc_core.capabilities import Capability
from esrc_core.errors import BackendUnavailableError
from esrc_core.plugins import Backend, hookimpl

from esrc_sqlalchemy._install import INSTALL_HINT

__all__ = ["INSTALL_HINT", "esrc_store_backends", "open_async_store", "open_store"]


_BOOLEAN = {"1": True, "true": True, "yes": True, "on": True}
_BOOLEAN.update({"0": False, "false": False, "no": False, "off": False})
_OPTION_TYPES: dict[str, type] = {
    "table_prefix": str,
    "schema": str,
    "connect_timeout": float,
    "create_schema": bool,
    "max_payload_bytes": int,
    "notify": bool,
    "engine_options": dict,
    "durable_checkpoints": bool,
}


def _coerce(options: dict[str, Any]) -> dict[str, Any]:
    """Check option names, and turn values given as text (``esrc migrate URL -o
    key=value``) into the types the store takes; other values pass unchanged."""
    from esrc_sqlalchemy.errors import StoreConfigError

    unknown = sorted(set(options) - set(_OPTION_TYPES))
    if unknown:
        raise StoreConfigError(
            f"unknown option(s) {', '.join(unknown)} for the SQL store; it takes "
            f"{', '.join(_OPTION_TYPES)}"
        )
    coerced = dict(options)
    for key, value in options.items():
        wanted = _OPTION_TYPES[key]
        if wanted in (str, dict) or not isinstance(value, str):
            continue
        try:
            if wanted is bool:
                coerced[key] = _BOOLEAN[value.strip().lower()]
            else:
                coerced[key] = wanted(value)
        except (KeyError, ValueError):
            raise StoreConfigError(
                f"option {key}={value!r} is not a valid {wanted.__name__}"
            ) from None
    return coerced


def open_store(url: str, **options: Any) -> Any:
    """Open a :class:`~esrc_sqlalchemy.store.SqlEventStore` for ``url``; ``options``
    are its keyword arguments (text values are converted)."""
    try:
        from esrc_sqlalchemy.store import SqlEventStore
    except ImportError as err:
        raise BackendUnavailableError(
            f"the sqlalchemy backend cannot load ({err}); pip install esrc-sqlalchemy"
        ) from err
    return SqlEventStore(url, **_coerce(options))


def open_async_store(url: str, **options: Any) -> Any:
    """Open an :class:`~esrc_sqlalchemy.async_store.AsyncSqlEventStore` for ``url``
    (the URLs :func:`open_store` takes); ``options`` as for :func:`open_store`."""
    try:
        from esrc_sqlalchemy.async_store import AsyncSqlEventStore
    except ImportError as err:
        raise BackendUnavailableError(
            f"the sqlalchemy backend's async store cannot load ({err}); "
            'pip install "esrc-sqlalchemy[asyncio]"'
        ) from err
    return AsyncSqlEventStore(url, **_coerce(options))


@hookimpl
def esrc_store_backends() -> list[Backend]:
    """The SQL event store."""
    return [
        Backend(
            name="sqlalchemy",
            kind="store",
            # The URL schemes of esrc_sqlalchemy.dialects.DIALECTS, listed here so that
            # this module loads without SQLAlchemy; a test checks that they agree.
            schemes=("sqlite", "postgresql", "mysql", "mariadb"),
            factory=open_store,
            async_factory=open_async_store,
            capabilities=frozenset(
                {
                    Capability.SNAPSHOTS,
                    Capability.OUTBOX,
                    Capability.THREADS,
                    Capability.PERSISTENT,
                    Capability.RELAY_LOCK,
                    Capability.INSPECT,
                    Capability.MIGRATE,
                    Capability.WAIT,
                    Capability.STREAMING,
                    Capability.READ_AHEAD,
                    Capability.UNITS_OF_WORK,
                    Capability.DELETE_STREAMS,
                    Capability.HOLD_COMMITS,
                }
            ),
            description="SQL event store with outbox: sqlite:///file.db, sqlite://, "
            "postgresql+psycopg://..., mysql+pymysql://...",
            install_hint=INSTALL_HINT,
            # Inspecting a store must not create its tables (or its SQLite file).
            inspect_options={"create_schema": False},
        )
    ]
