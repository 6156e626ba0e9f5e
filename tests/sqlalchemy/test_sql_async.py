"""The async SQL store: the async acceptance suite on a SQLite file, PostgreSQL and
MariaDB, and what is particular to it (opening by URL, both APIs on one database,
faults)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from esrc_sqlalchemy.engines import normalize_url
from esrc_sqlalchemy.testing import (
    PrefixPool,
    database_hooks,
    dialect_of,
    drop_store_tables,
    stream_key,
)
from sqlalchemy.ext.asyncio import create_async_engine

from esrc_core import (
    AggregateNotFound,
    AsyncEventStore,
    AsyncEventStoreOutbox,
    BackendConfigError,
    OutOfRangeError,
    RawEvent,
    RelayEvent,
    StoreUnavailableError,
    open_async_event_store,
    open_event_store,
)
from esrc_sqlalchemy import AsyncSqlEventStore, SqlEventStore
from esrc_testkit import AsyncEventStoreAcceptance, AsyncStoreFactory, capabilities_of


class TestSqliteFileAsyncStore(AsyncEventStoreAcceptance):
    """``sqlite:///<file>`` through aiosqlite: a new file per store."""

    capabilities = capabilities_of("sqlite:///events.db")

    @pytest.fixture
    def async_store_factory(self, tmp_path: Path) -> AsyncStoreFactory:
        """Each call opens a store on a new database file."""
        count = iter(range(1_000_000))

        async def open_empty() -> AsyncEventStore:
            return await open_async_event_store(f"sqlite:///{tmp_path}/store{next(count)}.db")

        return open_empty


class _ServerAsyncSuite(AsyncEventStoreAcceptance):
    def _factory(self, pool: PrefixPool) -> Iterator[AsyncStoreFactory]:
        async def open_empty() -> AsyncEventStore:
            return pool.open_async()

        yield open_empty
        pool.release()


class TestPostgresAsyncStore(_ServerAsyncSuite):
    """PostgreSQL through async psycopg."""

    capabilities = capabilities_of("postgresql://")

    @pytest.fixture
    def async_store_factory(self, postgresql_pool: PrefixPool) -> Iterator[AsyncStoreFactory]:
        """Async stores on recycled, emptied table prefixes."""
        yield from self._factory(postgresql_pool)


class TestMariadbAsyncStore(_ServerAsyncSuite):
    """MariaDB (or MySQL) through aiomysql."""

    capabilities = capabilities_of("mysql://")

    @pytest.fixture
    def async_store_factory(self, mysql_pool: PrefixPool) -> Iterator[AsyncStoreFactory]:
        """Async stores on recycled, emptied table prefixes."""
        yield from self._factory(mysql_pool)


# --- what is particular to the SQL store's async face ---------------------------------


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file in the test's directory, then PostgreSQL, then MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/async.db"
    name = "postgresql_url" if request.param == "postgresql" else "mysql_url"
    url: str = request.getfixturevalue(name)
    return url


def test_one_url_serves_both_apis_on_the_same_tables(database_url: str) -> None:
    """What the async store writes the sync store reads, and the other way round."""
    prefix = f"a{secrets.token_hex(4)}_"
    sync = SqlEventStore(database_url, table_prefix=prefix)

    async def scenario() -> list[str]:
        async with await open_async_event_store(database_url, table_prefix=prefix) as store:
            assert isinstance(store, AsyncSqlEventStore)
            await store.add_aggregate("Order", "o-1", [RawEvent("Created", b"{}")])
            sync.append_events("Order", "o-1", 1, [RawEvent("Paid", b"{}")])
            await store.append_events("Order", "o-1", 2, [RawEvent("Shipped", b"{}")])
            return [e.name for e in await store.events("Order", "o-1")]

    try:
        assert asyncio.run(scenario()) == ["Created", "Paid", "Shipped"]
        assert [e.name for e in sync.events("Order", "o-1")] == ["Created", "Paid", "Shipped"]
    finally:
        sync.close()
        drop_store_tables(database_url, prefix)


