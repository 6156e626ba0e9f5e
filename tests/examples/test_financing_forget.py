"""Forgetting an investor (crypto-shredding) in the financing example: the aggregate,
its snapshots, the read models live and rebuilt, and the bytes on disk."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from esrc_core.personal_data import FORGOTTEN, MemoryKeyStore
from esrc_sqlalchemy.keys import SqlKeyStore
from financing.commands import Commands
from financing.errors import UnknownAggregate
from financing.events import InvestorRegistered, key_store, registry, use_key_store
from financing.read_models import ReadModels

from esrc_core import RelayEvent
from esrc_sqlalchemy import SqlEventStore


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A SQLite file holding the events and the keys (the registry uses its key store
    for the test, and a memory one again afterwards)."""
    url = f"sqlite:///{tmp_path / 'financing.db'}"
    keys = SqlKeyStore(url)
    use_key_store(keys)
    yield url
    use_key_store(MemoryKeyStore())
    keys.close()


def _relayed(store: SqlEventStore, aggregate_type: str, ids: list[uuid.UUID]) -> list[RelayEvent]:
    events: list[RelayEvent] = []
    for aggregate_id in ids:
        for version, raw in enumerate(store.events(aggregate_type, aggregate_id), start=1):
            events.append(RelayEvent(aggregate_type, aggregate_id, version, len(events) + 1, raw))
    return events


def test_forget_investor_erases_the_name_everywhere(sqlite_url: str, tmp_path: Path) -> None:
    """After forget_investor: the investor loads (from a snapshot taken before) with the
    placeholder name and its balance; the live read model and one rebuilt from the
    events show the placeholder; the other investor keeps her name; no byte of the
    database files holds the forgotten name."""
    name = f"Zelda {secrets.token_hex(6)}"
    store = SqlEventStore(sqlite_url)
    commands = Commands(store, investor_snapshot_every=2)
    zelda = commands.register_investor(name)
    ada = commands.register_investor("Ada")
    for amount in ("100", "200", "300"):
        commands.deposit(zelda, amount)
    assert store.latest_snapshot("Investor", zelda) is not None
    live = ReadModels(f"sqlite:///{tmp_path / 'live.db'}", table_prefix="live_")
    live.create()
    for event in _relayed(store, "Investor", [zelda, ada]):
        live.projection.handle(event)
    assert live.investor(zelda).name == name

    commands.forget_investor(zelda)
    commands.forget_investor(zelda)  # again: harmless

    loaded = commands.investors.find_by_id(zelda)
    assert (loaded.name, loaded.available) == (FORGOTTEN, Decimal("600.00"))
    assert loaded.forgotten
    commands.deposit(zelda, "1")  # the aggregate keeps working
    [registered, *_] = registry.from_raws(store.events("Investor", zelda))
    assert registered == InvestorRegistered(zelda, FORGOTTEN)
    for event in _relayed(store, "Investor", [zelda])[-3:]:
        live.projection.handle(event)
    rebuilt = ReadModels(f"sqlite:///{tmp_path / 'rebuilt.db'}", table_prefix="rebuilt_")
    rebuilt.create()
    for event in _relayed(store, "Investor", [zelda, ada]):
        rebuilt.projection.handle(event)
    for models in (live, rebuilt):
        assert models.investor(zelda).name == FORGOTTEN
        assert models.investor(ada).name == "Ada"
    assert rebuilt.investor(zelda).available == Decimal("601.00")
    live.close()
    rebuilt.close()
    store.close()

    database = Path(sqlite_url.removeprefix("sqlite:///"))
    files = [p for p in database.parent.iterdir() if p.name.startswith(database.name)]
    for path in files:
        assert name.encode() not in path.read_bytes(), f"{path.name} holds the forgotten name"


def test_forget_an_unknown_investor_is_refused() -> None:
    """No investor, nothing forgotten: UnknownAggregate, and no key is touched."""
    commands = Commands(SqlEventStore("sqlite://"))
    missing = uuid.uuid4()
    with pytest.raises(UnknownAggregate, match=str(missing)):
        commands.forget_investor(missing)
    assert not key_store().forgotten(str(missing))
