"""The choreography: relayed events drive the next command, with compensation, and a
duplicated message changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from financing.commands import Commands
from financing.errors import InvoiceNotForSale, InvoiceNotWithdrawn, UnknownAggregate
from financing.investor import BidState
from financing.invoice import InvoiceStatus
from financing.pipeline import Pipeline
from financing.process import FinancingProcess

from esrc_core import HasOutbox, RelayEvent, open_event_store

pytestmark = pytest.mark.memory


class Market:
    """The write side and the choreography on an in-memory store, wired through the
    in-process publisher."""

    def __init__(self) -> None:
        self.store = open_event_store("memory://")
        self.commands = Commands(self.store)
        self.process = FinancingProcess(self.commands)
        self.pipeline = Pipeline(
            self.store,
            "memory://",
            {"process": self.process.projection},
            name="test",
            relay_name="process",
        )
        issuer = self.commands.register_issuer("Acme")
        self.invoice = self.commands.put_invoice_for_sale(issuer, "A-1", "1000", "900")
        self.ada = self.investor("Ada", "5000")
        self.ben = self.investor("Ben", "5000")

    def investor(self, name: str, deposit: str) -> uuid.UUID:
        investor = self.commands.register_investor(name)
        self.commands.deposit(investor, deposit)
        return investor

    def balances(self, investor: uuid.UUID) -> tuple[Decimal, Decimal, Decimal]:
        loaded = self.commands.investors.find_by_id(investor)
        return loaded.available, loaded.reserved, loaded.committed

    def all_events(self) -> list[RelayEvent]:
        assert isinstance(self.store, HasOutbox)
        return self.store.outbox(f"check-{uuid.uuid4()}").unpublished_events(10_000)


@pytest.fixture
def market() -> Iterator[Market]:
    made = Market()
    yield made
    made.pipeline.close()


def test_an_accepted_bid_finances_the_invoice_and_commits_the_funds(market: Market) -> None:
    bid = market.commands.place_bid(market.ada, market.invoice, "950")
    assert market.balances(market.ada) == (Decimal("4050.00"), Decimal("950.00"), Decimal(0))
    market.pipeline.settle()
    invoice = market.commands.invoices.find_by_id(market.invoice)
    assert invoice.status is InvoiceStatus.FINANCED
    assert invoice.financed_by is not None
    assert invoice.financed_by.bid_id == bid
    assert market.balances(market.ada) == (Decimal("4050.00"), Decimal(0), Decimal("950.00"))


def test_a_rejected_bid_releases_the_reserved_funds(market: Market) -> None:
    bid = market.commands.place_bid(market.ada, market.invoice, "800")
    market.pipeline.settle()
    investor = market.commands.investors.find_by_id(market.ada)
    assert investor.bids[bid].state is BidState.RELEASED
    assert market.balances(market.ada) == (Decimal("5000.00"), Decimal(0), Decimal(0))
    assert market.commands.invoices.find_by_id(market.invoice).status is InvoiceStatus.FOR_SALE


def test_of_two_crossing_bids_one_wins_and_the_other_is_compensated(market: Market) -> None:
    ada_bid = market.commands.place_bid(market.ada, market.invoice, "950")
    ben_bid = market.commands.place_bid(market.ben, market.invoice, "990")
    market.pipeline.settle()
    invoice = market.commands.invoices.find_by_id(market.invoice)
    assert invoice.financed_by is not None
    assert invoice.financed_by.bid_id == ada_bid  # relayed first, decided first
    assert market.balances(market.ada) == (Decimal("4050.00"), Decimal(0), Decimal("950.00"))
    assert market.balances(market.ben) == (Decimal("5000.00"), Decimal(0), Decimal(0))
    ben = market.commands.investors.find_by_id(market.ben)
    assert ben.bids[ben_bid].state is BidState.RELEASED


def test_a_reversal_returns_the_committed_funds_and_reopens_the_invoice(market: Market) -> None:
    market.commands.place_bid(market.ada, market.invoice, "950")
    market.pipeline.settle()
    market.commands.reverse_financing(market.invoice, "disputed")
    market.pipeline.settle()
    assert market.balances(market.ada) == (Decimal("5000.00"), Decimal(0), Decimal(0))
    assert market.commands.invoices.find_by_id(market.invoice).status is InvoiceStatus.FOR_SALE
    # The re-opened invoice takes a new bid.
    market.commands.place_bid(market.ben, market.invoice, "920")
    market.pipeline.settle()
    assert market.balances(market.ben) == (Decimal("4080.00"), Decimal(0), Decimal("920.00"))


def test_a_reversal_saves_the_invoice_and_the_investor_in_one_unit_of_work(
    market: Market,
) -> None:
    """Reversing changes the invoice and returns the investor's funds in one commit,
    before anything is relayed: the two events follow each other in the relay's order,
    and the choreography's compensation for the reversal adds nothing."""
    market.commands.place_bid(market.ada, market.invoice, "950")
    market.pipeline.settle()
    market.commands.reverse_financing(market.invoice, "disputed")
    assert market.balances(market.ada) == (Decimal("5000.00"), Decimal(0), Decimal(0))
    names = [e.event.name for e in market.all_events()]
    assert names[-2:] == ["FinancingReversed", "CommittedFundsReturned"]
    before = len(names)
    market.pipeline.settle()
    assert len(market.all_events()) == before


