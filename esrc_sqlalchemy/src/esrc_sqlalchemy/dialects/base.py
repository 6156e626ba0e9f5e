"""The contract every database of the SQL store fulfils: :class:`SqlDialect`, and the
records and helper objects its hooks exchange with the rest of the package.

A dialect class is the single home of everything specific to one database: the URLs
and driver it accepts, how its engines are configured, how it spells the tables
(:class:`~esrc_sqlalchemy.schema.Ddl`), which driver errors are deadlocks or unique
violations, the statements of appends, reads, snapshots and the outbox, how it holds a
relay lock, how outboxes wait for events, its collation and size limits, and the SQL
its tests need (:class:`TestingHooks`). The rest of the package asks the dialect and
never compares the database's name.

Class attributes and class methods describe the database before any store exists
(URL rules, engine options, DDL). A dialect *instance* belongs to one store (one set of
tables on one engine); its methods take a :class:`~sqlalchemy.engine.Connection` the
store's executor opened, leave committing to it (except where a method says
otherwise), and never catch driver errors: the executor translates them.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import operator
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple, Protocol

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.engine import URL, Connection, Engine

from esrc_sqlalchemy._awaiting import blocking_face
from esrc_sqlalchemy.schema import Ddl, Tables

__all__ = [
    "LAST_VERSION",
    "ROWCOUNT",
    "SERVER_POOL",
    "ConnectionLockHolder",
    "EventRow",
    "OutboxListener",
    "OutboxRow",
    "RelayLockHolder",
    "SessionLockHolder",
    "SqlDialect",
    "StreamPage",
    "TestingHooks",
    "digest",
    "driver_connection",
    "stream_page",
]


def driver_connection(pooled: Any) -> Any:
    """The driver's own connection under ``pooled`` (a pool's connection, or a
    SQLAlchemy connection's ``connection``), with the blocking DB-API face the hooks
    are written against: the connection itself, or, on an asyncio engine, a face whose
    calls wait through SQLAlchemy's greenlet bridge (valid only inside it)."""
    driver = pooled.driver_connection
    if pooled.dbapi_connection is not driver:
        return blocking_face(driver)
    return driver


EventRow = tuple[str, bytes, str | None]
"""One event to write: name, data, metadata as JSON text (``None`` when empty)."""

ROWCOUNT = {"preserve_rowcount": True}
"""Execution options that keep the row count of ``INSERT ... SELECT`` and CTE statements."""

LAST_VERSION = 2**62
"""A version no stream reaches: the upper bound of a page that reads to the end."""


class StreamPage(NamedTuple):
    """What :meth:`SqlDialect.read_page` and :meth:`SqlDialect.load_page` return."""

    version: int
    """The stream's version when the page was read."""
    snapshot: tuple[int, bytes, int] | None
    """The newest snapshot's version, data and schema version (``load_page`` only), or
    ``None``."""
    events: Sequence[Any]
    """Rows that start (version, name, data, metadata, schema version), in version
    order."""


_version = operator.itemgetter(0)


def stream_page(rows: list[Any]) -> StreamPage | None:
    """The :class:`StreamPage` of a page query's ``rows``: the page's event rows (in any
    order) and one header row whose name is ``NULL``, holding the snapshot's version,
    ``NULL``, the snapshot's data, the stream's version as text and the snapshot's
    schema version (no header: the
    stream does not exist). Page queries put the header in a ``UNION ALL`` beside the
    events so that no event row carries the stream's or the snapshot's columns, and
    SQL promises no order for its rows, so the events are sorted here (one linear pass
    when they come in order)."""
    if not rows:
        return None
    if rows[-1][1] is None:
        header = rows.pop()
    else:
        header = rows.pop(next(i for i, row in enumerate(rows) if row[1] is None))
    rows.sort(key=_version)
    snapshot_version, _, snapshot_data, stream_version, snapshot_schema = header
    snapshot = None
    if snapshot_version is not None:
        data = snapshot_data if type(snapshot_data) is bytes else bytes(snapshot_data)
        snapshot = (int(snapshot_version), data, int(snapshot_schema))
    return StreamPage(int(stream_version), snapshot, rows)


