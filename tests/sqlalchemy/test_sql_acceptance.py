"""The testkit's whole acceptance suite on SQLite (a file and ``sqlite://``),
PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from esrc_core.capabilities import Capability
from esrc_sqlalchemy.testing import PrefixPool

from esrc_core import EventStore
from esrc_sqlalchemy import SqlEventStore
from esrc_testkit import EventStoreAcceptance, capabilities_of


def _sql(store: EventStore) -> SqlEventStore:
    assert isinstance(store, SqlEventStore)
    return store


class TestSqliteFileStore(EventStoreAcceptance):
    """``sqlite:///<file>``: a new file per store."""

    capabilities = capabilities_of("sqlite:///events.db") - {Capability.HOLD_COMMITS}

    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> Iterator[Callable[[], EventStore]]:
        """Each call opens a store on a new database file."""
        opened: list[EventStore] = []

        def open_empty() -> EventStore:
            opened.append(SqlEventStore(f"sqlite:///{tmp_path}/store{len(opened)}.db"))
            return opened[-1]

        yield open_empty
        for store in opened:
            store.close()

    def reopen(self, store: EventStore) -> EventStore:
        """The same file again."""
        return SqlEventStore(_sql(store).url)


class TestSqliteMemoryStore(EventStoreAcceptance):
    """``sqlite://``: in memory, private to the store, so not persistent."""

    capabilities = capabilities_of("sqlite://") - {Capability.PERSISTENT, Capability.HOLD_COMMITS}

    @pytest.fixture
    def store_factory(self) -> Iterator[Callable[[], EventStore]]:
        """Each call opens a new in-memory database."""
        opened: list[EventStore] = []

        def open_empty() -> EventStore:
            opened.append(SqlEventStore("sqlite://"))
            return opened[-1]

        yield open_empty
        for store in opened:
            store.close()


class _ServerSuite(EventStoreAcceptance):
    pool: PrefixPool

    def reopen(self, store: EventStore) -> EventStore:
        """Another store on the same tables."""
        return self.pool.reopen(_sql(store))

    def _factory(self, pool: PrefixPool) -> Iterator[Callable[[], EventStore]]:
        self.pool = pool
        yield pool.open
        pool.release()


class TestPostgresStore(_ServerSuite):
    """PostgreSQL through psycopg 3."""

    capabilities = capabilities_of("postgresql://")

    @pytest.fixture
    def store_factory(self, postgresql_pool: PrefixPool) -> Iterator[Callable[[], EventStore]]:
        """Stores on recycled, emptied table prefixes."""
        yield from self._factory(postgresql_pool)


class TestMariadbStore(_ServerSuite):
    """MariaDB (or MySQL) through PyMySQL."""

    capabilities = capabilities_of("mysql://")

    @pytest.fixture
    def store_factory(self, mysql_pool: PrefixPool) -> Iterator[Callable[[], EventStore]]:
        """Stores on recycled, emptied table prefixes."""
        yield from self._factory(mysql_pool)
