"""The SQL event store's async face: :class:`AsyncSqlEventStore`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from esrc_core.async_store import BridgedEventStore

from esrc_sqlalchemy._awaiting import SQLALCHEMY_BRIDGE
from esrc_sqlalchemy.errors import StoreConfigError
from esrc_sqlalchemy.store import DEFAULT_MAX_PAYLOAD, SqlEventStore

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["AsyncSqlEventStore"]


class AsyncSqlEventStore(BridgedEventStore):
    """An :class:`~esrc_core.async_store.AsyncEventStore` on SQLite, PostgreSQL or
    MariaDB/MySQL through SQLAlchemy's asyncio engine: the same tables, statements,
    outbox guarantees and errors as :class:`~esrc_sqlalchemy.store.SqlEventStore`,
    because it is that store, run through SQLAlchemy's greenlet bridge with an asyncio
    driver (aiosqlite, async psycopg, aiomysql) whose waits go to the event loop.

    ``AsyncSqlEventStore(url)`` takes the URLs the sync store takes (``sqlite:///x.db``
    opens aiosqlite, ``postgresql://`` and ``postgresql+psycopg://`` async psycopg,
    ``mysql://`` / ``mysql+pymysql://`` / ``mariadb://`` aiomysql; the asyncio driver
    may be named too) and creates (and owns) an asyncio engine;
    ``AsyncSqlEventStore(engine)`` uses the application's
    :class:`~sqlalchemy.ext.asyncio.AsyncEngine` and its pool (``close`` leaves it
    open). The options are :class:`~esrc_sqlalchemy.store.SqlEventStore`'s.
    ``sqlite://`` (one connection in memory) is refused: use a file or ``memory://``.

    :attr:`sync_store` is the :class:`~esrc_sqlalchemy.store.SqlEventStore` it runs,
    for the repository and the relay, which run their sync logic on it inside
    :attr:`bridge`; its outboxes, relay locks, operator views and :meth:`migrate`
    are used the same way (``await store.bridge.run(store.sync_store.migrate)``).
    Safe to use from many tasks of one event loop.
    """

    def __init__(
        self,
        url: str | AsyncEngine,
        *,
        table_prefix: str = "esrc_",
        schema: str | None = None,
        connect_timeout: float = 10.0,
        create_schema: bool = True,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD,
        notify: bool = False,
        engine_options: Mapping[str, Any] | None = None,
        durable_checkpoints: bool = True,
    ) -> None:
        options: dict[str, Any] = {
            "table_prefix": table_prefix,
            "schema": schema,
            "connect_timeout": connect_timeout,
            "create_schema": create_schema,
            "max_payload_bytes": max_payload_bytes,
            "notify": notify,
            "engine_options": engine_options,
            "durable_checkpoints": durable_checkpoints,
        }
        if isinstance(url, str):
            sync = SqlEventStore(url, asyncio=True, **options)
        else:
            engine = getattr(url, "sync_engine", None)
            if engine is None or not getattr(engine.dialect, "is_async", False):
                raise StoreConfigError(
                    f"AsyncSqlEventStore takes a URL or an AsyncEngine, got "
                    f"{type(url).__name__}; a sync Engine goes to SqlEventStore"
                )
            sync = SqlEventStore(engine, **options)
        super().__init__(sync, SQLALCHEMY_BRIDGE, what=f"the store {sync.url}")
        self.store: SqlEventStore = sync
        """The sync store this one runs (the same object as :attr:`sync_store`)."""

    def __repr__(self) -> str:
        return f"AsyncSqlEventStore({self.store.url!r}, table_prefix={self.store.table_prefix!r})"

    @property
    def url(self) -> str:
        """The store's URL with the password masked."""
        return self.store.url