def test_async_store_refuses_out_of_range_integers(database_url: str) -> None:
    """The async store checks integers as the sync one does: an expected version, a
    read's start, a page size or an outbox limit beyond a signed 64-bit integer raises
    OutOfRangeError (not the driver's overflow or syntax error), and nothing is
    written."""
    prefix = f"a{secrets.token_hex(4)}_"

    async def scenario() -> list[str]:
        async with await open_async_event_store(database_url, table_prefix=prefix) as store:
            await store.add_aggregate("Order", "o-1", [RawEvent("Created", b"{}")])
            too_big = 2**63
            with pytest.raises(OutOfRangeError, match="from_version"):
                await store.append_events("Order", "o-1", too_big, [RawEvent("X", b"")])
            with pytest.raises(OutOfRangeError, match="from_version"):
                await store.events("Order", "o-1", too_big)
            assert isinstance(store, AsyncSqlEventStore)
            with pytest.raises(OutOfRangeError, match="page_size"):
                await store.load_stream("Order", "o-1", page_size=too_big)
            with pytest.raises(OutOfRangeError, match="limit"):
                await store.outbox("relay").unpublished_events(2**64)
            return [e.name for e in await store.events("Order", "o-1")]

    try:
        assert asyncio.run(scenario()) == ["Created"]
    finally:
        drop_store_tables(database_url, prefix)


def _async_url(url: str, driver: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+')[0]}+{driver}://{rest}"


def test_explicit_asyncio_drivers_are_honoured(
    postgresql_url: str, mysql_url: str, tmp_path: Path
) -> None:
    """``sqlite+aiosqlite``, ``postgresql+psycopg_async`` and ``mysql+aiomysql`` open
    the async store on that driver."""
    urls = {
        f"sqlite+aiosqlite:///{tmp_path}/explicit.db": "aiosqlite",
        _async_url(postgresql_url, "psycopg_async"): "psycopg",
        _async_url(mysql_url, "aiomysql"): "aiomysql",
    }

    async def scenario(url: str) -> str:
        prefix = f"x{secrets.token_hex(4)}_"
        store = await open_async_event_store(url, table_prefix=prefix)
        try:
            assert isinstance(store, AsyncSqlEventStore)
            await store.add_aggregate("Order", 1, [RawEvent("Created", b"")])
            assert await store.contains_aggregate("Order", 1)
            await store.bridge.run(store.store.tables.metadata.drop_all, store.store.engine)
            return str(store.store.engine.dialect.driver)
        finally:
            await store.close()

    for url, driver in urls.items():
        assert asyncio.run(scenario(url)) == driver, url


def test_urls_the_async_store_refuses_say_why(tmp_path: Path) -> None:
    """In-memory SQLite (one shared connection) and asyncio drivers whose errors are
    not the sync driver's are refused for the async store; an asyncio driver is refused
    by the sync API, naming the async one."""

    async def open_async(url: str) -> None:
        await open_async_event_store(url)

    with pytest.raises(BackendConfigError, match=r"in-memory database .* use a file"):
        asyncio.run(open_async("sqlite://"))
    with pytest.raises(BackendConfigError, match=r"driver 'asyncpg' is not supported .* async"):
        asyncio.run(open_async("postgresql+asyncpg://u@localhost/db"))
    with pytest.raises(BackendConfigError, match="open_async_event_store"):
        open_event_store(f"sqlite+aiosqlite:///{tmp_path}/sync.db")
    with pytest.raises(BackendConfigError, match="a sync Engine goes to SqlEventStore"):
        AsyncSqlEventStore(sa.create_engine("sqlite://"))  # type: ignore[arg-type]


def test_a_lost_connection_mid_append_says_the_outcome_is_unknown_postgres(
    postgresql_url: str,
) -> None:
    """The store on the application's AsyncEngine: every server session ends between
    appends; the next append raises StoreUnavailableError with the sync store's
    "outcome unknown" message, and the one after it works on a new connection."""
    tag = f"esrc-async-{secrets.token_hex(4)}"
    prefix = f"l{secrets.token_hex(4)}_"

    async def scenario() -> list[str]:
        engine = create_async_engine(
            normalize_url(postgresql_url, asyncio=True), connect_args={"application_name": tag}
        )
        store = AsyncSqlEventStore(engine, table_prefix=prefix)
        try:
            await store.add_aggregate("Order", "o-1", [RawEvent("Created", b"")])
            await store.append_events("Order", "o-1", 1, [RawEvent("Paid", b"")])
            await asyncio.to_thread(_end_sessions, postgresql_url, tag)
            with pytest.raises(StoreUnavailableError) as raised:
                await store.append_events("Order", "o-1", 2, [RawEvent("Lost", b"")])
            message = str(raised.value)
            assert "append to Order 'o-1' at version 2" in message, message
            assert "stored whole or not at all" in message, message
            await store.append_events("Order", "o-1", 2, [RawEvent("Shipped", b"")])
            return [e.name for e in await store.events("Order", "o-1")]
        finally:
            await store.close()
            await engine.dispose()

    try:
        assert asyncio.run(scenario()) == ["Created", "Paid", "Shipped"]
    finally:
        drop_store_tables(postgresql_url, prefix)


def _end_sessions(url: str, application_name: str) -> None:
    with sa.create_engine(normalize_url(url)).connect() as admin:
        admin.execution_options(isolation_level="AUTOCOMMIT")
        assert database_hooks(admin.engine).kill_sessions_of(admin, application_name) >= 1


def test_waiting_gate_lets_size_runs_through_and_passes_a_cancelled_waiters_place_on() -> None:
    """The gate in front of the async store's direct paths: at most ``size`` runs
    inside at once, the others wait on the loop in arrival order, and a waiter
    cancelled while waiting (or just after being let through) loses no place."""
    from esrc_sqlalchemy._awaiting import SQLALCHEMY_BRIDGE, WaitingGate

    gate = WaitingGate(2)
    inside: list[int] = []
    most = 0
    order: list[int] = []

    def run(n: int) -> None:
        nonlocal most
        with gate:
            inside.append(n)
            most = max(most, len(inside))
            order.append(n)
            SQLALCHEMY_BRIDGE.wait(asyncio.sleep(0.02))
            inside.remove(n)

    async def scenario() -> None:
        tasks = [asyncio.ensure_future(SQLALCHEMY_BRIDGE.run(run, n)) for n in range(7)]
        await asyncio.sleep(0.005)
        tasks[3].cancel()  # waiting behind 0 and 1
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[3], asyncio.CancelledError)
        # every place came back: the gate lets two through at once again
        await asyncio.gather(SQLALCHEMY_BRIDGE.run(run, 7), SQLALCHEMY_BRIDGE.run(run, 8))

    asyncio.run(scenario())
    assert most == 2
    assert order == [0, 1, 2, 4, 5, 6, 7, 8]
    with pytest.raises(ValueError, match="at least one"):
        WaitingGate(0)


