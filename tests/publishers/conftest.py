"""Fixtures for the broker publisher tests: the brokers' URLs (from the environment),
reachability checks, names unique to each test, and an event loop thread for the
tests' own broker clients."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from esrc_faststream.loop import LoopThread
from esrc_testkit.servers import server_unreachable, server_url

AMQP = ("ESRC_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", 5672)
NATS = ("ESRC_TEST_NATS_URL", "nats://127.0.0.1:4222", 4222)
REDIS = ("ESRC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0", 6379)


def _reachable_url(env_var: str, example: str, default_port: int) -> str:
    url = server_url(env_var, example=example)
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 5
        ):
            pass
    except OSError as err:
        server_unreachable(env_var, url, err)
    return url


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The RabbitMQ URL from ESRC_TEST_AMQP_URL (skip when unset, fail under CI)."""
    return _reachable_url(*AMQP)


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The NATS URL from ESRC_TEST_NATS_URL (skip when unset, fail under CI)."""
    return _reachable_url(*NATS)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis URL from ESRC_TEST_REDIS_URL (skip when unset, fail under CI)."""
    return _reachable_url(*REDIS)


@pytest.fixture(scope="session")
def loop() -> Iterator[LoopThread]:
    """An event loop thread for the tests' own asyncio broker clients."""
    thread = LoopThread(name="esrc-test-clients")
    yield thread
    thread.close()


@pytest.fixture
def unique() -> str:
    """A short name unique to this test, for exchanges, streams and subjects."""
    return uuid.uuid4().hex[:12]
