"""Fixtures for the SQL backend's tests: the servers' URLs (from the environment, with
a reachability check) and pools of empty stores on them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from esrc_sqlalchemy.engines import create_store_engine, normalize_url
from esrc_sqlalchemy.testing import PrefixPool
from esrc_testkit.servers import server_unreachable, server_url

POSTGRESQL = ("ESRC_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL = ("ESRC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _reachable_url(env_var: str, example: str) -> str:
    url = server_url(env_var, example=example)
    engine = create_store_engine(normalize_url(url), connect_timeout=5)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as err:
        server_unreachable(env_var, url, err)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def postgresql_url() -> str:
    """The PostgreSQL URL from ESRC_TEST_POSTGRESQL_URL (skip when unset, fail in CI)."""
    return _reachable_url(*POSTGRESQL)


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """The MariaDB/MySQL URL from ESRC_TEST_MYSQL_URL (skip when unset, fail in CI)."""
    return _reachable_url(*MYSQL)


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
