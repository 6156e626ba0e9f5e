"""Support for test suites that need many new, empty stores on one database server.

Creating a store's tables takes a few hundred milliseconds on a server; emptying them
takes a few. :class:`PrefixPool` hands out stores on table prefixes of its own, all on
one engine (one connection pool), empties a prefix's tables once every store on it is
closed, hands the prefix out again, and drops all its tables at the end.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

import sqlalchemy as sa

from esrc_sqlalchemy.engines import create_store_engine, family_of, normalize_url
from esrc_sqlalchemy.schema import build_tables
from esrc_sqlalchemy.store import SqlEventStore

__all__ = ["PrefixPool"]


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
        self._family = family_of(self._engine.dialect.name)
        self._tag = "t" + secrets.token_hex(3)
        self._lock = threading.Lock()
        self._count = 0
        self._free: list[str] = []
        self._in_use: dict[str, list[SqlEventStore]] = {}
        self._created: list[str] = []

    def open(self) -> SqlEventStore:
        """A store on a prefix of its own whose tables are empty."""
        self.recycle()
        with self._lock:
            if self._free:
                prefix = self._free.pop()
            else:
                self._count += 1
                prefix = f"{self._tag}_{self._count}_"
                self._created.append(prefix)
            store = SqlEventStore(self._engine, table_prefix=prefix, **self.options)
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
            tables = build_tables(prefix, None, self._family)
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
            store.close()
        self.recycle()

    def drop(self) -> None:
        """Close every store and drop all tables this pool created."""
        self.release()
        with self._lock:
            created, self._created, self._free = self._created, [], []
        for prefix in created:
            build_tables(prefix, None, self._family).metadata.drop_all(self._engine)
        self._engine.dispose()
