"""Relay locks on SQL databases: at most one active relay per name, across processes,
released by the database when the holder's session (or process) dies.

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``).
- MariaDB/MySQL: a named lock (``GET_LOCK``).
- SQLite file: the write lock of a small lock database next to the store's file
  (``<file>-relay-<hash>.lock``), held by an open ``BEGIN IMMEDIATE``; SQLite's file
  locks are dropped by the operating system when the process exits.
- SQLite in memory (``sqlite://``): a lock within the process (the data is private to
  the store anyway).

Each held lock keeps one connection of its own, outside the store's pool.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from esrc_core.errors import StoreUnavailableError

from esrc_sqlalchemy.engines import is_memory_sqlite
from esrc_sqlalchemy.errors import driver_message

if TYPE_CHECKING:
    from esrc_sqlalchemy.store import SqlEventStore

__all__ = ["SqlRelayLock"]

_POLL = 0.05


def _hash(*parts: object) -> bytes:
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()


class SqlRelayLock:
    """A :class:`esrc_core.locks.RelayLock` for relay ``name`` of a
    :class:`~esrc_sqlalchemy.store.SqlEventStore` (see the module docstring for how
    each database holds it). Not thread-safe: one thread drives one lock."""

    def __init__(self, store: SqlEventStore, name: str) -> None:
        self._store = store
        self._name = name
        self._conn: Any = None
        self._holding_in_process = False
        family, prefix = store.family, store.table_prefix
        digest = _hash(store.engine.url.database, store.schema, prefix, name)
        self._pg_keys = (
            int.from_bytes(digest[:4], "big") & 0x7FFFFFFF,
            int.from_bytes(digest[4:], "big") & 0x7FFFFFFF,
        )
        self._mysql_name = "esrc-relay:" + digest.hex()
        self._memory = family == "sqlite" and is_memory_sqlite(store.engine.url)
        self._lock_file = f"{store.engine.url.database}-relay-{digest.hex()}.lock"

    def __repr__(self) -> str:
        return f"SqlRelayLock({self._store!r}, {self._name!r})"

    @property
    def name(self) -> str:
        """The relay name this lock guards."""
        return self._name

    def acquire(self, timeout: float = 0.0) -> bool:
        """See :meth:`esrc_core.locks.RelayLock.acquire`: try every 50 ms for up to
        ``timeout`` seconds."""
        if (self._conn is not None or self._holding_in_process) and self.held():
            return True
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if self._try():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(_POLL, remaining))

    def held(self) -> bool:
        """See :meth:`esrc_core.locks.RelayLock.held`: asks the database (one query),
        so a lock lost with its session reads as not held."""
        if self._memory:
            with self._store._relay_locks_guard:
                return self._store._relay_locks.get(self._name) is self
        conn = self._conn
        if conn is None:
            return False
        try:
            if isinstance(conn, sqlite3.Connection):
                return conn.in_transaction
            family = self._store.family
            with conn.cursor() as cursor:
                if family == "postgresql":
                    cursor.execute(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND pid = pg_backend_pid() AND granted AND classid = %s "
                        "AND objid = %s AND objsubid = 2",
                        self._pg_keys,
                    )
                else:
                    cursor.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (self._mysql_name,))
                row = cursor.fetchone()
            if row and row[0]:
                return True
        except Exception:
            pass
        self._drop()
        return False

    def release(self) -> None:
        """See :meth:`esrc_core.locks.RelayLock.release`: ends the lock's session."""
        if self._holding_in_process:
            with self._store._relay_locks_guard:
                if self._store._relay_locks.get(self._name) is self:
                    del self._store._relay_locks[self._name]
            self._holding_in_process = False
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _try(self) -> bool:
        doing = f"lock relay {self._name!r} of {self._store.url}"
        if self._memory:
            with self._store._relay_locks_guard:
                owner = self._store._relay_locks.setdefault(self._name, self)
            self._holding_in_process = owner is self
            return self._holding_in_process
        try:
            if self._store.family == "sqlite":
                return self._try_sqlite()
            return self._try_server()
        except (sqlite3.Error, OSError) as err:
            raise StoreUnavailableError(f"{doing}: {driver_message(err)}") from err
        except StoreUnavailableError:
            raise
        except Exception as err:
            if type(err).__module__.split(".")[0] in ("psycopg", "pymysql", "sqlalchemy"):
                raise StoreUnavailableError(f"{doing}: {driver_message(err)}") from err
            raise

    def _try_sqlite(self) -> bool:
        conn = sqlite3.connect(
            self._lock_file, timeout=0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            conn.close()
            if "locked" in str(err) or "busy" in str(err):
                return False
            raise
        self._conn = conn
        return True

    def _try_server(self) -> bool:
        raw = self._store._dialect.base_engine.raw_connection()
        conn: Any = raw.driver_connection
        raw.detach()
        try:
            if self._store.family == "postgresql":
                conn.autocommit = True
                got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", self._pg_keys).fetchone()[
                    0
                ]
            else:
                conn.autocommit(True)
                with conn.cursor() as cursor:
                    cursor.execute("SELECT GET_LOCK(%s, 0)", (self._mysql_name,))
                    got = cursor.fetchone()[0] == 1
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True
