"""Support for test suites: many new, empty stores on one database server, dropping a
store's tables, and the testing hooks through which tests reach inside a store.

Creating a store's tables takes a few hundred milliseconds on a server; emptying them
takes a few. :class:`PrefixPool` hands out stores on table prefixes of its own, all on
one engine (one connection pool), empties a prefix's tables once every store on it is
closed, hands the prefix out again, and drops all its tables at the end.

The other functions are explicitly internal testing hooks, for tests that must do what
the public API never does (hold an append open between its two steps, end a server
session): they expose the store's dialect and each database's
:class:`~esrc_sqlalchemy.dialects.base.TestingHooks`, and may change with them.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from esrc_sqlalchemy.async_store import AsyncSqlEventStore
from esrc_sqlalchemy.dialects import SqlDialect, dialect_of_engine
from esrc_sqlalchemy.dialects.base import TestingHooks
from esrc_sqlalchemy.engines import create_store_engine, normalize_url
from esrc_sqlalchemy.locks import SqlRelayLock
from esrc_sqlalchemy.schema import Tables, build_tables
from esrc_sqlalchemy.store import SqlEventStore, stream_key

__all__ = [
    "PrefixPool",
    "begin_write",
    "database_hooks",
    "dialect_of",
    "drop_store_tables",
    "relay_lock_session",
    "store_tables",
    "stream_key",
]


def dialect_of(store: SqlEventStore) -> SqlDialect:
    """The dialect serving ``store``'s tables: its statements (``claim_stream``,
    ``insert_events``, ...) run on a connection the caller opens and commits."""
    return store.executor.dialect


def begin_write(store: SqlEventStore, conn: Connection) -> None:
    """Open a write transaction on ``conn`` (a connection of ``store.engine``) as the
    store's appends do."""
    store.executor.dialect.begin_write(conn, single=False)


def database_hooks(engine: Engine) -> TestingHooks:
    """The SQL tests need on ``engine``'s database: finding and ending server
    sessions."""
    return dialect_of_engine(engine).testing


def relay_lock_session(lock: SqlRelayLock) -> int:
    """The server session holding ``lock`` (acquired, on PostgreSQL or MariaDB/MySQL),
    for a test that ends it."""
    session = lock.holder.session_id()
    if session is None:
        raise ValueError(f"{lock!r} holds no server session")
    return session


def store_tables(engine: Engine, prefix: str, schema: str | None = None) -> Tables:
    """The table definitions of a store with ``prefix`` (and ``schema``) on
    ``engine``'s database."""
    return build_tables(prefix, schema, dialect_of_engine(engine).ddl)


def drop_store_tables(url: str, prefix: str, schema: str | None = None) -> None:
    """Drop the tables of the store with ``prefix`` (and ``schema``) at ``url``, those
    that exist."""
    engine = create_store_engine(normalize_url(url), connect_timeout=10.0)
    try:
        store_tables(engine, prefix, schema).metadata.drop_all(engine)
    finally:
        engine.dispose()


class PrefixPool:
    """New, empty :class:`SqlEventStore` objects on one database, on recycled prefixes.

    Prefixes look like ``t<random>_<n>_``, so pools of concurrent test runs on one
    server never share tables. :meth:`open` gives a store on a prefix no open store
    uses, with empty tables; :meth:`reopen` gives another store on the same prefix
    (the same data). A prefix is emptied and reused once every store on it is closed.
    :meth:`drop` closes everything and drops the pool's tables. Thread-safe.
    """

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.options = options
        parsed = normalize_url(url)
        self._engine = create_store_engine(parsed, connect_timeout=10.0)
        self._tag = "t" + secrets.token_hex(3)
        self._lock = threading.Lock()
        self._count = 0
        self._free: list[str] = []
        self._in_use: dict[str, list[SqlEventStore]] = {}
        self._created: list[str] = []

    def open(self) -> SqlEventStore:
        """A store on a prefix of its own whose tables are empty."""
        return self._take(
            lambda prefix: SqlEventStore(self._engine, table_prefix=prefix, **self.options)
        )

    def open_async(self) -> AsyncSqlEventStore:
        """An async store (on an asyncio engine of its own) on a prefix of its own whose
        tables are empty. Close it (awaited) before :meth:`release`."""
        opened: list[AsyncSqlEventStore] = []

        def open_prefix(prefix: str) -> SqlEventStore:
            opened.append(AsyncSqlEventStore(self.url, table_prefix=prefix, **self.options))
            return opened[0].store

        self._take(open_prefix)
        return opened[0]

    def _take(self, open_prefix: Callable[[str], SqlEventStore]) -> SqlEventStore:
        self.recycle()
        with self._lock:
            if self._free:
                prefix = self._free.pop()
            else:
                self._count += 1
                prefix = f"{self._tag}_{self._count}_"
                self._created.append(prefix)
            store = open_prefix(prefix)
            self._in_use[prefix] = [store]
        return store

    def reopen(self, store: SqlEventStore) -> SqlEventStore:
        """Another store on ``store``'s prefix: the same tables and data."""
        again = SqlEventStore(self._engine, table_prefix=store.table_prefix, **self.options)
        with self._lock:
            self._in_use.setdefault(store.table_prefix, []).append(again)
        return again

    def recycle(self) -> None:
        """Empty the tables of every prefix whose stores are all closed, for reuse."""
        with self._lock:
            done = [p for p, stores in self._in_use.items() if all(s.closed for s in stores)]
            for prefix in done:
                del self._in_use[prefix]
        for prefix in done:
            tables = store_tables(self._engine, prefix)
            with self._engine.begin() as conn:
                if sa.inspect(conn).has_table(tables.events.name):
                    for table in (tables.events, tables.streams, tables.snapshots):
                        conn.execute(table.delete())
                    conn.execute(tables.checkpoints.delete())
            with self._lock:
                self._free.append(prefix)

    def release(self) -> None:
        """Close every store handed out, and recycle their prefixes."""
        with self._lock:
            stores = [s for group in self._in_use.values() for s in group]
        for store in stores:
            if not store.closed:
                store.close()
        self.recycle()

    def drop(self) -> None:
        """Close every store and drop all tables this pool created."""
        self.release()
        with self._lock:
            created, self._created, self._free = self._created, [], []
        for prefix in created:
            store_tables(self._engine, prefix).metadata.drop_all(self._engine)
        self._engine.dispose()
