"""MariaDB 10.5+ / MySQL 8 through PyMySQL: everything the SQL store does differently
on them.

URLs: ``mysql://...``, ``mariadb://...`` and their ``+pymysql`` forms, naming a
database. Engines run in autocommit mode (single statements commit by themselves;
appends open a READ COMMITTED transaction explicitly). Stream keys and relay names are
stored as UTF-8 in ``VARBINARY`` columns, because the text collations here ignore case
or trailing spaces; that also makes them sort by code point.

**Why the outbox never skips an event: sequence after commit.** An append takes no
lock beyond its own stream's row (the conditional ``UPDATE`` of the stream's version,
or the ``INSERT`` of a new stream) and inserts its events with ``seq`` 0 (not numbered
yet); writers to different streams never wait for each other. ``position``
(``AUTO_INCREMENT``) is only a tie-breaker: it is allocated at insert time, not at
commit, so it alone is not commit order. The outbox order is ``seq``, handed out by
the readers: an outbox that finds fewer than ``limit`` numbered events after its
checkpoint runs a short *sequencing pass* in a transaction of its own - lock the
single row of the ``sequencer`` table (``SELECT ... FOR UPDATE``; outboxes take turns
on it, appends never touch it), read the committed rows whose ``seq`` is 0 in position
order together with the largest ``seq`` given so far (one consistent, non-locking
read), number them consecutively after it (an ``UPDATE`` by primary key), commit.
Then it reads ``seq > checkpoint`` in ``seq`` order; the checkpoint is a ``seq``.

On the engines the store creates an append is one request of several statements
(``START TRANSACTION``; the conditional ``UPDATE``; an ``INSERT ... SELECT`` of the
events from the stream's row at its new version; ``COMMIT``). When the ``UPDATE``
matched nothing, the ``INSERT`` finds no row (nothing is written) or, if another
writer moved the stream to that same version, inserts versions that exist already: a
unique violation that stops the request before ``COMMIT``. Either way the append
writes nothing, and it takes no other lock than before.

Why nothing is skipped and the order holds:

- Only committed rows are numbered: the pass finds them with a consistent read, which
  neither sees nor waits for rows of transactions in flight, and updates them by
  primary key, locking only rows no writer holds. Rolled-back rows never get a number.
- A number, once given, never changes, and passes run one at a time (the lock), each
  reading after the previous one committed: the numbers form one total order that only
  grows at its end, the same for every relay and after every restart.
- A row that commits late is numbered by a later pass, above everything numbered
  before it, so a reader past checkpoint c still finds it: nothing is skipped.
- Per stream, version v+1 can only be appended after v committed (the stream row's
  version check), so v was inserted first and has the smaller position: within one
  pass rows are numbered by position, and across passes v is numbered no later than
  v+1. Each stream's versions appear in order.

The price: every event is written once more, by the reader that numbers it, and relays
number events for each other (whichever outbox runs a pass numbers every committed
row). Positions come from one server's ``AUTO_INCREMENT``, monotonic in time; a
multi-writer cluster that interleaves ranges would break the per-stream argument above.

Relay locks are named locks (``GET_LOCK``); migrations take one too. Outboxes poll for
events.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from esrc_core.errors import EsrcError, InvalidEventError, StoreUnavailableError
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, Connection, Dialect, Engine
from sqlalchemy.types import TypeDecorator

from esrc_sqlalchemy.dialects._core import SNAPSHOT_COLUMNS, CoreDialect, snapshot_source
from esrc_sqlalchemy.dialects.base import (
    ROWCOUNT,
    SERVER_POOL,
    EventRow,
    OutboxRow,
    RelayLockHolder,
    SessionLockHolder,
    StreamPage,
    TestingHooks,
    digest,
    stream_page,
)
from esrc_sqlalchemy.schema import Ddl, Tables

__all__ = ["MySqlDialect", "Utf8Bytes"]

_MIGRATION_LOCK_TIMEOUT = 120
_PASS_MIN = 1000
"""Fewest events a sequencing pass numbers when there are that many, so that reading
in small batches does not run a pass per batch."""
_SERVER_STATUS_IN_TRANS = 1  # MySQL protocol server status flag
"""Connections kept open per store: SQLAlchemy's default (5, and closing every
connection beyond it when returned) makes busy threads reconnect all the time."""
_SEQ_CHUNK = 10_000
_FOUND_ROWS = 1 << 1  # MySQL protocol client flags
_MULTI_STATEMENTS = 1 << 16


def _errno(err: BaseException) -> int | None:
    orig = getattr(err, "orig", None)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def _skip_idle_transaction_ends(engine: Engine) -> None:
    """Make ``engine``'s dialect skip ``COMMIT`` and ``ROLLBACK`` when PyMySQL's last
    server status says no transaction is open (in autocommit mode, after a single
    statement), instead of spending a round trip on a no-op."""
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def in_transaction(dbapi_connection: Any) -> bool:
        status = getattr(dbapi_connection, "server_status", None)
        return not isinstance(status, int) or bool(status & _SERVER_STATUS_IN_TRANS)

    def do_commit(dbapi_connection: Any) -> None:
        if in_transaction(dbapi_connection):
            commit(dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        if in_transaction(dbapi_connection):
            rollback(dbapi_connection)

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


class Utf8Bytes(TypeDecorator[str]):
    """Text that compares exactly and sorts by code point, for stream keys and relay
    names: a ``VARBINARY(4 * length)`` holding the UTF-8 bytes, converted on the way
    in and out."""

    impl = mysql.VARBINARY
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(4 * length)
        self.length = length

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """Encode to UTF-8."""

        def encode(value: Any) -> Any:
            return value.encode() if isinstance(value, str) else value

        return encode

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        """Decode UTF-8."""

        def decode(value: Any) -> Any:
            return bytes(value).decode() if isinstance(value, bytes | bytearray) else value

        return decode

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """Unused: :meth:`bind_processor` does the work."""
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        """Unused: :meth:`result_processor` does the work."""
        return value


def _seq_index(prefix: str) -> str:
    return f"{prefix}events_seq"


def _seq_columns(prefix: str) -> list[Any]:
    return [
        sa.Column("seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Index(_seq_index(prefix), "seq"),
    ]


def _add_seq(conn: Connection, tables: Tables) -> None:
    """Schema version 2: add ``events.seq`` and its index if missing, and number the
    rows that have none with their position. Before version 2 an append took the
    sequencer lock to insert and commit, so position order was commit order: the
    numbers keep the order every relay has seen, and checkpoints (positions) stay valid
    as seqs."""
    ev = tables.events
    prep = conn.dialect.identifier_preparer
    table = prep.format_table(ev)
    columns = {c["name"] for c in sa.inspect(conn).get_columns(ev.name)}
    if "seq" not in columns:
        index = prep.quote(_seq_index(tables.prefix))
        conn.execute(
            sa.text(
                f"ALTER TABLE {table} ADD COLUMN seq BIGINT NOT NULL DEFAULT 0, "
                f"ADD INDEX {index} (seq)"
            )
        )
    number = sa.text(
        f"UPDATE {table} SET seq = position WHERE seq = 0 ORDER BY position LIMIT {_SEQ_CHUNK}"
    )
    while conn.execute(number).rowcount:
        conn.commit()


def _add_seq_floor(conn: Connection, tables: Tables) -> None:
    """Schema version 3: add ``sequencer.seq_floor`` (0) if missing. Before version 3
    no event row was ever deleted, so no number was given to a row that is gone."""
    sequencer = tables.sequencer
    assert sequencer is not None
    columns = {c["name"] for c in sa.inspect(conn).get_columns(sequencer.name)}
    if "seq_floor" not in columns:
        table = conn.dialect.identifier_preparer.format_table(sequencer)
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN seq_floor BIGINT NOT NULL DEFAULT 0"))


class _NamedLock(SessionLockHolder):
    """A named lock (``GET_LOCK``) on a session of its own."""

    def __init__(self, engine: Engine, name: str) -> None:
        super().__init__(engine)
        self._name = name

    def _take(self, conn: Any) -> bool:
        conn.autocommit(True)
        with conn.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (self._name,))
            return bool(cursor.fetchone()[0] == 1)

    def _check(self, conn: Any) -> bool:
        with conn.cursor() as cursor:
            cursor.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (self._name,))
            row = cursor.fetchone()
        return bool(row and row[0])

    def _session(self, conn: Any) -> int:
        return int(conn.thread_id())

    def _unlock(self, conn: Any) -> None:
        with conn.cursor() as cursor:
            cursor.execute("SELECT RELEASE_LOCK(%s)", (self._name,))


class MySqlTesting(TestingHooks):
    """Connection ids: ``CONNECTION_ID()``, ``KILL``, ``information_schema.processlist``."""

    def session_id(self, conn: Connection) -> int:
        return int(conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one())

    def kill_session(self, conn: Connection, session: int) -> None:
        conn.execute(sa.text(f"KILL {int(session)}"))

    def sessions_waiting(self, conn: Connection, pattern: str) -> list[int]:
        found = conn.execute(
            sa.text(
                "SELECT id FROM information_schema.processlist WHERE info LIKE :pattern "
                "AND id <> CONNECTION_ID()"
            ),
            {"pattern": pattern},
        ).scalars()
        return [int(session) for session in found]


class MySqlDialect(CoreDialect):
    """MariaDB 10.5+ / MySQL 8 with PyMySQL.

    An append claims its stream and inserts its events with ``seq`` 0; the outbox
    numbers committed events in sequencing passes (see the module docstring). PyMySQL
    sends bytes hex-encoded, so a row must fit in ``max_allowed_packet`` twice over;
    payloads larger than that are first sent in pieces into a session variable and
    inserted from it. A payload larger than ``max_allowed_packet`` itself cannot be
    stored or read and is refused with :class:`InvalidEventError` before anything is
    written; so is metadata that does not fit as escaped text (it is never sent in
    pieces), and the message says which part is too large. Only each event must fit:
    a batch larger than a packet is sent row by row.
    """

    name = "mysql"
    title = "MariaDB/MySQL"
    url_schemes = ("mysql", "mariadb")
    default_driver = "pymysql"
    drivers = frozenset({"pymysql"})
    driver_module = "pymysql"
    async_drivers = MappingProxyType({"aiomysql": "aiomysql"})
    async_extra = "mysql-async"
    extra = "mysql"
    ddl = Ddl(
        key=Utf8Bytes,
        position=sa.BigInteger(),
        blob=mysql.LONGBLOB(),
        long_text=mysql.LONGTEXT(),
        table_options={"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},
        event_columns=_seq_columns,
        sequencer=True,
        steps={2: _add_seq, 3: _add_seq_floor},
    )
    requires_database = True
    testing = MySqlTesting()
    _ROW_OVERHEAD = 4096

    def _page_statements(self) -> tuple[sa.Executable, sa.Executable | None]:
        """The page queries of :func:`~esrc_sqlalchemy.dialects.base.stream_page`: the
        page is a derived table (ordered and limited on the events' index) beside one
        header row in a ``UNION ALL``, because MariaDB sorts every remaining event of
        the stream for a join ordered by the events' version (a page of a long stream
        would cost the whole rest of it). The column types are the events'. A load
        reads the snapshot first, then the page after it (two statements on one
        connection)."""
        tables = self.tables
        st, ev = tables.streams, tables.events
        key_t, key_i = tables.key_parameters()

        def page_after(after: sa.ColumnElement[Any]) -> sa.Select[Any]:
            return (
                sa.select(ev.c.version, ev.c.name, ev.c.data, ev.c.metadata, ev.c.schema_version)
                .where(
                    ev.c.aggregate_type == key_t,
                    ev.c.aggregate_id == key_i,
                    ev.c.version > after,
                    ev.c.version <= sa.bindparam("to_version", type_=sa.BigInteger),
                )
                .order_by(ev.c.version)
                .limit(sa.bindparam("limit", type_=sa.Integer))
            )

        in_stream = (st.c.aggregate_type == key_t, st.c.aggregate_id == key_i)
        stream_version = sa.cast(st.c.version, sa.Text)
        read: sa.CompoundSelect[Any] = sa.union_all(
            page_after(sa.bindparam("from_version", type_=sa.BigInteger)),
            sa.select(sa.null(), sa.null(), sa.null(), stream_version, sa.null()).where(*in_stream),
        )
        # No one-statement load: with the snapshot's version from a subquery as the
        # page's lower bound, MariaDB walks the whole stream (a 10,000-event stream with
        # a snapshot at 9,900 took 22 ms against 2 ms for the two statements).
        return read, None

    @staticmethod
    def _stream_page(rows: list[Any]) -> StreamPage | None:
        """See :func:`~esrc_sqlalchemy.dialects.base.stream_page`."""
        return stream_page(rows)

    @classmethod
    def engine_options(cls, url: URL, connect_timeout: float) -> dict[str, Any]:
        """A pool of up to 16 open connections (30 at most), replaced after an hour
        (before the server's ``wait_timeout``); ``connect_timeout``, utf8mb4,
        autocommit, and READ COMMITTED for the transactions appends open.

        The connections accept several statements in one request (the client flag
        ``MULTI_STATEMENTS``, besides the ``FOUND_ROWS`` SQLAlchemy asks for), so that
        an append is one round trip; every value still goes in as an escaped parameter.
        On an engine without that flag (an application's) an append takes four.

        PyMySQL sends bytes with the ``_binary`` prefix (``binary_prefix``; aiomysql
        always does): without it, event data that is not UTF-8 is read as utf8mb4 text
        where a statement does not put it straight into the BLOB column (the rows of a
        multi-event append are a derived table), and its bytes come back as ``?``."""
        connect_args: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "charset": "utf8mb4",
            "client_flag": _FOUND_ROWS | _MULTI_STATEMENTS,
            "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        }
        if url.get_driver_name() == "pymysql":
            connect_args["binary_prefix"] = True
        return {
            **SERVER_POOL,
            "pool_recycle": 3600,
            "connect_args": connect_args,
            "isolation_level": "AUTOCOMMIT",
        }

    @classmethod
    def configure_engine(cls, engine: Engine) -> None:
        """No ``COMMIT``/``ROLLBACK`` round trip when the server reports no open
        transaction."""
        _skip_idle_transaction_ends(engine)

    @classmethod
    def application_engine_options(
        cls, url: URL, *, connect_timeout: float, lock_timeout: float
    ) -> dict[str, Any]:
        """``connect_timeout`` and utf8mb4."""
        return {"connect_args": {"connect_timeout": connect_timeout, "charset": "utf8mb4"}}

    @classmethod
    def insert_ignoring_duplicates(cls, table: sa.Table) -> sa.Insert:
        """``INSERT IGNORE``."""
        return sa.insert(table).prefix_with("IGNORE")

    @classmethod
    def is_deadlock(cls, err: BaseException) -> bool:
        """Error 1213 (deadlock found)."""
        return _errno(err) == 1213

    @classmethod
    def is_unique_violation(cls, err: BaseException) -> bool:
        """Error 1062 (duplicate entry)."""
        return isinstance(err, sqlalchemy.exc.IntegrityError) and _errno(err) == 1062

    def __init__(self, tables: Tables, engine: Engine, *, notify: bool = False) -> None:
        super().__init__(tables, engine, notify=notify)
        assert tables.sequencer is not None
        sequencer, ev = tables.sequencer, tables.events
        self._lock_sequencer = (
            sa.select(sequencer.c.id).where(sequencer.c.id == 1).with_for_update()
        )
        unnumbered = (
            sa.select(ev.c.position)
            .where(ev.c.seq == 0)
            .order_by(ev.c.position)
            .limit(sa.bindparam("limit", type_=sa.Integer))
        )
        floor = sa.select(sequencer.c.seq_floor).where(sequencer.c.id == 1).scalar_subquery()
        given = sa.select(sa.func.coalesce(sa.func.max(ev.c.seq), 0)).scalar_subquery()
        top = sa.func.greatest(given, sa.func.coalesce(floor, 0))
        self._raise_floor = (
            sequencer.update()
            .where(sequencer.c.id == 1)
            .values(seq_floor=sa.func.greatest(sequencer.c.seq_floor, given))
        )
        """Remember the largest ``seq`` given, before rows may be deleted."""
        self._unnumbered_after = unnumbered.add_columns(top.label("top"))
        cpt = tables.checkpoints
        checkpoint = (
            sa.select(sa.func.coalesce(sa.func.max(cpt.c.position), 0))
            .where(cpt.c.name == tables.relay_name_parameter("name"))
            .scalar_subquery()
        )
        self._probe = sa.select(
            top.label("top"),
            sa.select(sa.func.min(ev.c.position)).where(ev.c.seq == 0).scalar_subquery(),
            checkpoint,
        )
        """The largest ``seq``, the first unnumbered position (or NULL) and relay
        ``:name``'s checkpoint, in one read."""
        self._events_table = engine.dialect.identifier_preparer.format_table(ev)
        self._streams_table = engine.dialect.identifier_preparer.format_table(tables.streams)
        self._direct_sql: dict[tuple[str, int], str] = {}
        """The one-request append statements by kind and number of events."""
        self._lock_name = "esrc:" + digest(engine.url.database, tables.prefix).hex()
        self.max_packet = 16 * 1024 * 1024
        """The server's ``max_allowed_packet``, read on first use."""
        cpt = tables.checkpoints
        ins = mysql.insert(cpt)
        self._mark = ins.on_duplicate_key_update(
            [
                (
                    "updated_at",
                    sa.func.if_(
                        ins.inserted.position > cpt.c.position,
                        sa.func.current_timestamp(),
                        cpt.c.updated_at,
                    ),
                ),
                ("position", sa.func.greatest(cpt.c.position, ins.inserted.position)),
            ]
        )
        self._outbox = self.outbox_ordered_by(ev.c.seq)
        self._outbox_after = self.outbox_ordered_by(ev.c.seq, after=True)
        self._snapshot_source = snapshot_source(tables)
        self._keys = sa.select(ev.c.seq, ev.c.position).where(
            ev.c.position.in_(sa.bindparam("positions", expanding=True)),
            ev.c.seq > 0,
        )

    def _snapshot_statement(self, data: sa.ColumnElement[Any]) -> sa.Executable:
        sins = mysql.insert(self.tables.snapshots).from_select(
            SNAPSHOT_COLUMNS,
            self._snapshot_source.add_columns(data),
        )
        return sins.on_duplicate_key_update(
            data=sins.inserted.data,
            schema_version=sins.inserted.schema_version,
            created_at=sa.func.current_timestamp(),
        )

    @contextlib.contextmanager
    def migration(self) -> Iterator[Connection]:
        """A connection holding ``GET_LOCK`` for these tables (DDL commits by itself on
        MariaDB/MySQL; the steps are idempotent)."""
        with self.base_engine.connect() as conn:
            got = conn.execute(
                sa.text("SELECT GET_LOCK(:name, :timeout)"),
                {"name": self._lock_name, "timeout": _MIGRATION_LOCK_TIMEOUT},
            ).scalar()
            if got != 1:
                raise StoreUnavailableError(
                    f"migrate {self.tables.streams.name}: another migration held the lock "
                    f"for {_MIGRATION_LOCK_TIMEOUT}s"
                )
            try:
                yield conn
                conn.commit()
            finally:
                # A lost connection has already dropped the lock with its session.
                with contextlib.suppress(sa.exc.DBAPIError):
                    conn.rollback()
                    conn.execute(sa.text("DO RELEASE_LOCK(:name)"), {"name": self._lock_name})
                    conn.commit()

    def begin_write(self, conn: Connection, *, single: bool) -> None:
        """``START TRANSACTION`` when the connection is in autocommit mode, unless
        ``single``; a connection that is not (an application's engine) has already
        begun one implicitly."""
        dbapi: Any = conn.connection.dbapi_connection
        if not single and dbapi.get_autocommit():
            conn.exec_driver_sql("START TRANSACTION")

    def direct_key(self, key: tuple[str, str]) -> tuple[Any, Any]:
        """UTF-8 bytes (the key columns are ``VARBINARY``)."""
        return key[0].encode(), key[1].encode()

    def direct_begin(self, cursor: Any) -> None:
        """``START TRANSACTION`` (the session is READ COMMITTED)."""
        cursor.execute("START TRANSACTION")

    def direct_read_done(self, cursor: Any) -> None:
        """On a connection that is not in autocommit mode (an application's engine) the
        read began a transaction: end it, so that no snapshot or metadata lock is held
        between calls."""
        connection = cursor.connection
        if not connection.get_autocommit():
            connection.commit()

    def _one_request(self, cursor: Any, rows: Sequence[EventRow]) -> bool:
        """Whether the append can go as one request of several statements: the
        connection accepts them, sends bytes as ``_binary`` literals (the rows of a
        multi-event append pass through a derived table, which would read other bytes
        as text) and the rows fit in one packet."""
        connection = cursor.connection
        if not getattr(connection, "client_flag", 0) & _MULTI_STATEMENTS:
            return False
        if len(rows) > 1 and getattr(connection, "_binary_prefix", True) is False:
            return False
        size = sum(2 * len(d) + 8 * len(n) + 2 * len(m or "") for n, d, m in rows)
        return size + self._ROW_OVERHEAD * (len(rows) + 1) <= self.max_packet

    @staticmethod
    def _results(cursor: Any, statements: int) -> list[int]:
        """The row counts of the ``statements`` results of one request (the first is
        already read); a statement's error is raised here, and the server ran none
        after it."""
        counts = [cursor.rowcount]
        for _ in range(statements - 1):
            cursor.nextset()
            counts.append(cursor.rowcount)
        return counts

    def direct_create(self, cursor: Any, key: tuple[str, str], rows: Sequence[EventRow]) -> None:
        """One request: ``START TRANSACTION``, the stream row, the events, ``COMMIT``.
        A statement that fails stops the request before the ``COMMIT`` (the executor
        rolls back). Four requests where the connection takes one statement each."""
        if not self._one_request(cursor, rows):
            super().direct_create(cursor, key, rows)
            return
        t, i = self.direct_key(key)
        params: list[Any] = [t, i, len(rows)]
        for n, (name, data, meta) in enumerate(rows, 1):
            params += (t, i, n, name, data, meta)
        cursor.execute(self._direct_create_sql(len(rows)), params)
        self._results(cursor, 4)

    def direct_extend(
        self, cursor: Any, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> bool:
        """One request: ``START TRANSACTION``, the conditional ``UPDATE`` of the stream's
        version, the events inserted from the stream's row only where it is now at the
        new version, ``COMMIT``. When the ``UPDATE`` matched nothing the insert finds
        either no row (nothing is written) or a stream another writer moved to that
        same version, whose events then clash with these (a unique violation, and the
        request stops before the ``COMMIT``). Four requests where the connection takes
        one statement each."""
        if not self._one_request(cursor, rows):
            return super().direct_extend(cursor, key, from_version, rows)
        t, i = self.direct_key(key)
        to_version = from_version + len(rows)
        params: list[Any] = [to_version, t, i, from_version]
        if len(rows) == 1:
            params += rows[0]
        else:
            params.append(from_version)
            for name, data, meta in rows:
                params += (name, data, meta)
        params += (t, i, to_version)
        cursor.execute(self._direct_extend_sql(len(rows)), params)
        claimed, inserted, _ = self._results(cursor, 4)[1:]
        if claimed != 1:
            return False
        if inserted != len(rows):  # pragma: no cover - the claim holds the stream's row
            raise EsrcError(f"inserted {inserted} of {len(rows)} events after the claim")
        return True

    def _direct_create_sql(self, count: int) -> str:
        found = self._direct_sql.get(("create", count))
        if found is None:
            values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * count)
            found = (
                f"START TRANSACTION; {self._direct_insert_stream}; "
                f"{self._direct_insert_events.split(' VALUES ')[0]} VALUES {values}; COMMIT"
            )
            if len(self._direct_sql) < 256:
                self._direct_sql[("create", count)] = found
        return found

    def _direct_extend_sql(self, count: int) -> str:
        found = self._direct_sql.get(("extend", count))
        if found is None:
            st, insert = self._streams_table, self._direct_insert_events.split(" VALUES ")[0]
            where = "s.aggregate_type = %s AND s.aggregate_id = %s AND s.version = %s"
            if count == 1:
                select = (
                    f"SELECT s.aggregate_type, s.aggregate_id, s.version, %s, %s, %s "
                    f"FROM {st} s WHERE {where}"
                )
            else:
                rows = " UNION ALL ".join(
                    ["SELECT 1 AS n, %s AS name, %s AS data, %s AS metadata"]
                    + [f"SELECT {n}, %s, %s, %s" for n in range(2, count + 1)]
                )
                select = (
                    "SELECT s.aggregate_type, s.aggregate_id, %s + e.n, e.name, e.data, "
                    f"e.metadata FROM {st} s JOIN ({rows}) e ON {where} ORDER BY e.n"
                )
            found = f"START TRANSACTION; {self._direct_claim}; {insert} {select}; COMMIT"
            if len(self._direct_sql) < 256:
                self._direct_sql[("extend", count)] = found
        return found

    def accepts_direct(self, rows: Sequence[EventRow]) -> bool:
        """Rows small enough to send inline (no staging), which :meth:`check_rows`
        then accepts too."""
        return all(self._inline(data, len(name) * 4 + len(meta or "")) for name, data, meta in rows)

    def prepare(self, conn: Connection) -> None:
        """Read ``max_allowed_packet``."""
        found = conn.execute(sa.text("SELECT @@max_allowed_packet")).scalar()
        self.max_packet = int(found or self.max_packet)

    def _check_size(
        self, what: str, doing: str, data: int, metadata: int = 0, name: int = 0
    ) -> None:
        """Raise :class:`InvalidEventError` when a row of ``data`` bytes, ``metadata``
        bytes of JSON and a ``name`` of that many characters cannot pass through one
        ``max_allowed_packet`` (text may double when escaped; a name character may take
        4 bytes), saying which part is too large, the sizes and the limit."""
        limit, overhead = self.max_packet, self._ROW_OVERHEAD
        text = 2 * (metadata + 4 * name)
        if data + text + overhead <= limit:
            return
        if data + overhead > limit:
            culprit = "its data"
        elif text + overhead > limit:
            culprit = "its metadata" if metadata >= 4 * name else "its name"
        else:
            culprit = "its data and metadata together"
        need = data + text + overhead
        if name:
            sizes = (
                f"{data} bytes of data, {metadata} bytes of metadata as JSON; with the "
                f"metadata and name counted twice (escaped text) and {overhead} bytes for "
                f"the row, {need} bytes"
            )
        else:
            sizes = f"{data} bytes of data; with {overhead} bytes for the row, {need} bytes"
        raise InvalidEventError(
            f"{doing}: {what} is too large for this MariaDB/MySQL server's "
            f"max_allowed_packet of {limit} bytes because of {culprit} ({sizes}); make "
            "it smaller or raise the setting on the server (SET GLOBAL "
            "max_allowed_packet = ...) above that"
        )

    def check_rows(self, rows: Sequence[EventRow], doing: str) -> None:
        """Every row must fit in one ``max_allowed_packet`` (each row is sent and read
        on its own when the batch as a whole does not fit)."""
        for index, (name, data, meta) in enumerate(rows):
            self._check_size(
                f"event {index} ({name})", doing, len(data), len(meta or ""), len(name)
            )

    def check_snapshot(self, data: bytes, doing: str) -> None:
        """The snapshot must fit in one ``max_allowed_packet``."""
        self._check_size("the snapshot", doing, len(data))

    def _inline(self, data: bytes, text_bytes: int) -> bool:
        return 2 * len(data) + 2 * text_bytes + self._ROW_OVERHEAD <= self.max_packet

    def _stage(self, conn: Connection, slot: int, data: bytes) -> sa.ColumnElement[Any]:
        """Send ``data`` in pieces into the session variable ``@esrc_data<slot>``."""
        var = f"@esrc_data{slot}"
        step = max(64 * 1024, (self.max_packet - self._ROW_OVERHEAD) // 2)
        conn.execute(sa.text(f"SET {var} = :piece"), {"piece": data[:step]})
        for start in range(step, len(data), step):
            conn.execute(
                sa.text(f"SET {var} = CONCAT({var}, :piece)"),
                {"piece": data[start : start + step]},
            )
        conn.info.setdefault("esrc_staged", []).append(var)
        return sa.literal_column(var)

    def before_removing_events(self, conn: Connection) -> None:
        """Lock the sequencer row, as a sequencing pass does (a pass numbers the rows it
        read by primary key and checks it numbered them all, so no row may be deleted
        between its read and its update; appends never take this lock), and raise its
        ``seq_floor`` to the largest ``seq`` given: a deleted row may hold it, and the
        next pass must number above it, or a relay past it would skip the rows that
        got its number again."""
        conn.execute(self._lock_sequencer)
        conn.execute(self._raise_floor)

    def after_write(self, conn: Connection) -> None:
        """Free the session variables large payloads were staged in."""
        staged = conn.info.pop("esrc_staged", None)
        if staged:
            conn.execute(sa.text("SET " + ", ".join(f"{v} = NULL" for v in staged)))
            conn.commit()

    def insert_events(
        self, conn: Connection, key: tuple[str, str], from_version: int, rows: Sequence[EventRow]
    ) -> None:
        """Stage large payloads, then insert ``rows`` with ``seq`` 0 (executemany
        of the small ones, PyMySQL sends them as multi-row ``INSERT``)."""
        t, i = key
        staged: dict[int, sa.ColumnElement[Any]] = {}
        for index, (name, data, meta) in enumerate(rows):
            if not self._inline(data, len(name) * 4 + len(meta or "")):
                staged[index] = self._stage(conn, index, data)
        batch: list[dict[str, Any]] = []
        for index, (name, data, meta) in enumerate(rows):
            params = {
                "aggregate_type": t,
                "aggregate_id": i,
                "version": from_version + index + 1,
                "name": name,
                "metadata": meta,
            }
            if index in staged:
                if batch:
                    conn.execute(self._insert_events, batch)
                    batch = []
                conn.execute(self._insert_events.values(data=staged[index]), params)
            else:
                params["data"] = data
                batch.append(params)
        if batch:
            conn.execute(self._insert_events, batch)

    def upsert_snapshot(
        self, conn: Connection, key: tuple[str, str], version: int, data: bytes, schema_version: int
    ) -> bool:
        """``INSERT ... SELECT FROM streams ... ON DUPLICATE KEY UPDATE``."""
        params: dict[str, Any] = {
            "key_type": key[0],
            "key_id": key[1],
            "snap_version": version,
            "snap_schema": schema_version,
        }
        if self._inline(data, 0):
            stmt = self._snapshot_statement(sa.bindparam("snap_data", type_=sa.LargeBinary))
            params["snap_data"] = data
        else:
            stmt = self._snapshot_statement(self._stage(conn, 0, data))
        return conn.execute(stmt, params, execution_options=ROWCOUNT).rowcount > 0

    def outbox_rows(
        self, conn: Connection, name: str, limit: int, after: tuple[int, int] | None = None
    ) -> tuple[list[OutboxRow], int | None]:
        """Rows after the checkpoint (or after the key ``after``, a ``seq`` handed out)
        in ``seq`` order. When fewer than ``limit`` came back: if unnumbered events are
        waiting, number them (:meth:`sequence`) and read again (whether this pass or
        another outbox's numbered them); else read again only if numbered events beyond
        those rows appeared since the read. Reading after any ``seq`` handed out keeps
        the module docstring's argument: numbers only ever grow at the end."""
        rows = self.read_outbox(conn, name, limit, after)
        if len(rows) < limit:
            conn.commit()
            top, waiting, checkpoint = conn.execute(self._probe, {"name": name}).one()
            start = int(checkpoint) if after is None else after[1]
            beyond = int(top) > (int(rows[-1][1]) if rows else start)
            if waiting is not None:
                # Read again even if this pass numbered nothing: another outbox's pass
                # may have numbered the waiting events after the probe above.
                self.sequence(conn, max(limit, _PASS_MIN))
                beyond = True
            if beyond:
                rows = self.read_outbox(conn, name, limit, after)
        return rows, None

    def sequence(self, conn: Connection, most: int) -> int:
        """Number up to ``most`` committed events that have no ``seq`` yet (0), in position
        order, after the largest ``seq`` given so far; return how many it numbered.

        In a transaction of its own: lock the sequencer row, read the unnumbered
        committed rows and the largest ``seq`` in one consistent read (taken after the
        lock, so it sees every earlier pass), update them by primary key, commit. It
        never waits for, or sees, an append in flight; it waits only for another pass.
        """
        conn.commit()
        self.begin_write(conn, single=False)
        try:
            conn.execute(self._lock_sequencer)
            found = conn.execute(self._unnumbered_after, {"limit": most}).all()
            if found:
                top = int(found[0].top)
                listed = ",".join(str(int(row.position)) for row in found)
                numbered = conn.exec_driver_sql(
                    f"UPDATE {self._events_table} SET seq = {top} + FIELD(position, {listed}) "
                    f"WHERE position IN ({listed})"
                ).rowcount
                if numbered != len(found):
                    raise EsrcError(
                        f"number events of {self._events_table}: {numbered} of "
                        f"{len(found)} rows updated; another pass ran without the lock"
                    )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return len(found)

    def outbox_keys(self, conn: Connection, positions: Sequence[int]) -> dict[int, tuple[int, int]]:
        """The outbox order key (0, seq) of each numbered event among ``positions``."""
        found = conn.execute(self._keys, {"positions": list(positions)}).all()
        return {int(p): (0, int(s)) for s, p in found}

    def mark(
        self, conn: Connection, name: str, key: tuple[int, int], *, durable: bool = True
    ) -> None:
        """Upsert the checkpoint (a ``seq``, kept in the position column) with
        ``GREATEST``, by the primary key ``name``.

        ``durable`` changes nothing here: InnoDB flushes its log at commit as the
        server-wide ``innodb_flush_log_at_trx_commit`` says, which no session can
        change."""
        conn.execute(self._mark, {"name": name, "tx_id": 0, "position": key[1]})

    def relay_lock(self, name: str) -> RelayLockHolder:
        """A named lock hashed from the database, table prefix and relay name."""
        hashed = self.relay_lock_digest(name)
        return _NamedLock(self.base_engine, "esrc-relay:" + hashed.hex())

    def stored_time(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """``UNIX_TIMESTAMP(column)``: Unix seconds, which undoes the session time zone
        the time was written in."""
        return sa.func.unix_timestamp(column)

    def relay_progress(self) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[bool]]:
        """By ``seq``; events not numbered yet are pending."""
        ev, cp = self.tables.events, self.tables.checkpoints
        done = sa.and_(ev.c.seq <= cp.c.position, ev.c.seq > 0)
        waiting = sa.or_(ev.c.seq > cp.c.position, ev.c.seq == 0)
        return done, waiting
