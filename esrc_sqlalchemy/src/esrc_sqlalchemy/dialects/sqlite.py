"""SQLite 3.24+ through the standard library's ``sqlite3``: everything the SQL store does
differently on it.

URLs: ``sqlite:///path/to/events.db`` (a file) and ``sqlite://`` (in memory, private
to the store, usable from many threads, which then take turns on one connection).

**Why the outbox never skips an event.** Writes start with ``BEGIN IMMEDIATE``, so the
database has one writer at a time: positions are allocated and committed in the same
order, and the outbox reads in position order (``tx_id`` is 0). Appends on the driver
directly (:meth:`SqliteDialect.direct_begin`) open their transaction the same way.

**Durability.** A file runs in WAL mode with SQLite's default ``synchronous=FULL``:
each commit waits for the write-ahead log to reach the disk, so an append reported as
stored survives a process crash, an operating-system crash and a power loss. That
``fsync`` is most of an append's time. ``synchronous=NORMAL`` (set by the application
on its own engine's connections) skips it: still consistent, nothing lost when the
process crashes, but an operating-system crash or power loss can undo the last
appends. ``synchronous=OFF`` can corrupt the file on power loss. The store leaves the
setting to the application and never lowers it.

Relay locks: for a file, the write lock of a small lock database next to it
(``<file>-relay-<hash>.lock``) held by an open ``BEGIN IMMEDIATE``, which the operating
system drops when the process exits; in memory, a lock within the process (the data is
private to the store anyway). Outboxes poll for events.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.engine.interfaces import AdaptedConnection
from sqlalchemy.pool import StaticPool

from esrc_sqlalchemy._awaiting import new_sleep
from esrc_sqlalchemy.dialects._core import (
    CoreDialect,
    snapshot_upsert_on_conflict,
    upsert_snapshot_with,
)
from esrc_sqlalchemy.dialects.base import (
    ConnectionLockHolder,
    OutboxRow,
    RelayLockHolder,
    TestingHooks,
)
from esrc_sqlalchemy.schema import Ddl, Tables

__all__ = ["SqliteDialect"]

_WAL_SWITCH_SECONDS = 10.0


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _database_file(url: URL) -> str | None:
    """The path of the file a SQLite URL opens, or ``None`` for an in-memory database.
    A URI filename (``sqlite:///file:path?mode=ro&uri=true``) is read as SQLite reads
    it."""
    if _is_memory(url) or not url.database:
        return None
    database = url.database
    if not database.startswith("file:"):
        return database
    parsed = urllib.parse.urlsplit(database)
    query = urllib.parse.parse_qs(parsed.query)
    if query.get("mode") == ["memory"] or parsed.path in ("", ":memory:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return urllib.parse.unquote(parsed.path)


def _wal(dbapi_connection: Any, _record: Any) -> None:
    """Put the database file in WAL mode (it stays so). Switching needs the file to
    itself and SQLite does not wait for that (no busy timeout), so connections that
    open a new file at the same moment retry for a while instead of failing."""
    cursor = dbapi_connection.cursor()
    sleep = new_sleep(isinstance(dbapi_connection, AdaptedConnection))
    deadline = time.monotonic() + _WAL_SWITCH_SECONDS
    try:
        while True:
            try:
                cursor.execute("PRAGMA journal_mode")
                if str(cursor.fetchone()[0]).lower() != "wal":
                    cursor.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                sleep(0.005)
    finally:
        cursor.close()


class _FileLock(ConnectionLockHolder):
    """The write lock of a lock database beside the store's file, held by an open
    ``BEGIN IMMEDIATE`` on a connection of its own."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def try_acquire(self) -> bool:
        conn = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            conn.close()
            if "locked" in str(err) or "busy" in str(err):
                return False
            raise
        self._conn = conn
        return True

    def held(self) -> bool:
        conn = self._conn
        if conn is not None and conn.in_transaction:
            return True
        self.release()
        return False

    def session_id(self) -> int | None:
        return None


class _ProcessLock:
    """A lock within the process, for ``sqlite://`` (the data is the store's alone):
    the store's table of holders by relay name."""

    def __init__(self, holders: dict[str, object], guard: threading.Lock, name: str) -> None:
        self._holders = holders
        self._guard = guard
        self._name = name
        self._holding = False

    @property
    def engaged(self) -> bool:
        return self._holding

    def try_acquire(self) -> bool:
        with self._guard:
            owner = self._holders.setdefault(self._name, self)
        self._holding = owner is self
        return self._holding

    def held(self) -> bool:
        with self._guard:
            return self._holders.get(self._name) is self

    def release(self) -> None:
        if self._holding:
            with self._guard:
                if self._holders.get(self._name) is self:
                    del self._holders[self._name]
            self._holding = False

    def session_id(self) -> int | None:
        return None


class SqliteTesting(TestingHooks):
    """No server sessions; no late commits either."""

    no_late_commits = (
        "SQLite cannot commit appends out of position order: one write at a time holds "
        "the database's write lock from its first statement to its commit, so a held "
        "commit would hold every other writer"
    )


def _autoincrement_positions(conn: Connection, tables: Tables) -> None:
    """Schema version 3: rebuild the events table with ``AUTOINCREMENT`` positions if
    it has none (copying every row with its position; SQLite then never gives a
    position at or below the largest one given). Idempotent."""
    events = tables.events
    found = conn.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": events.name},
    ).scalar()
    if found is None or "AUTOINCREMENT" in str(found).upper():
        return
    prep = conn.dialect.identifier_preparer
    rebuilt = events.to_metadata(sa.MetaData(), name=f"{events.name}_rebuilt")
    rebuilt.create(conn)
    present = {c["name"] for c in sa.inspect(conn).get_columns(events.name)}
    # Tables older than version 4 have no schema_version yet: the rebuilt rows get its
    # default, and version 4's step then finds it there.
    columns = ", ".join(prep.quote(c.name) for c in events.columns if c.name in present)
    old, new = prep.format_table(events), prep.format_table(rebuilt)
    conn.execute(sa.text(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {old}"))
    conn.execute(sa.text(f"DROP TABLE {old}"))
    conn.execute(sa.text(f"ALTER TABLE {new} RENAME TO {prep.quote(events.name)}"))


class SqliteDialect(CoreDialect):
    """SQLite: one writer at a time (``BEGIN IMMEDIATE``), position order is commit order."""

    testing = SqliteTesting()

    writes_outlive_cancellation = True
    """aiosqlite runs each statement in a thread of its own that a cancellation does
    not stop; a write stopped halfway there could leave the file's write lock taken
    for a while (every later writer then waited out its busy timeout), so a cancelled
    write goes on to its end instead."""

    name = "sqlite"
    title = "SQLite"
    url_schemes = ("sqlite",)
    default_driver = "pysqlite"
    drivers = frozenset({"pysqlite"})
    driver_module = "sqlite3"
    async_drivers = MappingProxyType({"aiosqlite": "aiosqlite"})
    async_extra = "asyncio"
    extra = None
    ddl = Ddl(
        key=sa.String,
        position=sa.Integer(),  # only INTEGER PRIMARY KEY is the rowid
        blob=sa.LargeBinary(),
        long_text=sa.Text(),
        # A rowid is never given twice, even after the rows with the largest ones were
        # deleted (stream deletion, retention): a relay past it would skip its reuse.
        events_options={"sqlite_autoincrement": True},
        steps={3: _autoincrement_positions},
    )

    @classmethod
    def engine_options(cls, url: URL, connect_timeout: float) -> dict[str, Any]:
        """A file: connections usable from any thread, waiting ``connect_timeout`` for
        the write lock. In memory: one shared connection (the store serializes its
        use)."""
        if _is_memory(url):
            return {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        return {"connect_args": {"check_same_thread": False, "timeout": connect_timeout}}

    @classmethod
    def shares_memory(cls, url: URL) -> bool:
        """``sqlite://`` and ``sqlite:///:memory:``."""
        return _is_memory(url)

    @classmethod
    def configure_engine(cls, engine: Engine) -> None:
        """Put a database file in WAL mode on connect (readers and the writer do not
        wait for each other)."""
        if not _is_memory(engine.url):
            sa.event.listen(engine, "connect", _wal)

    @classmethod
    def application_engine_options(
        cls, url: URL, *, connect_timeout: float, lock_timeout: float
    ) -> dict[str, Any]:
        """Like a store's, waiting ``lock_timeout`` for the write lock."""
        return cls.engine_options(url, lock_timeout)

    @classmethod
    def configure_application_engine(cls, engine: Engine) -> None:
        """The WAL journal, as for a store's engine."""
        cls.configure_engine(engine)

    @classmethod
    def insert_ignoring_duplicates(cls, table: sa.Table) -> sa.Insert:
        """``INSERT ... ON CONFLICT DO NOTHING``."""
        return sqlite.insert(table).on_conflict_do_nothing()

    @classmethod
    def is_unique_violation(cls, err: BaseException) -> bool:
        """``UNIQUE constraint failed``."""
        return isinstance(err, sqlalchemy.exc.IntegrityError) and (
            "UNIQUE constraint failed" in str(err.orig)
        )

    def __init__(self, tables: Tables, engine: Engine, *, notify: bool = False) -> None:
        super().__init__(tables, engine, notify=notify)
        cpt = tables.checkpoints
        ins = sqlite.insert(cpt)
        self._mark = ins.on_conflict_do_update(
            index_elements=[cpt.c.name],
            set_={
                "position": ins.excluded.position,
                "updated_at": sa.func.current_timestamp(),
            },
            where=cpt.c.position < ins.excluded.position,
        )
        self._outbox = self.outbox_ordered_by(tables.events.c.position)
        self._outbox_after = self.outbox_ordered_by(tables.events.c.position, after=True)
        self._snapshot = snapshot_upsert_on_conflict(tables, sqlite.insert)
        ev = tables.events
        self._keys = sa.select(ev.c.position).where(
            ev.c.position.in_(sa.bindparam("positions", expanding=True))
        )
        self._file = _database_file(engine.url)
        self.shares_one_connection = _is_memory(engine.url)
        self._process_locks: dict[str, object] = {}
        """Holders of relay locks on ``sqlite://``, where locks stay in the process."""
        self._process_locks_guard = threading.Lock()

    def missing_database(self) -> str | None:
        """A database file that does not exist (connecting would create it)."""
        if self._file is None or os.path.exists(self._file):
            return None
        return f"there is no SQLite database at {os.path.abspath(self._file)}"

    @contextlib.contextmanager
    def migration(self) -> Iterator[Connection]:
        """A ``BEGIN IMMEDIATE`` transaction (DDL is transactional in SQLite)."""
        with self.base_engine.connect() as conn:
            self.begin_write(conn, single=False)
            yield conn
            conn.commit()

    def begin_write(self, conn: Connection, *, single: bool) -> None:
        """``BEGIN IMMEDIATE`` unless the driver already opened a transaction."""
        dbapi = conn.connection.dbapi_connection
        if not getattr(dbapi, "in_transaction", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def direct_begin(self, cursor: Any) -> None:
        """``BEGIN IMMEDIATE`` (one writer at a time: position order is commit order)."""
        if not cursor.connection.in_transaction:
            cursor.execute("BEGIN IMMEDIATE")

    def upsert_snapshot(
        self, conn: Connection, key: tuple[str, str], version: int, data: bytes, schema_version: int
    ) -> bool:
        """``INSERT ... SELECT FROM streams ... ON CONFLICT DO UPDATE``."""
        return upsert_snapshot_with(
            self._snapshot, conn, key, version, data, schema_version=schema_version
        )

    def outbox_rows(
        self, conn: Connection, name: str, limit: int, after: tuple[int, int] | None = None
    ) -> tuple[list[OutboxRow], int | None]:
        """Rows after the checkpoint (or after the key ``after``) in position order;
        nothing is ever held back. Reading after any key handed out keeps the argument
        of the module docstring: positions are committed in the order they are given."""
        return self.read_outbox(conn, name, limit, after), None

    def outbox_keys(self, conn: Connection, positions: Sequence[int]) -> dict[int, tuple[int, int]]:
        """(0, position) of each stored event among ``positions``."""
        found = conn.execute(self._keys, {"positions": list(positions)}).scalars()
        return {int(p): (0, int(p)) for p in found}

    def mark(
        self, conn: Connection, name: str, key: tuple[int, int], *, durable: bool = True
    ) -> None:
        """Upsert the checkpoint where the position grows (by the primary key ``name``).

        ``durable`` changes nothing here: the commit is as durable as the connection's
        ``PRAGMA synchronous`` makes every write of the store (in WAL mode, the default
        ``FULL`` syncs the log at each commit); a per-statement setting would be left on
        the pooled connection for the appends that follow."""
        conn.execute(self._mark, {"name": name, "tx_id": 0, "position": key[1]})

    def relay_lock(self, name: str) -> RelayLockHolder:
        """A lock database beside the file, or a lock in the process for ``sqlite://``."""
        if self.shares_one_connection:
            return _ProcessLock(self._process_locks, self._process_locks_guard, name)
        hashed = self.relay_lock_digest(name)
        return _FileLock(f"{self.base_engine.url.database}-relay-{hashed.hex()}.lock")

    def relay_queue_order(self) -> tuple[sa.ColumnElement[Any], ...]:
        """By position (the primary key)."""
        return (self.tables.events.c.position,)

    def relay_progress(self) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[bool]]:
        """By position."""
        ev, cp = self.tables.events, self.tables.checkpoints
        return ev.c.position <= cp.c.position, ev.c.position > cp.c.position