def test_async_outbox_relays_a_late_commit_first_on_postgresql(
    postgresql_pool: PrefixPool,
) -> None:
    """The async outbox keeps the sync one's guarantee: A appends and stays open (a
    session of its own); B and C are appended through the async store and commit. The
    async outbox holds B and C back while A is in flight, then returns A, B, C."""
    store = postgresql_pool.open_async()
    other = postgresql_pool.reopen(store.store)

    async def drain(outbox: AsyncEventStoreOutbox, count: int) -> list[RelayEvent]:
        got: list[RelayEvent] = []
        for _ in range(400):
            batch = await outbox.unpublished_events(100)
            await outbox.mark_events_as_published(batch)
            got += batch
            if len(got) >= count:
                break
            await asyncio.sleep(0.05)
        return got

    async def scenario() -> tuple[list[RelayEvent], list[str]]:
        for aggregate_id in ("a", "b", "c"):
            await store.add_aggregate("Order", aggregate_id, [RawEvent("Created", b"")])
        outbox = store.outbox("relay")
        assert len(await drain(outbox, 3)) == 3
        with other.engine.connect() as late:
            key = stream_key("Order", "a", "test")
            assert dialect_of(other).extend_stream(late, key, 1, [("A", b"A", None)])
            await store.append_events("Order", "b", 1, [RawEvent("B", b"B")])
            await store.append_events("Order", "c", 1, [RawEvent("C", b"C")])
            while_open = await outbox.unpublished_events(100)
            await outbox.mark_events_as_published(while_open)
            late.commit()
        after = await drain(store.outbox("relay"), 3)
        return while_open, [e.event.name for e in after]

    try:
        while_open, after = asyncio.run(scenario())
    finally:
        asyncio.run(store.close())
        other.close()
    assert while_open == []
    assert after == ["A", "B", "C"]


def test_close_waits_for_a_cancelled_sqlite_write(tmp_path: Path) -> None:
    """On SQLite a write outlives its cancelled caller; closing the store right after
    the cancellation waits for it, so the file is left with the whole append or none
    of it and a new store writes at once (no lock left taken)."""
    url = f"sqlite:///{tmp_path}/close.db"

    async def scenario() -> list[str]:
        store = await open_async_event_store(url)
        await store.add_aggregate("Order", "warm", [RawEvent("Opened", b"{}")])
        task = asyncio.ensure_future(
            store.add_aggregate("Order", "o-1", [RawEvent(f"E{n}", b"x") for n in range(5000)])
        )
        await asyncio.sleep(0.005)  # the write is under way
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not left, f"close() returned with work still running: {left}"
        again = await open_async_event_store(url, connect_timeout=1)
        try:
            await again.add_aggregate("Order", "after", [RawEvent("Opened", b"{}")])
            try:
                return [e.name for e in await again.events("Order", "o-1")]
            except AggregateNotFound:
                return []
        finally:
            await again.close()

    names = asyncio.run(scenario())
    assert names in ([], [f"E{n}" for n in range(5000)]), names[:3]
