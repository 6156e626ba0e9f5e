"""Fixtures for the financing example's tests: servers from the environment (skipped
when unset, failing under CI=true or when unreachable), unique names, and the write
side on a fresh in-memory store."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from esrc_sqlalchemy.engines import create_store_engine, normalize_url
from esrc_testkit.servers import server_unreachable, server_url
from financing.commands import Commands

from esrc_core import open_event_store

POSTGRESQL = ("ESRC_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL = ("ESRC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
BROKERS = {
    "rabbitmq": ("ESRC_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", 5672),
    "nats": ("ESRC_TEST_NATS_URL", "nats://127.0.0.1:4222", 4222),
    "redis": ("ESRC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0", 6379),
}


@pytest.fixture(scope="session")
def postgresql_url() -> str:
    """The PostgreSQL URL from ESRC_TEST_POSTGRESQL_URL, checked to answer."""
    return _database_url(*POSTGRESQL)


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """The MariaDB/MySQL URL from ESRC_TEST_MYSQL_URL, checked to answer."""
    return _database_url(*MYSQL)


def _database_url(env_var: str, example: str) -> str:
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


@pytest.fixture
def broker_url() -> Callable[[str], str]:
    """Gives the URL of a broker (``rabbitmq``, ``nats``, ``redis``) from its
    environment variable, checked to accept connections."""
    return _broker_url


def _broker_url(broker: str) -> str:
    env_var, example, port = BROKERS[broker]
    url = server_url(env_var, example=example)
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or port), 5):
            pass
    except OSError as err:
        server_unreachable(env_var, url, err)
    return url


@pytest.fixture
def name() -> str:
    """A name unique to this test for tables, relays, exchanges, streams and queues."""
    return f"fin{uuid.uuid4().hex[:10]}"


@pytest.fixture
def commands() -> Commands:
    """The command handlers on a new, private in-memory store."""
    return Commands(open_event_store("memory://"))
