"""Marks each test with the backend it exercises, so ``pytest -m postgresql`` (and
``nox -s "backend(backend='postgresql')"``) runs one backend's tests.

A test belongs to a backend when its node id names it: ``postgres`` → postgresql,
``mysql``/``mariadb`` → mysql, ``sqlite`` → sqlite, ``memory`` → memory,
``rabbitmq``/``amqp`` → rabbitmq, ``nats`` → nats, ``redis`` → redis.
"""

from __future__ import annotations

import pytest

_BACKEND_WORDS = {
    "postgresql": ("postgres",),
    "mysql": ("mysql", "mariadb"),
    "sqlite": ("sqlite",),
    "memory": ("memory",),
    "rabbitmq": ("rabbitmq", "amqp"),
    "nats": ("nats",),
    "redis": ("redis",),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Add a backend marker to every test whose node id names that backend."""
    for item in items:
        node = item.nodeid.lower()
        for marker, words in _BACKEND_WORDS.items():
            if any(word in node for word in words):
                item.add_marker(getattr(pytest.mark, marker))
