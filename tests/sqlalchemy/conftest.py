"""Fixtures for the SQL backend's tests: pools of empty stores on the servers whose URLs
``tests/conftest.py`` provides."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from esrc_sqlalchemy.testing import PrefixPool


@pytest.fixture(scope="session")
def postgresql_pool(postgresql_url: str) -> Iterator[PrefixPool]:
    """Empty PostgreSQL stores on recycled table prefixes; tables dropped at the end."""
    pool = PrefixPool(postgresql_url)
    yield pool
    pool.drop()


@pytest.fixture(scope="session")
def mysql_pool(mysql_url: str) -> Iterator[PrefixPool]:
    """Empty MariaDB/MySQL stores on recycled table prefixes; tables dropped at the end."""
    pool = PrefixPool(mysql_url)
    yield pool
    pool.drop()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def any_pool(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[PrefixPool]:
    """A pool on each database: a SQLite file in the test's directory, PostgreSQL,
    MariaDB. Stores still open after the test are closed."""
    if request.param == "sqlite":
        pool = PrefixPool(f"sqlite:///{tmp_path}/pool.db")
        yield pool
        pool.drop()
        return
    name = "postgresql_pool" if request.param == "postgresql" else "mysql_pool"
    shared: PrefixPool = request.getfixturevalue(name)
    yield shared
    shared.release()
