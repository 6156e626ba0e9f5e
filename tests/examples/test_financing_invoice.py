"""The Invoice and Issuer aggregates, in given/when/then form."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from esrc_testkit.aggregates import given
from financing.errors import InvalidAmount, InvoiceNotFinanced, IssuerNotActive
from financing.events import (
    BidAccepted,
    BidRejected,
    FinancingReversed,
    InvoicePutForSale,
    IssuerRegistered,
    IssuerSuspended,
    registry,
)
from financing.invoice import Invoice, InvoiceStatus, invoice_id_for
from financing.issuer import Issuer

ACME = uuid.UUID("00000000-0000-4000-8000-00000000ac3e")
INVOICE = invoice_id_for(ACME, "A-1")
ADA = uuid.UUID("00000000-0000-4000-8000-00000000ada0")
BEN = uuid.UUID("00000000-0000-4000-8000-000000000be0")
BID = uuid.UUID("00000000-0000-4000-8000-0000000000b1")
OTHER_BID = uuid.UUID("00000000-0000-4000-8000-0000000000b2")

FOR_SALE = InvoicePutForSale(INVOICE, ACME, "A-1", Decimal("1000.00"), Decimal("950.00"))
ACCEPTED = BidAccepted(BID, ADA, Decimal("960.00"))


def test_an_accepted_bid_finances_the_invoice() -> None:
    invoice = (
        given(Invoice, FOR_SALE, registry=registry)
        .when(lambda i: i.decide_bid(BID, ADA, Decimal("960.00")))
        .then(ACCEPTED)
    )
    assert invoice.status is InvoiceStatus.FINANCED
    assert invoice.financed_by == ACCEPTED


@pytest.mark.parametrize("amount", ["950.00", "1000.00"])
def test_bids_at_the_asking_price_and_at_the_face_value_are_accepted(amount: str) -> None:
    given(Invoice, FOR_SALE).when(lambda i: i.decide_bid(BID, ADA, Decimal(amount))).then(
        BidAccepted(BID, ADA, Decimal(amount))
    )


def test_a_bid_below_the_asking_price_is_rejected() -> None:
    invoice = (
        given(Invoice, FOR_SALE, registry=registry)
        .when(lambda i: i.decide_bid(BID, ADA, Decimal("949.99")))
        .then(BidRejected(BID, ADA, Decimal("949.99"), "bid below the asking price of 950.00"))
    )
    assert invoice.status is InvoiceStatus.FOR_SALE


def test_a_bid_above_the_face_value_is_rejected() -> None:
    given(Invoice, FOR_SALE).when(lambda i: i.decide_bid(BID, ADA, Decimal("1000.01"))).then(
        BidRejected(BID, ADA, Decimal("1000.01"), "bid above the face value of 1,000.00")
    )


def test_an_invoice_is_financed_once() -> None:
    given(Invoice, FOR_SALE, ACCEPTED).when(
        lambda i: i.decide_bid(OTHER_BID, BEN, Decimal("990.00"))
    ).then(BidRejected(OTHER_BID, BEN, Decimal("990.00"), "invoice A-1 is already financed"))


def test_a_bid_is_decided_once() -> None:
    given(Invoice, FOR_SALE, ACCEPTED).when(
        lambda i: i.decide_bid(BID, ADA, Decimal("960.00"))
    ).then_nothing()
    rejected = BidRejected(OTHER_BID, BEN, Decimal("10.00"), "too low")
    given(Invoice, FOR_SALE, rejected).when(
        lambda i: i.decide_bid(OTHER_BID, BEN, Decimal("10.00"))
    ).then_nothing()


def test_a_reversal_reopens_the_invoice() -> None:
    invoice = (
        given(Invoice, FOR_SALE, ACCEPTED, registry=registry)
        .when(lambda i: i.reverse_financing("disputed"))
        .then(FinancingReversed(BID, ADA, Decimal("960.00"), "disputed"))
    )
    assert invoice.status is InvoiceStatus.FOR_SALE
    assert invoice.financed_by is None


def test_a_reopened_invoice_accepts_a_new_bid_and_ignores_the_old_one() -> None:
    reversed_ = FinancingReversed(BID, ADA, Decimal("960.00"), "disputed")
    given(Invoice, FOR_SALE, ACCEPTED, reversed_).when(
        lambda i: i.decide_bid(BID, ADA, Decimal("960.00"))
    ).then_nothing()
    given(Invoice, FOR_SALE, ACCEPTED, reversed_).when(
        lambda i: i.decide_bid(OTHER_BID, BEN, Decimal("955.00"))
    ).then(BidAccepted(OTHER_BID, BEN, Decimal("955.00")))


def test_only_a_financed_invoice_can_be_reversed() -> None:
    given(Invoice, FOR_SALE).when(lambda i: i.reverse_financing("why")).then_raises(
        InvoiceNotFinanced, match="not financed"
    )


def test_an_invoice_asks_at_most_its_face_value() -> None:
    given(Invoice).when(lambda _: Invoice(INVOICE, ACME, "A-1", "100", "100.01")).then_raises(
        InvalidAmount, match="above the face value"
    )


def test_an_active_issuer_puts_an_invoice_up_for_sale() -> None:
    issuer = Issuer.from_events(ACME, [IssuerRegistered(ACME, "Acme")])
    given(Invoice, registry=registry).when(
        lambda _: issuer.put_invoice_for_sale(" A-1 ", "1000", "950")
    ).then(FOR_SALE)
    assert issuer.changes == ()  # the sale is recorded in the invoice's stream only


def test_invoice_ids_follow_issuer_and_number() -> None:
    assert invoice_id_for(ACME, "A-1") == INVOICE
    assert invoice_id_for(ACME, "A-2") != INVOICE
    assert invoice_id_for(uuid.uuid4(), "A-1") != INVOICE


def test_a_suspended_issuer_sells_nothing() -> None:
    issuer = Issuer.from_events(ACME, [IssuerRegistered(ACME, "Acme"), IssuerSuspended("fraud")])
    given(Invoice).when(lambda _: issuer.put_invoice_for_sale("A-1", "10", "9")).then_raises(
        IssuerNotActive, match="suspended \\(fraud\\)"
    )


def test_suspending_an_issuer_twice_records_one_event() -> None:
    given(Issuer, IssuerRegistered(ACME, "Acme"), registry=registry).when(
        lambda i: i.suspend("late filings")
    ).then(IssuerSuspended("late filings"))
    given(Issuer, IssuerRegistered(ACME, "Acme"), IssuerSuspended("late filings")).when(
        lambda i: i.suspend("again")
    ).then_nothing()