class OutboxRow(NamedTuple):
    """One event as an outbox read returns it, first its order key.

    Rows compare as their order keys do: ``(tx_id, ord)`` is unique per event. Dialects
    return the driver's rows as they come (tuples or SQLAlchemy rows in these columns,
    unpacked by index): building an ``OutboxRow`` per row would be a second object per
    event for nothing.
    """

    tx_id: int
    """The order key's first part: the writing transaction's id on PostgreSQL, 0 on
    the other databases."""
    ord: int
    """The order key's second part: the position, or on MariaDB/MySQL the ``seq`` the
    outbox numbered the event with. The checkpoint stores (tx_id, ord)."""
    position: int
    """The event's global position (what :class:`~esrc_core.relay.RelayEvent` carries)."""
    aggregate_type: str
    aggregate_id: str
    """The encoded aggregate id (:func:`esrc_core.ids.encode_id`)."""
    version: int
    name: str
    data: bytes
    """The event data; some drivers return a ``memoryview`` or ``bytearray``."""
    metadata: str | None
    """The metadata as JSON text, ``None`` when empty."""
    held: int | None
    """PostgreSQL: the largest ``tx_id`` of committed events held back behind
    transactions in progress (the same in every row of a batch), ``None`` when there
    are none; ``None`` on the other databases."""
    schema_version: int
    """The event's schema version."""


class RelayLockHolder(Protocol):
    """How one database holds relay ``name``'s lock for one
    :class:`~esrc_sqlalchemy.locks.SqlRelayLock`: on a connection of its own outside the
    store's pool, released by the database when that session or process ends.

    Methods raise driver errors as they come; the lock translates them.
    """

    @property
    def engaged(self) -> bool:
        """Whether this holder believes it holds the lock (has its connection or claim)."""
        ...

    def try_acquire(self) -> bool:
        """Take the lock if it is free, without waiting; return whether it did."""
        ...

    def held(self) -> bool:
        """Whether the lock is still held, asking the database; a lock lost with its
        session reads ``False`` and the holder lets go of its connection."""
        ...

    def release(self) -> None:
        """Let go of the lock (ending its session); harmless when not held."""
        ...

    def session_id(self) -> int | None:
        """The server session holding the lock, for tests that end it; ``None`` when
        not held or when the database has no sessions to end (SQLite)."""
        ...


class OutboxListener(Protocol):
    """A connection of an outbox's own that is told when events were appended."""

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a notification; return whether one came."""
        ...

    def close(self) -> None:
        """Close the connection. Calling it twice is harmless."""
        ...


class TestingHooks:
    """The SQL a database's tests need and the store never runs (as SQLAlchemy's
    ``provision.py`` per dialect): finding and ending server sessions. The default
    raises ``NotImplementedError``: SQLite has no sessions to end."""

    no_late_commits: str | None = None
    """Why a test cannot hold a commit on this database while later ones commit (its
    writes take turns), or ``None`` when it can."""

    def session_id(self, conn: Connection) -> int:
        """The server session id of ``conn``."""
        raise NotImplementedError("this database has no server sessions")

    def kill_session(self, conn: Connection, session: int) -> None:
        """End server session ``session`` from ``conn`` (in autocommit mode)."""
        raise NotImplementedError("this database has no server sessions")

    def sessions_waiting(self, conn: Connection, pattern: str) -> list[int]:
        """The sessions other than ``conn``'s running a statement that matches the
        ``LIKE`` ``pattern`` and waiting for a lock."""
        raise NotImplementedError("this database has no server sessions")

    def kill_sessions_of(self, conn: Connection, application_name: str) -> int:
        """End every server session that connected with ``application_name``; return
        how many."""
        raise NotImplementedError("this database does not name sessions")


class ConnectionLockHolder:
    """The part of a :class:`RelayLockHolder` whose lock lives as long as a connection
    of its own: closing the connection gives the lock up."""

    def __init__(self) -> None:
        self._conn: Any = None

    @property
    def engaged(self) -> bool:
        """Whether the holder has its connection (believes it holds the lock)."""
        return self._conn is not None

    def release(self) -> None:
        """Close the connection, which ends the lock with it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


