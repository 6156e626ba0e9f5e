"""The web console never writes: on an empty database it creates no table (its pages
say what is missing), and on a store with relays it writes no checkpoint and takes no
relay lock, opened the way ``esrc console`` opens it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from esrc_core.cli._stores import open_store
from esrc_core.relay import HasOutbox
from esrc_sqlalchemy.testing import drop_store_tables
from starlette.testclient import TestClient

from esrc_console import create_app
from esrc_core import EventStore, HasRelayLock, RawEvent, open_event_store

PAGES = (
    "/streams",
    "/streams?q=x&type=Thing",
    "/streams/Thing/i%3A1",
    "/events/1",
    "/relays",
    "/api/relays",
    "/api/streams",
    "/api/events/1",
)


def _visit(store: EventStore) -> list[int]:
    client = TestClient(create_app(store, refresh_seconds=0.001))
    return [client.get(path).status_code for path in PAGES * 2]


def _tables(url: str, prefix: str) -> list[str]:
    engine = sa.create_engine(url.replace("+asyncpg", ""))
    try:
        return [t for t in sa.inspect(engine).get_table_names() if t.startswith(prefix)]
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, unique: str
) -> Iterator[tuple[str, str]]:
    """(URL, unique table prefix) on an empty SQLite file and on PostgreSQL; tables with
    the prefix are dropped at the end."""
    prefix = f"console_ro_{unique}_"
    if request.param == "sqlite":
        path = tmp_path / "empty.db"
        sqlite3.connect(path).close()
        url = f"sqlite:///{path}"
    else:
        url = str(request.getfixturevalue("postgresql_url"))
    yield url, prefix
    drop_store_tables(url, prefix)


def test_an_empty_database_gets_no_tables(database: tuple[str, str]) -> None:
    url, prefix = database
    store = open_store(url, {"table_prefix": prefix}, inspecting=True)
    try:
        statuses = _visit(store)
    finally:
        store.close()
    assert set(statuses) <= {404, 503}, statuses
    assert _tables(url, prefix) == []


def _checkpoints(url: str, prefix: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            table = sa.Table(f"{prefix}checkpoints", sa.MetaData(), autoload_with=conn)
            return sorted(tuple(row) for row in conn.execute(sa.select(table)))
    finally:
        engine.dispose()


def test_no_checkpoint_is_written_and_no_relay_lock_taken(database: tuple[str, str]) -> None:
    url, prefix = database
    writer = open_event_store(url, table_prefix=prefix)
    try:
        writer.add_aggregate("Thing", 1, [RawEvent("Created", b"{}"), RawEvent("Changed", b"{}")])
        assert isinstance(writer, HasOutbox)
        outbox = writer.outbox("projections")
        outbox.mark_events_as_published(outbox.unpublished_events(1))
        before = _checkpoints(url, prefix)
        store = open_store(url, {"table_prefix": prefix}, inspecting=True)
        try:
            statuses = _visit(store)
            assert isinstance(writer, HasRelayLock)
            lock = writer.relay_lock("projections")
            assert lock.acquire(0), "the console holds the relay lock"
            lock.release()
        finally:
            store.close()
        assert 200 in statuses
        assert _checkpoints(url, prefix) == before
        assert [p.name for p in writer.relays()] == ["projections"]  # type: ignore[attr-defined]
    finally:
        writer.close()
