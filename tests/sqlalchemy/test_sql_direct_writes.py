"""Appends run on driver connections the store keeps out of the engine's pool between
writes: the store still works on a pool of one connection, gives its connections back
when closed (as the pool lent them), and recovers when kept connections die."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from esrc_sqlalchemy.engines import normalize_url
from esrc_sqlalchemy.testing import database_hooks, drop_store_tables
from sqlalchemy.engine import Engine

from esrc_core import OptimisticConcurrencyError, RawEvent, RawSnapshot, StoreUnavailableError
from esrc_sqlalchemy import SqlEventStore


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A SQLite file in the test's directory, then PostgreSQL, then MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/direct.db"
    name = "postgresql_url" if request.param == "postgresql" else "mysql_url"
    url: str = request.getfixturevalue(name)
    return url


def _engine(url: str, **options: object) -> Engine:
    return sa.create_engine(normalize_url(url), **options)


@pytest.fixture
def dropped() -> Iterator[list[SqlEventStore]]:
    """Stores whose tables are dropped (and which are closed) after the test."""
    stores: list[SqlEventStore] = []
    yield stores
    for store in stores:
        store.close()
        store.tables.metadata.drop_all(store.engine)


def _store(engine: Engine, dropped: list[SqlEventStore]) -> SqlEventStore:
    store = SqlEventStore(engine, table_prefix=f"d{secrets.token_hex(4)}_")
    dropped.append(store)
    return store


def _created_and_paid(engine: Engine, dropped: list[SqlEventStore]) -> SqlEventStore:
    """A store on ``engine`` holding Order o-1 at version 2 (Created, Paid)."""
    store = _store(engine, dropped)
    store.add_aggregate("Order", "o-1", [RawEvent("Created", b"")])
    store.append_events("Order", "o-1", 1, [RawEvent("Paid", b"")])
    return store


def _end_sessions(url: str, application_name: str) -> None:
    """End every server session of ``application_name`` (a server restart, as a store
    on those sessions sees it)."""
    with sa.create_engine(normalize_url(url)).connect() as admin:
        admin.execution_options(isolation_level="AUTOCOMMIT")
        assert database_hooks(admin.engine).kill_sessions_of(admin, application_name) >= 1


def test_store_on_a_pool_of_one_connection_appends_reads_and_snapshots_in_turn(
    database_url: str, dropped: list[SqlEventStore]
) -> None:
    """With ``pool_size=1, max_overflow=0`` every operation still finds the connection:
    the store keeps none of it out of the pool between appends."""
    engine = _engine(database_url, pool_size=1, max_overflow=0, pool_timeout=3)
    try:
        store = _store(engine, dropped)
        store.add_aggregate("Order", "o-1", [RawEvent("Created", b"c")])
        store.append_events("Order", "o-1", 1, [RawEvent("Paid", b"p", {"by": "me"})])
        assert store.events("Order", "o-1") == [
            RawEvent("Created", b"c"),
            RawEvent("Paid", b"p", {"by": "me"}),
        ]
        with pytest.raises(OptimisticConcurrencyError, match="stream is at version 2"):
            store.append_events("Order", "o-1", 1, [RawEvent("Late", b"")])
        store.add_snapshot("Order", "o-1", RawSnapshot(2, b"s"))
        store.append_events("Order", "o-1", 2, [RawEvent("Shipped", b"")] * 3)
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.literal(1))).scalar() == 1
        assert store.latest_snapshot("Order", "o-1") == RawSnapshot(2, b"s")
        assert len(store.events("Order", "o-1")) == 5
    finally:
        for store in dropped:
            store.close()
        engine.dispose()


def test_closing_the_store_gives_its_connections_back_to_a_shared_pool(
    database_url: str, dropped: list[SqlEventStore]
) -> None:
    """Appends from four threads keep at most half the pool out of it (here 2 of 4);
    ``close`` gives them back, and the engine's connections are as the pool lent them
    (PostgreSQL: not left in autocommit mode)."""
    engine = _engine(database_url, pool_size=4, max_overflow=0, pool_timeout=10)
    try:
        store = _store(engine, dropped)
        store.migrate()
        errors: list[BaseException] = []

        def write(n: int) -> None:
            try:
                store.add_aggregate("Order", n, [RawEvent("Created", b"")])
                for version in range(1, 11):
                    store.append_events("Order", n, version, [RawEvent("Changed", b"")])
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        pool = engine.pool
        assert isinstance(pool, sa.pool.QueuePool)
        assert pool.checkedout() <= 2
        store.close()
        assert pool.checkedout() == 0
        with engine.connect() as conn:
            driver = conn.connection.driver_connection
            if engine.dialect.name == "postgresql":
                assert driver.autocommit is False  # type: ignore[union-attr]
            assert conn.execute(sa.select(sa.literal(1))).scalar() == 1
        reopened = SqlEventStore(engine, table_prefix=store.table_prefix)
        dropped.append(reopened)
        assert [len(reopened.events("Order", n)) for n in range(4)] == [11] * 4
    finally:
        for store in dropped:
            store.close()
        engine.dispose()


def test_kept_connections_killed_fail_one_append_and_the_next_works_postgres(
    postgresql_url: str, dropped: list[SqlEventStore]
) -> None:
    """Every session of the store's engine is ended between appends (a server restart,
    as the store sees it): the next append raises StoreUnavailableError saying the
    outcome is unknown, and the one after it works on a new connection."""
    tag = f"esrc-direct-{secrets.token_hex(4)}"
    engine = _engine(postgresql_url, connect_args={"application_name": tag})
    try:
        store = _created_and_paid(engine, dropped)
        _end_sessions(postgresql_url, tag)
        with pytest.raises(StoreUnavailableError) as raised:
            store.append_events("Order", "o-1", 2, [RawEvent("Lost", b"")])
        message = str(raised.value)
        assert "append to Order 'o-1' at version 2" in message, message
        assert "stored whole or not at all" in message, message
        store.append_events("Order", "o-1", 2, [RawEvent("Shipped", b"")])
        assert [e.name for e in store.events("Order", "o-1")] == ["Created", "Paid", "Shipped"]
    finally:
        for store in dropped:
            store.close()
        engine.dispose()


def test_reads_on_kept_connections_killed_retry_once_on_a_fresh_one_postgres(
    postgresql_url: str, dropped: list[SqlEventStore]
) -> None:
    """PostgreSQL stream reads run on the kept driver connections too. When every
    session of the store's engine was ended (a server restart, as the store sees it), a
    read changes nothing, so it runs again on a fresh connection instead of failing:
    events(), iter_events() and load_stream() each return the stream."""
    tag = f"esrc-direct-{secrets.token_hex(4)}"
    engine = _engine(postgresql_url, connect_args={"application_name": tag})
    try:
        store = _created_and_paid(engine, dropped)
        store.add_snapshot("Order", "o-1", RawSnapshot(1, b"state"))
        want = ["Created", "Paid"]

        def listed() -> list[str]:
            return [e.name for e in store.events("Order", "o-1")]

        def iterated() -> list[str]:
            return [e.name for e in store.iter_events("Order", "o-1")]

        def loaded() -> list[str]:
            return [e.name for e in store.load_stream("Order", "o-1", snapshot=False)[1]]

        for read in (listed, iterated, loaded):
            assert read() == want
            _end_sessions(postgresql_url, tag)
            assert read() == want
        snapshot, rest = store.load_stream("Order", "o-1")
        assert snapshot == RawSnapshot(1, b"state")
        assert [e.name for e in rest] == ["Paid"]
    finally:
        for store in dropped:
            store.close()
        engine.dispose()


def test_application_engine_without_binary_prefix_keeps_bytes_of_multi_event_appends(
    mysql_url: str,
) -> None:
    """An application's PyMySQL engine that allows several statements per request but
    sends bytes without the ``_binary`` prefix: a multi-event append then takes the
    statement-by-statement path, and bytes that are not UTF-8 come back unchanged."""
    from esrc_sqlalchemy.dialects.mysql import _FOUND_ROWS, _MULTI_STATEMENTS

    engine = sa.create_engine(
        normalize_url(mysql_url),
        connect_args={"client_flag": _FOUND_ROWS | _MULTI_STATEMENTS, "charset": "utf8mb4"},
    )
    prefix = f"bp{secrets.token_hex(3)}_"
    store = SqlEventStore(engine, table_prefix=prefix)
    try:
        events = [RawEvent("Noted", b"\xc4n\x18"), RawEvent("Emptied", b""), RawEvent("X", b"\xff")]
        store.add_aggregate("Order", "bytes", [RawEvent("Opened", b"\xfe")])
        store.append_events("Order", "bytes", 1, events)
        assert [e.data for e in store.events("Order", "bytes")] == [
            b"\xfe",
            b"\xc4n\x18",
            b"",
            b"\xff",
        ]
    finally:
        store.close()
        engine.dispose()
        drop_store_tables(mysql_url, prefix)