class SessionLockHolder(ConnectionLockHolder, abc.ABC):
    """A :class:`RelayLockHolder` for a server database: a session-level lock taken on
    a driver connection of its own, detached from ``engine``'s pool, so the server
    releases it when that session ends. Subclasses say how to take, check and name it
    on the driver connection."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self._engine = engine
        self._waiting: Any = None

    @abc.abstractmethod
    def _take(self, conn: Any) -> bool:
        """Put ``conn`` (the driver's connection) in autocommit mode and try the lock."""

    @abc.abstractmethod
    def _check(self, conn: Any) -> bool:
        """Whether ``conn``'s session holds the lock (one query)."""

    @abc.abstractmethod
    def _session(self, conn: Any) -> int:
        """``conn``'s server session id."""

    @abc.abstractmethod
    def _unlock(self, conn: Any) -> None:
        """Give the lock up on ``conn``'s session (one query)."""

    def try_acquire(self) -> bool:
        """Try the lock without waiting, on the connection the last failed try left
        (a standby keeps one session while it waits, instead of opening one per try),
        or on a new one when there is none or it broke; keep the connection either
        way. :meth:`release` closes it."""
        conn = self._waiting
        self._waiting = None
        if conn is not None:
            try:
                got = self._take(conn)
            except Exception:  # a session the server ended while it waited
                with contextlib.suppress(Exception):
                    conn.close()
                conn = None
        if conn is None:
            raw = self._engine.raw_connection()
            conn = driver_connection(raw)
            raw.detach()
            try:
                got = self._take(conn)
            except BaseException:
                conn.close()
                raise
        if not got:
            self._waiting = conn
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        """Unlock on the lock's session, then close its connection and the one a
        standby waits on. Closing alone would end the lock too, but the server ends a
        closed session a moment after the client returns, and the next holder must
        not find the lock still taken once this call has returned."""
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):  # a lost session holds nothing
                self._unlock(conn)
        super().release()
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            with contextlib.suppress(Exception):
                waiting.close()

    def held(self) -> bool:
        """Ask the server; on any failure (a lost session) let go of the connection."""
        conn = self._conn
        if conn is None:
            return False
        try:
            if self._check(conn):
                return True
        except Exception:
            pass
        self.release()
        return False

    def session_id(self) -> int | None:
        """The session holding the lock, or ``None`` when not held."""
        return None if self._conn is None else self._session(self._conn)


SERVER_POOL: dict[str, Any] = {"pool_size": 16, "max_overflow": 14}
"""The connection pool of a store engine on a database server (PostgreSQL, MariaDB):
up to 30 connections, of which appends keep up to 8 between writes."""


