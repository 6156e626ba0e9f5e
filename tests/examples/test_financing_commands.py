"""The command handlers: one aggregate per command, refusals, metadata, and bids racing
on one investor from real threads (optimistic concurrency with retries)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from esrc_core.correlation import handling
from esrc_testkit.races import run_in_threads
from financing.commands import Commands
from financing.errors import (
    InsufficientFunds,
    InvoiceNotForSale,
    IssuerNotActive,
    UnknownAggregate,
)
from financing.investor import Investor

from esrc_core import AggregateAlreadyExists, EventStore, open_event_store
from esrc_sqlalchemy import SqlEventStore


def _market(commands: Commands) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """An issuer, an investor with 1,000.00 and an invoice asking 900.00."""
    issuer = commands.register_issuer("Acme")
    investor = commands.register_investor("Ada")
    commands.deposit(investor, "1000")
    invoice = commands.put_invoice_for_sale(issuer, "A-1", "1000", "900")
    return issuer, investor, invoice


def test_commands_save_events_with_the_command_name(commands: Commands) -> None:
    _, investor, invoice = _market(commands)
    bid = commands.place_bid(investor, invoice, "950")
    events = commands.store.events("Investor", investor)
    assert [(e.name, e.metadata.get("command")) for e in events] == [
        ("InvestorRegistered", "register_investor"),
        ("FundsDeposited", "deposit"),
        ("BidPlaced", "place_bid"),
    ]
    assert [sorted(e.metadata) for e in events] == [["command", "correlation_id"]] * 3
    assert commands.investors.find_by_id(investor).bids[bid].amount == Decimal("950.00")


def test_steps_of_the_choreography_record_their_cause(commands: Commands) -> None:
    _, investor, invoice = _market(commands)
    bid = commands.place_bid(investor, invoice, "950")
    placed = commands.store.events("Investor", investor)[-1]
    with handling(message_id="Investor/u:x/3", metadata=placed.metadata):
        commands.decide_bid(invoice, bid, investor, Decimal("950.00"))
    decided = commands.store.events("Invoice", invoice)[-1]
    assert (decided.name, decided.metadata) == (
        "BidAccepted",
        {
            "command": "decide_bid",
            "correlation_id": placed.metadata["correlation_id"],
            "causation_id": "Investor/u:x/3",
        },
    )


def test_a_command_outside_any_handling_starts_a_correlation(commands: Commands) -> None:
    _, investor, _ = _market(commands)
    commands.deposit(investor, Decimal("1.00"))
    commands.deposit(investor, Decimal("2.00"))
    first, second = (e.metadata for e in commands.store.events("Investor", investor)[-2:])
    assert "causation_id" not in first
    assert "causation_id" not in second
    assert uuid.UUID(first["correlation_id"]) != uuid.UUID(second["correlation_id"])


def test_commands_on_missing_aggregates_name_them(commands: Commands) -> None:
    missing = uuid.uuid4()
    with pytest.raises(UnknownAggregate, match=f"deposit: there is no Investor {missing}"):
        commands.deposit(missing, "10")
    with pytest.raises(UnknownAggregate, match=f"there is no Issuer {missing}"):
        commands.put_invoice_for_sale(missing, "A-1", "10", "9")
    _, investor, _ = _market(commands)
    with pytest.raises(UnknownAggregate, match=f"there is no Invoice {missing}"):
        commands.place_bid(investor, missing, "10")


def test_an_issuer_sells_an_invoice_number_once(commands: Commands) -> None:
    issuer, _, _ = _market(commands)
    with pytest.raises(AggregateAlreadyExists):
        commands.put_invoice_for_sale(issuer, "A-1", "500", "400")


def test_a_suspended_issuer_cannot_sell(commands: Commands) -> None:
    issuer, _, _ = _market(commands)
    commands.suspend_issuer(issuer, "unpaid fees")
    with pytest.raises(IssuerNotActive, match="unpaid fees"):
        commands.put_invoice_for_sale(issuer, "A-2", "500", "400")


def test_bids_on_a_financed_invoice_are_refused_up_front(commands: Commands) -> None:
    _, investor, invoice = _market(commands)
    bid = commands.place_bid(investor, invoice, "950")
    commands.decide_bid(invoice, bid, investor, Decimal("950.00"))
    other = commands.register_investor("Ben")
    commands.deposit(other, "5000")
    with pytest.raises(InvoiceNotForSale, match="already financed"):
        commands.place_bid(other, invoice, "990")
    assert len(commands.store.events("Investor", other)) == 2


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory),
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ]
)
def racing_store(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> Iterator[EventStore]:
    """A store shared by racing threads: in memory, an SQLite file, PostgreSQL."""
    if request.param == "memory":
        store = open_event_store("memory://")
    elif request.param == "sqlite":
        store = open_event_store(f"sqlite:///{tmp_path / 'race.db'}")
    else:
        store = open_event_store(request.getfixturevalue("postgresql_url"), table_prefix=f"{name}_")
    yield store
    if isinstance(store, SqlEventStore):
        store.tables.metadata.drop_all(store.engine)
        store.close()


def test_bids_racing_on_one_investor_retry_and_never_overdraw(racing_store: EventStore) -> None:
    """Six threads load the investor at the same version, then all save: one wins, the
    others hit the optimistic concurrency check and retry on the new version, until
    the balance (three bids' worth) runs out."""
    commands = Commands(racing_store)
    issuer = commands.register_issuer("Acme")
    investor = commands.register_investor("Cleo")
    commands.deposit(investor, "3000")
    invoices = [commands.put_invoice_for_sale(issuer, f"A-{n}", "1000", "900") for n in range(6)]
    barrier = threading.Barrier(len(invoices))

    def together(attempt: int) -> None:
        if attempt == 1:
            barrier.wait(timeout=30)

    def bid(index: int) -> str:
        try:
            commands.place_bid(investor, invoices[index], "1000", on_attempt=together)
        except InsufficientFunds:
            return "refused"
        return "placed"

    outcomes = run_in_threads(len(invoices), bid, barrier=barrier)
    assert sorted(outcomes) == ["placed"] * 3 + ["refused"] * 3
    # Round one: five of six lose. Every refused bid lost at least one round as well.
    assert commands.conflicts >= len(invoices) - 1
    loaded: Investor = commands.investors.find_by_id(investor)
    assert (loaded.available, loaded.reserved) == (Decimal("0.00"), Decimal("3000.00"))
    names = [e.name for e in racing_store.events("Investor", investor)]
    assert names.count("BidPlaced") == 3
