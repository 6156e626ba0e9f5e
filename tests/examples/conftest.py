"""Fixtures for the financing example's tests: unique names and the write side on a
fresh in-memory store. The servers' URLs come from the fixtures in
``tests/conftest.py``."""

from __future__ import annotations

import pytest
from financing.commands import Commands

from esrc_core import open_event_store


@pytest.fixture
def name(unique: str) -> str:
    """A name unique to this test for tables, relays, exchanges, streams and queues."""
    return f"fin{unique}"


@pytest.fixture
def commands() -> Commands:
    """The command handlers on a new, private in-memory store."""
    return Commands(open_event_store("memory://"))
