"""Fixtures for the financing example's tests: unique names and the write side on a
fresh in-memory store. The servers' URLs come from the fixtures in
``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from esrc_core.personal_data import MemoryKeyStore
from financing.commands import Commands
from financing.events import use_key_store

from esrc_core import open_event_store


@pytest.fixture
def name(unique: str) -> str:
    """A name unique to this test for tables, relays, exchanges, streams and queues."""
    return f"fin{unique}"


@pytest.fixture
def commands() -> Commands:
    """The command handlers on a new, private in-memory store."""
    return Commands(open_event_store("memory://"))


@pytest.fixture(autouse=True)
def _keys_in_memory() -> Iterator[None]:
    """Each test starts and ends with the registry's key store in memory: an
    application a test ran (on a store whose tables are then dropped) leaves its keys
    behind in the module's registry."""
    use_key_store(MemoryKeyStore())
    yield
    use_key_store(MemoryKeyStore())
