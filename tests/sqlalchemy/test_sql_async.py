"""The async SQL store: the async acceptance suite on a SQLite file, PostgreSQL and
MariaDB, and what is particular to it (opening by URL, both APIs on one database,
faults)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from esrc_sqlalchemy.testing import PrefixPool

from esrc_core import AsyncEventStore, open_async_event_store
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