def test_each_step_records_the_event_that_caused_it(market: Market) -> None:
    market.commands.place_bid(market.ada, market.invoice, "950")
    market.pipeline.settle()
    by_name = {e.event.name: e for e in market.all_events()}
    accepted, committed = by_name["BidAccepted"], by_name["FundsCommitted"]
    assert accepted.event.metadata["causation_id"] == by_name["BidPlaced"].message_id
    assert committed.event.metadata["causation_id"] == accepted.message_id


def test_one_correlation_runs_from_a_command_through_the_choreography(market: Market) -> None:
    """Walk back from the last event the choreography caused to the command that
    started it: every cause is an earlier stored event of the same correlation, and
    the walk ends at the command's event, which no event caused. Another command's
    events have a correlation of their own."""
    market.commands.place_bid(market.ada, market.invoice, "950")
    market.commands.place_bid(market.ben, market.invoice, "990")  # rejected: sold
    market.pipeline.settle()
    events = market.all_events()
    by_message = {e.message_id: e for e in events}
    placed = [e for e in events if e.event.name == "BidPlaced"]
    assert [e.aggregate_id for e in placed] == [market.ada, market.ben]
    for start, last_name in ((placed[0], "FundsCommitted"), (placed[1], "ReservedFundsReleased")):
        correlation = start.event.metadata["correlation_id"]
        assert "causation_id" not in start.event.metadata
        caused = [e for e in events if e.event.metadata.get("correlation_id") == correlation]
        assert caused[0] is start
        assert caused[-1].event.name == last_name, [e.event.name for e in caused]
        walked = [caused[-1]]
        while "causation_id" in walked[-1].event.metadata:
            cause = by_message[walked[-1].event.metadata["causation_id"]]
            assert cause.position < walked[-1].position
            assert cause.event.metadata["correlation_id"] == correlation
            walked.append(cause)
        assert walked[-1] is start
        assert len(walked) == 3  # placed -> decided by the invoice -> the investor's step
    assert placed[0].event.metadata["correlation_id"] != placed[1].event.metadata["correlation_id"]


def test_handling_every_event_again_changes_nothing(market: Market) -> None:
    """The steps are idempotent by themselves: even without the seen-message record, a
    second delivery of every event raises no new event."""
    market.commands.place_bid(market.ada, market.invoice, "950")
    market.commands.place_bid(market.ben, market.invoice, "990")
    market.pipeline.settle()
    market.commands.reverse_financing(market.invoice, "disputed")
    market.pipeline.settle()
    before = market.all_events()
    for event in before:
        market.process.handle(event)
    assert market.all_events() == before


def test_a_withdrawn_invoice_is_deleted_and_a_late_bid_is_compensated(market: Market) -> None:
    """A bid is placed, then the invoice is withdrawn and its stream deleted before
    the bid was decided: the invoice can no longer be found, and when ``BidPlaced``
    arrives the choreography releases the investor's reserved funds."""
    bid = market.commands.place_bid(market.ada, market.invoice, "950")
    market.commands.withdraw_invoice(market.invoice, "sold elsewhere")
    with pytest.raises(InvoiceNotForSale, match="withdrawn"):
        market.commands.place_bid(market.ben, market.invoice, "950")
    market.commands.delete_withdrawn_invoice(market.invoice)
    assert not market.commands.invoices.contains(market.invoice)
    with pytest.raises(UnknownAggregate):
        market.commands.withdraw_invoice(market.invoice, "again")
    market.pipeline.settle()
    investor = market.commands.investors.find_by_id(market.ada)
    assert investor.bids[bid].state is BidState.RELEASED
    assert market.balances(market.ada) == (Decimal("5000.00"), Decimal(0), Decimal(0))
    relayed = {e.aggregate_id for e in market.all_events()}
    assert market.invoice not in relayed


def test_only_a_withdrawn_invoice_not_financed_can_be_deleted(market: Market) -> None:
    """Deleting an invoice that was not withdrawn is refused; withdrawing a financed
    invoice is refused (reverse the financing first)."""
    with pytest.raises(InvoiceNotWithdrawn):
        market.commands.delete_withdrawn_invoice(market.invoice)
    market.commands.place_bid(market.ada, market.invoice, "950")
    market.pipeline.settle()
    with pytest.raises(InvoiceNotForSale, match="financed"):
        market.commands.withdraw_invoice(market.invoice, "too late")
    assert market.commands.invoices.contains(market.invoice)
