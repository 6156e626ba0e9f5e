"""The database connection dies in the middle of an append (``pg_terminate_backend``
on PostgreSQL, ``KILL`` on MariaDB): the append is stored whole or not at all, the
caller gets StoreUnavailableError, and the store's next call works."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from esrc_sqlalchemy.engines import create_store_engine, normalize_url
from esrc_sqlalchemy.testing import (
    PrefixPool,
    begin_write,
    database_hooks,
    dialect_of,
    stream_key,
)
from sqlalchemy.engine import Connection, Engine

from esrc_core import RawEvent, StoreUnavailableError
from esrc_sqlalchemy import SqlEventStore

DEADLINE_SECONDS = 60.0


class _Server:
    """An administrative connection to the server that can find and kill sessions
    (through the database's testing hooks)."""

    def __init__(self, engine: Engine, holder: Engine) -> None:
        self.engine = engine
        """Autocommit connections for finding and killing sessions."""
        self.holder = holder
        """Connections with ordinary transactions, for holding locks."""
        self.hooks = database_hooks(engine)

    def session_id(self, conn: Connection) -> int:
        return self.hooks.session_id(conn)

    def blocked_session(self, table: str) -> int:
        """The id of the session waiting on a lock in a statement naming ``table``."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        with self.engine.connect() as conn:
            while True:
                found = self.hooks.sessions_waiting(conn, f"%{table}%")
                if found:
                    return found[0]
                assert time.monotonic() < deadline, f"no session blocked on {table}"
                time.sleep(0.02)

    def kill(self, session: int) -> None:
        """Terminate session ``session`` on the server."""
        with self.engine.connect() as conn:
            self.hooks.kill_session(conn, session)


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[PrefixPool, _Server]]:
    """A pool and an admin connection on PostgreSQL, then on MariaDB."""
    name = "postgresql" if request.param == "postgresql" else "mysql"
    pool: PrefixPool = request.getfixturevalue(f"{name}_pool")
    url = normalize_url(pool.url)
    engine = create_store_engine(url, connect_timeout=5)
    holder = sa.create_engine(url)
    yield (
        pool,
        _Server(engine.execution_options(isolation_level="AUTOCOMMIT"), holder),
    )
    engine.dispose()
    holder.dispose()
    pool.release()


def _lock_statement(store: SqlEventStore) -> tuple[str, sa.Executable]:
    """The table a blocked append waits on, and a statement that locks it: the
    stream's row."""
    streams = store.tables.streams
    return streams.name, sa.select(streams.c.version).with_for_update()


def test_connection_killed_while_append_waits_writes_nothing_and_store_recovers_postgres_mariadb(
    server: tuple[PrefixPool, _Server],
) -> None:
    """An append blocked on a lock (the stream's row) loses its connection: StoreUnavailableError,
    none of its three events stored, the stream still at version 1; the next append
    at version 1 succeeds."""
    pool, admin = server
    store = pool.open()
    store.add_aggregate("Order", "o-1", [RawEvent("Created", b"")])
    table, lock = _lock_statement(store)
    outcome: list[BaseException | None] = []

    def append() -> None:
        events = [RawEvent(f"E{n}", b"x") for n in range(3)]
        try:
            store.append_events("Order", "o-1", 1, events)
        except BaseException as err:
            outcome.append(err)
        else:
            outcome.append(None)

    with admin.holder.connect() as holder, holder.begin():
        holder.execute(lock)
        writer = threading.Thread(target=append)
        writer.start()
        admin.kill(admin.blocked_session(table))
        writer.join()
    assert len(outcome) == 1
    assert isinstance(outcome[0], StoreUnavailableError), repr(outcome[0])
    message = str(outcome[0])
    assert "append to Order 'o-1' at version 1" in message, message
    assert "stored whole or not at all" in message, message
    assert store.events("Order", "o-1") == [RawEvent("Created", b"")]
    store.append_events("Order", "o-1", 1, [RawEvent("After", b"")])
    assert [e.name for e in store.events("Order", "o-1")] == ["Created", "After"]
    assert [e.event.name for e in store.outbox("check").unpublished_events(10)] == [
        "Created",
        "After",
    ]


def test_open_append_transaction_killed_leaves_none_of_it_postgres_mariadb(
    server: tuple[PrefixPool, _Server],
) -> None:
    """A transaction that claimed the stream and inserted all its events is killed
    before it commits: none of the events is stored and the store goes on working."""
    pool, admin = server
    store = pool.open()
    store.add_aggregate("Order", "o-1", [RawEvent("Created", b"")])
    key = stream_key("Order", "o-1", "test")
    rows: list[tuple[str, bytes, str | None]] = [(f"E{n}", b"x", None) for n in range(3)]
    conn = store.engine.connect()
    try:
        begin_write(store, conn)
        assert dialect_of(store).extend_stream(conn, key, 1, rows)
        admin.kill(admin.session_id(conn))
        with pytest.raises(sa.exc.DBAPIError):
            conn.commit()
    finally:
        conn.invalidate()
        conn.close()
    assert store.events("Order", "o-1") == [RawEvent("Created", b"")]
    store.append_events("Order", "o-1", 1, [RawEvent("After", b"")])
    assert [e.name for e in store.events("Order", "o-1")] == ["Created", "After"]
