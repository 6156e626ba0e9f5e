"""The Investor aggregate, in given/when/then form: balances, bids and the moves of a
bid's funds, and snapshots."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from esrc_testkit.aggregates import given
from financing.errors import (
    BidStateError,
    DuplicateBid,
    InsufficientFunds,
    InvalidAmount,
    UnknownBid,
)
from financing.events import (
    BidPlaced,
    CommittedFundsReturned,
    FundsCommitted,
    FundsDeposited,
    InvestorRegistered,
    ReservedFundsReleased,
    registry,
)
from financing.investor import BidState, Investor

from esrc_core import RawSnapshot

ADA = uuid.UUID("00000000-0000-4000-8000-00000000ada0")
INVOICE = uuid.UUID("00000000-0000-4000-8000-0000000001a1")
OTHER_INVOICE = uuid.UUID("00000000-0000-4000-8000-0000000001a2")
BID = uuid.UUID("00000000-0000-4000-8000-0000000000b1")
OTHER_BID = uuid.UUID("00000000-0000-4000-8000-0000000000b2")

REGISTERED = InvestorRegistered(ADA, "Ada")
FUNDED = (REGISTERED, FundsDeposited(Decimal("1000.00")))
BID_PLACED = BidPlaced(BID, INVOICE, Decimal("400.00"))
COMMITTED = FundsCommitted(BID, INVOICE, Decimal("400.00"))


def test_registering_raises_investor_registered() -> None:
    investor = (
        given(Investor, registry=registry)
        .when(lambda _: Investor(ADA, " Ada "))
        .then(InvestorRegistered(ADA, "Ada"))
    )
    assert (investor.id, investor.name, investor.available) == (ADA, "Ada", Decimal(0))


def test_an_investor_needs_a_name() -> None:
    given(Investor).when(lambda _: Investor(ADA, "  ")).then_raises(ValueError, match="name")


def test_deposit_adds_to_the_available_balance() -> None:
    investor = (
        given(Investor, *FUNDED, registry=registry)
        .when(lambda i: i.deposit("250.50"))
        .then(FundsDeposited(Decimal("250.50")))
    )
    assert investor.available == Decimal("1250.50")


@pytest.mark.parametrize("amount", ["0", "-5", "1.005", "NaN", "lots"])
def test_deposit_refuses_amounts_that_are_not_positive_whole_cents(amount: str) -> None:
    given(Investor, *FUNDED).when(lambda i: i.deposit(amount)).then_raises(InvalidAmount)


def test_a_bid_reserves_funds() -> None:
    investor = (
        given(Investor, *FUNDED, registry=registry)
        .when(lambda i: i.place_bid(BID, INVOICE, "400"))
        .then(BID_PLACED)
    )
    assert (investor.available, investor.reserved) == (Decimal("600.00"), Decimal("400.00"))
    assert investor.bids[BID].state is BidState.RESERVED


def test_a_bid_of_the_whole_available_balance_is_allowed() -> None:
    given(Investor, *FUNDED).when(lambda i: i.place_bid(BID, INVOICE, "1000")).then(
        BidPlaced(BID, INVOICE, Decimal("1000.00"))
    )


def test_no_bid_above_the_available_balance() -> None:
    given(Investor, *FUNDED, BID_PLACED).when(
        lambda i: i.place_bid(OTHER_BID, OTHER_INVOICE, "600.01")
    ).then_raises(InsufficientFunds, match="only 600.00 is available")


def test_one_open_bid_per_invoice() -> None:
    given(Investor, *FUNDED, BID_PLACED).when(
        lambda i: i.place_bid(OTHER_BID, INVOICE, "100")
    ).then_raises(DuplicateBid, match="open bid on this invoice")


def test_a_bid_id_is_used_once() -> None:
    given(Investor, *FUNDED, BID_PLACED).when(
        lambda i: i.place_bid(BID, OTHER_INVOICE, "100")
    ).then_raises(DuplicateBid, match="already used")


def test_after_a_released_bid_the_investor_may_bid_on_the_invoice_again() -> None:
    released = ReservedFundsReleased(BID, INVOICE, Decimal("400.00"), "too low")
    given(Investor, *FUNDED, BID_PLACED, released).when(
        lambda i: i.place_bid(OTHER_BID, INVOICE, "500")
    ).then(BidPlaced(OTHER_BID, INVOICE, Decimal("500.00")))


def test_commit_moves_reserved_funds_to_committed() -> None:
    investor = (
        given(Investor, *FUNDED, BID_PLACED, registry=registry)
        .when(lambda i: i.commit_funds(BID))
        .then(COMMITTED)
    )
    assert (investor.available, investor.reserved, investor.committed) == (
        Decimal("600.00"),
        Decimal("0.00"),
        Decimal("400.00"),
    )


def test_commit_is_idempotent() -> None:
    given(Investor, *FUNDED, BID_PLACED, COMMITTED).when(
        lambda i: i.commit_funds(BID)
    ).then_nothing()


def test_release_gives_reserved_funds_back() -> None:
    investor = (
        given(Investor, *FUNDED, BID_PLACED, registry=registry)
        .when(lambda i: i.release_reserved_funds(BID, "rejected"))
        .then(ReservedFundsReleased(BID, INVOICE, Decimal("400.00"), "rejected"))
    )
    assert (investor.available, investor.reserved) == (Decimal("1000.00"), Decimal("0.00"))


def test_release_is_idempotent() -> None:
    released = ReservedFundsReleased(BID, INVOICE, Decimal("400.00"), "rejected")
    given(Investor, *FUNDED, BID_PLACED, released).when(
        lambda i: i.release_reserved_funds(BID, "rejected again")
    ).then_nothing()


def test_committed_funds_cannot_be_released_as_reserved() -> None:
    given(Investor, *FUNDED, BID_PLACED, COMMITTED).when(
        lambda i: i.release_reserved_funds(BID, "late rejection")
    ).then_raises(BidStateError, match="was committed")


def test_released_funds_cannot_be_committed() -> None:
    released = ReservedFundsReleased(BID, INVOICE, Decimal("400.00"), "rejected")
    given(Investor, *FUNDED, BID_PLACED, released).when(lambda i: i.commit_funds(BID)).then_raises(
        BidStateError, match="was released"
    )


def test_returning_committed_funds_makes_them_available() -> None:
    investor = (
        given(Investor, *FUNDED, BID_PLACED, COMMITTED, registry=registry)
        .when(lambda i: i.return_committed_funds(BID, "reversed"))
        .then(CommittedFundsReturned(BID, INVOICE, Decimal("400.00"), "reversed"))
    )
    assert (investor.available, investor.committed) == (Decimal("1000.00"), Decimal("0.00"))
    assert investor.bids[BID].state is BidState.RETURNED


def test_return_is_idempotent_and_needs_committed_funds() -> None:
    returned = CommittedFundsReturned(BID, INVOICE, Decimal("400.00"), "reversed")
    given(Investor, *FUNDED, BID_PLACED, COMMITTED, returned).when(
        lambda i: i.return_committed_funds(BID, "again")
    ).then_nothing()
    given(Investor, *FUNDED, BID_PLACED).when(
        lambda i: i.return_committed_funds(BID, "never committed")
    ).then_raises(BidStateError, match="was reserved")


def test_steps_on_an_unknown_bid_are_refused() -> None:
    for step in (
        lambda i: i.commit_funds(OTHER_BID),
        lambda i: i.release_reserved_funds(OTHER_BID, "x"),
        lambda i: i.return_committed_funds(OTHER_BID, "x"),
    ):
        given(Investor, *FUNDED, BID_PLACED).when(step).then_raises(UnknownBid)


def test_snapshot_restores_the_same_state() -> None:
    history = [
        *FUNDED,
        BID_PLACED,
        COMMITTED,
        BidPlaced(OTHER_BID, OTHER_INVOICE, Decimal("100.00")),
    ]
    investor = Investor.from_events(ADA, history)
    restored = Investor.from_snapshot(ADA, RawSnapshot(len(history), investor.snapshot()), [])
    assert restored.id == ADA
    assert (restored.name, restored.available, restored.reserved, restored.committed) == (
        "Ada",
        Decimal("500.00"),
        Decimal("100.00"),
        Decimal("400.00"),
    )
    assert restored.bids == investor.bids
    assert restored.initial_version == len(history)
    # The restored investor keeps guarding its invariants.
    restored.release_reserved_funds(OTHER_BID, "rejected")
    assert restored.available == Decimal("600.00")
    with pytest.raises(InsufficientFunds):
        restored.place_bid(uuid.uuid4(), uuid.uuid4(), "600.01")
