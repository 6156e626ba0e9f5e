"""Fixtures for the command-line tests: stores to inspect, on each backend that can be
inspected, with the command-line arguments that name them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from esrc_core.migrations import Migratable
from esrc_core.store import EventStore
from esrc_sqlalchemy.testing import PrefixPool

from esrc_core import Capability, open_event_store, plugins, require, supports


@dataclass
class Target:
    """A store under test: ``store`` writes to it, and ``[command, url, *options]``
    names it on the command line."""

    url: str
    store: EventStore
    options: list[str] = field(default_factory=list)

    @property
    def store_options(self) -> dict[str, str]:
        """The backend options of :attr:`options` as keyword arguments."""
        return dict(o.split("=", 1) for o in self.options[1::2])

    def argv(self, command: str, *rest: str) -> list[str]:
        """The arguments of ``esrc COMMAND URL [options] REST...``."""
        return [command, self.url, *self.options, *rest]


def require_inspection(url: str) -> None:
    """Skip unless the backend for ``url`` declares the ``inspect`` capability: tests
    are gated by capabilities, as in the testkit."""
    backend, _ = plugins().resolve(url, "store")
    if Capability.INSPECT not in backend.capabilities:
        pytest.skip(f"the {backend.name} backend does not declare the 'inspect' capability")


def _inspectable(store: EventStore) -> None:
    """Fail unless ``store``, whose backend declares ``inspect``, implements it."""
    if not supports(store, Capability.INSPECT):
        store.close()
        pytest.fail(
            f"{type(store).__name__} declares the 'inspect' capability but does not "
            "implement esrc_core.inspection.Inspectable",
            pytrace=False,
        )


@pytest.fixture
def sqlite_target(tmp_path: Path) -> Iterator[Target]:
    """An empty SQLite file store, its file and tables created (the commands open
    only a store that exists)."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    require_inspection(url)
    store = open_event_store(url)
    _inspectable(store)
    require(store, Capability.MIGRATE, "create the tables", Migratable).migrate()
    yield Target(url, store)
    store.close()


@pytest.fixture(scope="session")
def postgresql_pool(postgresql_url: str) -> Iterator[PrefixPool]:
    """Empty PostgreSQL stores on table prefixes of their own (skip when
    ESRC_TEST_POSTGRESQL_URL is unset, fail in CI or when the server is unreachable)."""
    pool = PrefixPool(postgresql_url)
    yield pool
    pool.drop()


@pytest.fixture
def postgresql_target(postgresql_pool: PrefixPool) -> Iterator[Target]:
    """Empty PostgreSQL tables of the test's own, named with ``-o table_prefix=...``."""
    require_inspection(postgresql_pool.url)
    store = postgresql_pool.open()
    _inspectable(store)
    yield Target(postgresql_pool.url, store, ["-o", f"table_prefix={store.table_prefix}"])
    store.close()


@pytest.fixture
def memory_target() -> Iterator[Target]:
    """An empty named in-memory store: visible to this process only."""
    url = f"memory://cli-{secrets.token_hex(4)}"
    store = open_event_store(url)  # holding it keeps the named store alive
    yield Target(url, store)
    store.close()


@pytest.fixture(scope="session")
def mysql_pool(mysql_url: str) -> Iterator[PrefixPool]:
    """Empty MariaDB stores on table prefixes of their own (skip when
    ESRC_TEST_MYSQL_URL is unset, fail in CI or when the server is unreachable)."""
    pool = PrefixPool(mysql_url)
    yield pool
    pool.drop()


@pytest.fixture
def mysql_target(mysql_pool: PrefixPool) -> Iterator[Target]:
    """Empty MariaDB tables of the test's own, named with ``-o table_prefix=...``."""
    require_inspection(mysql_pool.url)
    store = mysql_pool.open()
    _inspectable(store)
    yield Target(mysql_pool.url, store, ["-o", f"table_prefix={store.table_prefix}"])
    store.close()


_BACKENDS = [
    pytest.param("memory", marks=pytest.mark.memory),
    pytest.param("sqlite", marks=pytest.mark.sqlite),
    pytest.param("postgresql", marks=pytest.mark.postgresql),
]


@pytest.fixture(params=_BACKENDS)
def target(request: pytest.FixtureRequest) -> Target:
    """An empty store on each inspectable backend: memory, an SQLite file, PostgreSQL."""
    found: Target = request.getfixturevalue(f"{request.param}_target")
    return found


@pytest.fixture(params=[*_BACKENDS, pytest.param("mysql", marks=pytest.mark.mysql)])
def any_target(request: pytest.FixtureRequest) -> Target:
    """:func:`target`'s stores and a MariaDB one."""
    found: Target = request.getfixturevalue(f"{request.param}_target")
    return found
