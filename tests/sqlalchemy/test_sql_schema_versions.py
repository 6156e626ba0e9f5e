"""The SQL store keeps schema version 1 only, so it refuses (without writing anything)
events and snapshots of another schema version instead of returning them as version 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from esrc_core import NotSupportedError, RawEvent, RawSnapshot, open_event_store


def test_other_schema_versions_are_refused(tmp_path: Path) -> None:
    store = open_event_store(f"sqlite:///{tmp_path / 'events.db'}")
    try:
        with pytest.raises(NotSupportedError, match=r"event 1 \(b\) has schema version 2"):
            store.add_aggregate("t", "s-1", [RawEvent("a", b"1"), RawEvent("b", b"2", {}, 2)])
        assert not store.contains_aggregate("t", "s-1")
        store.add_aggregate("t", "s-1", [RawEvent("a", b"1")])
        assert store.events("t", "s-1") == [RawEvent("a", b"1")]
        with pytest.raises(NotSupportedError, match="snapshot has schema version 3"):
            store.add_snapshot("t", "s-1", RawSnapshot(1, b"s", 3))
        assert store.latest_snapshot("t", "s-1") is None
    finally:
        store.close()