def digest(*parts: object) -> bytes:
    """An 8-byte hash of ``parts`` (stable across processes), for lock and channel
    names derived from a database, schema and table prefix."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()


class SqlDialect(abc.ABC):
    """One database: the class describes it, an instance serves one store's tables.

    A new database subclasses this in a module of its own and is added to the registry
    in :mod:`esrc_sqlalchemy.dialects`. The hooks marked abstract must be implemented;
    the others have a default that fits most databases (usually doing nothing).
    """

    # --- what the database is (class level) --------------------------------------------

    name: ClassVar[str]
    """The registry key, e.g. ``"postgresql"``; also what
    :attr:`SqlEventStore.family <esrc_sqlalchemy.store.SqlEventStore.family>` says."""
    title: ClassVar[str]
    """The database's name in messages, e.g. ``"PostgreSQL"``."""
    url_schemes: ClassVar[tuple[str, ...]]
    """URL schemes (without ``+driver``) and SQLAlchemy dialect names it serves."""
    default_driver: ClassVar[str]
    """The SQLAlchemy driver name a URL without ``+driver`` gets."""
    drivers: ClassVar[frozenset[str]]
    """The SQLAlchemy driver names the store works with."""
    driver_module: ClassVar[str]
    """The DB-API module behind the driver (checked for before connecting); its errors
    count as driver errors (:meth:`is_driver_error`)."""
    async_drivers: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """The SQLAlchemy asyncio driver names the async store works with, each with the
    module it needs (checked for before connecting); the first is the one a URL gets
    for the async store when it names the sync driver or none. Their errors must be
    :attr:`driver_module`'s, so that one error translation serves both."""
    async_extra: ClassVar[str | None] = None
    """The ``esrc-sqlalchemy[...]`` extra that installs the asyncio driver."""
    extra: ClassVar[str | None]
    """The ``esrc-sqlalchemy[...]`` extra that installs the driver (``None``: built in)."""
    ddl: ClassVar[Ddl]
    """How the database spells the store's tables."""
    supports_schema: ClassVar[bool] = False
    """Whether the store's ``schema=`` option applies."""
    supports_notify: ClassVar[bool] = False
    """Whether the store's ``notify=`` option applies (appends wake listening outboxes)."""
    testing: ClassVar[TestingHooks] = TestingHooks()
    """The SQL tests need (:class:`TestingHooks`)."""

    requires_database: ClassVar[bool] = False
    """Whether a store URL must name its database (``scheme://host/db``): true for a
    server that would otherwise open the user's default database, so that the store's
    tables are never created where nobody asked for them."""

    @classmethod
    def check_url(cls, url: URL, shown: str) -> str | None:
        """What is wrong with a parsed store ``url`` for this database (``shown`` is its
        masked text), or ``None``. The default refuses a URL without a database name
        where :attr:`requires_database`; a dialect that adds rules calls it first."""
        if cls.requires_database and not url.database:
            return (
                f"store URL {shown!r} names no database: use "
                f"{url.get_backend_name()}://host/dbname (the {cls.title} server would "
                "otherwise open a default database and create the tables there)"
            )
        return None

    @classmethod
    def shares_memory(cls, url: URL) -> bool:
        """Whether ``url`` names a database in memory that every operation shares one
        connection to (then :attr:`shares_one_connection`)."""
        return False

    @classmethod
    @abc.abstractmethod
    def engine_options(cls, url: URL, connect_timeout: float) -> dict[str, Any]:
        """Arguments of :func:`sqlalchemy.create_engine` for a store's engine on ``url``
        (``connect_timeout`` in seconds: how long connecting, or on SQLite waiting for
        the write lock, may take)."""

    @classmethod
    def configure_engine(cls, engine: Engine) -> None:
        """Set up a store engine just created with :meth:`engine_options` (event
        listeners, driver tweaks)."""

    @classmethod
    def application_engine_options(
        cls, url: URL, *, connect_timeout: float, lock_timeout: float
    ) -> dict[str, Any]:
        """Arguments of :func:`sqlalchemy.create_engine` for an application's own tables
        beside the store: ordinary transactions (never autocommit), ``connect_timeout``
        for connecting and, where writers queue for a database lock (SQLite),
        ``lock_timeout`` for that wait. See
        :func:`esrc_sqlalchemy.engines.create_application_engine`."""
        return {}

    @classmethod
    def configure_application_engine(cls, engine: Engine) -> None:
        """Set up an engine just created with :meth:`application_engine_options`."""

    @classmethod
    @abc.abstractmethod
    def insert_ignoring_duplicates(cls, table: sa.Table) -> sa.Insert:
        """``INSERT`` into ``table`` that does nothing (row count 0) for a row whose key
        exists, for applications' own tables."""

    @classmethod
    def is_deadlock(cls, err: BaseException) -> bool:
        """Whether ``err`` is a deadlock or serialization failure the server resolved by
        rolling back the whole transaction, so running it again is safe."""
        return False

    @classmethod
    @abc.abstractmethod
    def is_unique_violation(cls, err: BaseException) -> bool:
        """Whether ``err`` is a duplicate key in a unique index or primary key."""

    @classmethod
    def is_driver_error(cls, err: BaseException) -> bool:
        """Whether ``err`` comes from the database or its driver (as opposed to a bug):
        SQLAlchemy's errors, ``OSError`` and the exceptions of :attr:`driver_module`."""
        if isinstance(err, sqlalchemy.exc.SQLAlchemyError | OSError):
            return True
        return type(err).__module__.split(".")[0] == cls.driver_module

    # --- one store's tables (instance level) --------------------------------------------

    shares_one_connection = False
    """Whether the store's operations share one connection and must take turns
    (SQLite in memory)."""

    writes_outlive_cancellation: ClassVar[bool] = False
    """On an asyncio engine: whether a write goes on to its end when the task that
    asked for it is cancelled (the task gets ``CancelledError`` at once), instead of
    being stopped where it waits. Either way an append is stored whole or not at all;
    stopping a write halfway is the cheaper one where the driver recovers from it."""

    def __init__(self, tables: Tables, engine: Engine, *, notify: bool = False) -> None:
        self.tables = tables
        """The store's tables."""
        self.engine = engine
        """The engine the store runs its operations on."""
        self.base_engine = engine
        """The engine the store was given or created (migrations and locks use it)."""
        st = tables.streams
        key_t, key_i = tables.key_parameters()
        self._stream_version = sa.select(st.c.version).where(
            st.c.aggregate_type == key_t, st.c.aggregate_id == key_i
        )

    def missing_database(self) -> str | None:
        """Why the database cannot be opened without creating it (a SQLite file that does
        not exist), or ``None``; asked before a store that must not create its tables
        connects."""
        return None

    @abc.abstractmethod
    def migration(self) -> AbstractContextManager[Connection]:
        """A connection holding this database's migration lock for the tables, in a
        transaction that commits when the block ends without an error."""

    def prepare(self, conn: Connection) -> None:
        """Check the server once, on the store's first use (version, limits)."""

    def close(self) -> None:
        """Stop what the dialect runs in the background, if anything."""

    # --- writes -------------------------------------------------------------------------

    def begin_write(self, conn: Connection, *, single: bool) -> None:
        """Start a write transaction on ``conn``; ``single`` says the write is one
        statement (atomic by itself)."""

    def before_removing_events(self, conn: Connection) -> None:
        """In the transaction that deletes or truncates a stream, before any event row
        is deleted: take what keeps the outbox consistent while rows disappear (nothing
        by default: an outbox read never relies on a row it has not read yet)."""

    def after_write(self, conn: Connection) -> None:
        """Release per-connection state a write left behind (after commit or rollback)."""

    def check_rows(self, rows: Sequence[EventRow], doing: str) -> None:
        """Raise :class:`~esrc_core.errors.InvalidEventError` for rows this database
        cannot take."""

    def check_snapshot(self, data: bytes, doing: str) -> None:
        """Raise :class:`~esrc_core.errors.InvalidEventError` for snapshot data this
        database cannot take."""

    @abc.abstractmethod
    def create_stream(
        self, conn: Connection, key: tuple[str, str], rows: Sequence[EventRow]
    ) -> None:
        """Insert a new stream at version ``len(rows)`` and its events; a stream that
        exists raises the driver's unique violation."""

    @abc.abstractmethod
    def insert_stream(self, conn: Connection, key: tuple[str, str], version: int) -> None:
        """Insert the row of a new stream at ``version``, without its events (the
        first step of creating it in a transaction of several streams: the events
        follow with :meth:`insert_events`); a stream that exists raises the driver's
        unique violation."""

    @abc.abstractmethod
    def extend_stream(
        self, conn: Connection, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> bool:
        """Append ``rows`` if the stream is at ``from_version``; return whether it was
        (nothing is written when it is not). The same effect as :meth:`claim_stream`
        then :meth:`insert_events`."""

    @abc.abstractmethod
    def claim_stream(
        self, conn: Connection, key: tuple[str, str], from_version: int, count: int
    ) -> bool:
        """The first step of an append: move the stream from ``from_version`` to
        ``from_version + count`` if it is there (locking its row until the transaction
        ends); return whether it was."""

    @abc.abstractmethod
    def insert_events(
        self, conn: Connection, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> None:
        """The second step of an append: insert ``rows`` at versions ``from_version + 1``
        on."""

    # --- the direct write path --------------------------------------------------------

    direct_writes: ClassVar[bool] = False
    """Whether appends can run on the driver directly (:meth:`direct_create` and
    :meth:`direct_extend` on a DB-API cursor), skipping SQLAlchemy's per-call work.
    The hooks below are used only when it is true."""

    def accepts_direct(self, rows: Sequence[EventRow]) -> bool:
        """Whether ``rows`` can be written by :meth:`direct_create` and
        :meth:`direct_extend` (which then need no :meth:`check_rows`); the default
        says so when :attr:`direct_writes`."""
        return self.direct_writes

    def direct_checkout(self, driver: Any) -> Any:
        """Prepare ``driver`` (a DB-API connection just taken from the engine's pool)
        for direct writes, e.g. put it in autocommit mode; return what
        :meth:`direct_checkin` needs to undo that."""
        return None

    def direct_checkin(self, driver: Any, state: Any) -> None:
        """Undo :meth:`direct_checkout` (which returned ``state``) before ``driver``
        goes back to the pool."""

    def direct_rollback(self, driver: Any) -> None:
        """End whatever a failed direct write left open on ``driver``."""
        driver.rollback()

    def direct_create(self, cursor: Any, key: tuple[str, str], rows: Sequence[EventRow]) -> None:
        """:meth:`create_stream` on a DB-API cursor, committed: when it returns, the
        stream and its events are stored. A stream that exists raises the driver's
        unique violation."""
        raise NotImplementedError

    def direct_extend(
        self, cursor: Any, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> bool:
        """:meth:`extend_stream` on a DB-API cursor, committed when it returns
        ``True``; ``False`` (nothing written) when the stream is not at
        ``from_version``."""
        raise NotImplementedError

    direct_reads: ClassVar[bool] = False
    """Whether stream reads can run on the driver connections kept for direct writes
    (:meth:`direct_read_page`, :meth:`direct_load_page`): only where those are in
    autocommit mode, so that a read leaves no transaction open behind it."""

    def direct_read_page(
        self, cursor: Any, key: tuple[str, str], from_version: int, to_version: int, limit: int
    ) -> StreamPage | None:
        """:meth:`read_page` on a DB-API cursor (see :attr:`direct_reads`)."""
        raise NotImplementedError

    def direct_load_page(self, cursor: Any, key: tuple[str, str], limit: int) -> StreamPage | None:
        """:meth:`load_page` on a DB-API cursor (see :attr:`direct_reads`)."""
        raise NotImplementedError

    def events_written(self) -> None:
        """Events were appended and committed: wake up outboxes waiting for events.
        Returns at once."""

    @abc.abstractmethod
    def upsert_snapshot(
        self, conn: Connection, key: tuple[str, str], version: int, data: bytes, schema_version: int
    ) -> bool:
        """Store (or replace) the snapshot, with its ``schema_version``, if the stream
        exists at ``version`` or later; return whether it did. One statement."""

    # --- reads --------------------------------------------------------------------------

    def stream_version(self, conn: Connection, key: tuple[str, str]) -> int | None:
        """The stream's version, or ``None`` if it does not exist."""
        found = conn.execute(self._stream_version, {"key_type": key[0], "key_id": key[1]}).scalar()
        return None if found is None else int(found)

    @abc.abstractmethod
    def latest_snapshot(self, conn: Connection, key: tuple[str, str]) -> Any:
        """The row (version, data) of the newest snapshot, or ``None``. One query."""

    @abc.abstractmethod
    def read_page(
        self, conn: Connection, key: tuple[str, str], from_version: int, to_version: int, limit: int
    ) -> StreamPage | None:
        """The stream's version and its events with a version in ``from_version + 1 ..
        to_version``, at most ``limit`` of them; ``None`` when the stream does not
        exist. One query.

        A stream's stored events never change, so a reader pages through it with
        several of these, each in a transaction of its own."""

    @abc.abstractmethod
    def load_page(self, conn: Connection, key: tuple[str, str], limit: int) -> StreamPage | None:
        """:meth:`read_page` of the first ``limit`` events after the newest snapshot
        (after version 0 without one), with that snapshot: one query on a database
        server (one round trip)."""

    # --- outbox -------------------------------------------------------------------------

    @abc.abstractmethod
    def outbox_rows(
        self, conn: Connection, name: str, limit: int, after: tuple[int, int] | None = None
    ) -> tuple[Sequence[OutboxRow], int | None]:
        """Up to ``limit`` rows after relay ``name``'s checkpoint (or, given ``after``,
        after that order key of a row this outbox handed out: reading ahead of the
        checkpoint), first in outbox order,
        only from transactions that can no longer change that order; and the largest
        ``tx_id`` of committed events held back behind transactions in progress
        (``None`` when there are none; always ``None`` where nothing is held back).
        The order never skips an event that commits late: each database's module
        says why."""

    def hold_back_ended(self, conn: Connection, held: int) -> bool:
        """Whether every transaction that held back events up to ``tx_id`` ``held`` (as
        :meth:`outbox_rows` reported it) has ended."""
        return True

    @abc.abstractmethod
    def outbox_keys(self, conn: Connection, positions: Sequence[int]) -> dict[int, tuple[int, int]]:
        """The order key (tx_id, ord) of each event among ``positions`` that the outbox
        can have handed out; the others are missing from the result."""

    @abc.abstractmethod
    def mark(
        self, conn: Connection, name: str, key: tuple[int, int], *, durable: bool = True
    ) -> None:
        """Move relay ``name``'s checkpoint forward to the order key ``key``; never
        backwards. One statement on the checkpoint's primary key (``name``): its cost
        does not depend on the store's size. With ``durable=False`` the commit may skip
        waiting for the disk where the database allows it per statement (each dialect
        says what it does)."""

    def open_listener(self) -> OutboxListener | None:
        """A new :class:`OutboxListener` if appends notify (``notify=True`` where
        :attr:`supports_notify`), else ``None``: outboxes then poll."""
        return None

    @property
    def notify_channel(self) -> str | None:
        """The channel appends notify on, or ``None`` when they do not."""
        return None

    # --- relay locks --------------------------------------------------------------------

    @abc.abstractmethod
    def relay_lock(self, name: str) -> RelayLockHolder:
        """A new holder of relay ``name``'s lock for these tables, not yet acquired."""

    def relay_lock_holders(self, conn: Connection, names: Sequence[str]) -> dict[str, str | None]:
        """Who holds the relay locks of ``names``, asked on ``conn`` without taking
        them (see :class:`esrc_core.locks.InspectsRelayLocks`): the holder's
        description or ``None`` (free) for each name this database can tell about.
        None by default: a lock that can only be tested by taking it stays unknown."""
        return {}

    def relay_lock_digest(self, name: str) -> bytes:
        """Eight bytes naming relay ``name``'s lock on these tables: hashed from the
        database, schema, table prefix and relay name. Every database derives its lock
        from this one digest, and it must never change between releases: processes of
        two releases running side by side must still exclude each other."""
        tables = self.tables
        return digest(self.base_engine.url.database, tables.schema, tables.prefix, name)

    # --- operator views -----------------------------------------------------------------

    def code_point_order(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """``column`` as an ``ORDER BY`` term that sorts text by code point, as Python
        sorts ``str`` (the key columns already do, unless the dialect says otherwise)."""
        return column

    def stored_time(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """``column`` (a timestamp the database wrote) as an expression that reads back
        as an aware datetime, a naive UTC datetime or Unix seconds."""
        return column

    def relay_queue_order(self) -> tuple[sa.ColumnElement[Any], ...] | None:
        """The order a relay publishes pending events in, as events columns an index
        keeps in that order, or ``None`` when no index does. With an order, the oldest
        pending event an operator view shows is the first pending one in it (the event
        the relay waits on; one index probe); without, the earliest ``created_at`` of
        every pending event (a pass over them)."""
        return None

    @abc.abstractmethod
    def relay_progress(self) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[bool]]:
        """Conditions on an events row joined to a checkpoints row: whether the event
        is at or before the checkpoint (published), and whether it is not yet."""
