"""Shared configuration of the test suite: the servers' URLs and what broker tests
share. Helpers worth having outside this repository live in ``esrc_testkit``.

Each server's URL comes from its environment variable: an unset variable skips the
test (and fails it under ``CI=true``); a URL that is set but does not answer fails it.
A fixture here is overridden by one of the same name closer to the test.

Under ``CI=true`` hypothesis prints a reproduction blob with every failure, so a
failure seen only in CI can be replayed locally with ``@reproduce_failure``.
"""

from __future__ import annotations

import importlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from esrc_faststream.loop import LoopThread
from esrc_sqlalchemy.engines import create_store_engine, normalize_url
from esrc_testkit.servers import in_ci, reachable_url, server_unreachable, server_url
from hypothesis import settings

settings.register_profile("ci", print_blob=True)
if in_ci():
    settings.load_profile("ci")


def _database_url(env_var: str, example: str) -> str:
    """The URL in ``env_var``, checked to answer ``SELECT 1``."""
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
    """The PostgreSQL URL from ESRC_TEST_POSTGRESQL_URL, checked with a query."""
    return _database_url(
        "ESRC_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """The MariaDB/MySQL URL from ESRC_TEST_MYSQL_URL, checked with a query."""
    return _database_url("ESRC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The RabbitMQ URL from ESRC_TEST_AMQP_URL, checked to accept connections."""
    return reachable_url(
        "ESRC_TEST_AMQP_URL", example="amqp://guest:guest@127.0.0.1:5672/", default_port=5672
    )


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The NATS URL from ESRC_TEST_NATS_URL, checked to accept connections."""
    return reachable_url("ESRC_TEST_NATS_URL", example="nats://127.0.0.1:4222", default_port=4222)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis URL from ESRC_TEST_REDIS_URL, checked to accept connections."""
    return reachable_url(
        "ESRC_TEST_REDIS_URL", example="redis://127.0.0.1:6379/0", default_port=6379
    )


@pytest.fixture(scope="session")
def loop() -> Iterator[LoopThread]:
    """An event loop thread for the tests' own asyncio broker clients."""
    thread = LoopThread(name="esrc-test-clients")
    yield thread
    thread.close()


@pytest.fixture
def unique() -> str:
    """Twelve hex digits unique to this test, for tables, exchanges, streams, subjects
    and relay names."""
    return secrets.token_hex(6)


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A three-node JetStream cluster (``jetstream_store.conftest.Cluster``) shared by
    the tests that kill no node (the acceptance suite on R3 streams, the demo),
    stopped when the session ends."""
    # Imported here: the cluster's machinery lives with the JetStream store's tests.
    start_cluster = importlib.import_module("jetstream_store.conftest").start_cluster
    for cluster in start_cluster(tmp_path_factory.mktemp("cluster"), proxied=False):
        deadline = time.monotonic() + 30
        while not cluster.monitor("n1", "jsz").get("meta_cluster", {}).get("leader"):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster elected no JetStream meta leader in 30 s")
            time.sleep(0.1)
        yield cluster
