"""Fixtures shared by the esrc_core tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from esrc_core import EventStore, open_event_store


@pytest.fixture
def store() -> Iterator[EventStore]:
    """A fresh, private in-memory event store opened through the plugin system."""
    opened = open_event_store("memory://")
    yield opened
    opened.close()
