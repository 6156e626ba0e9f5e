"""The read models: what each event does to the tables, one application per message id
under duplicate delivery, and the message id committed in the same transaction as the
changes (on SQLite, PostgreSQL and MariaDB/MySQL)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from financing.events import (
    BidAccepted,
    BidPlaced,
    BidRejected,
    FinancingReversed,
    FundsCommitted,
    FundsDeposited,
    InvestorRegistered,
    InvoicePutForSale,
    IssuerRegistered,
    registry,
)
from financing.read_models import InvestorView, ReadModelError, ReadModels

from esrc_core import RawEvent, RelayEvent

ACME = uuid.UUID("00000000-0000-4000-8000-00000000ac3e")
ADA = uuid.UUID("00000000-0000-4000-8000-00000000ada0")
INVOICE = uuid.UUID("00000000-0000-4000-8000-0000000001a1")
BID = uuid.UUID("00000000-0000-4000-8000-0000000000b1")


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def read_models(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> Iterator[ReadModels]:
    """Empty read models in an SQLite file, on PostgreSQL or on MariaDB/MySQL, with
    tables of this test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'read-models.db'}"
    else:
        url = request.getfixturevalue(f"{request.param}_url")
    models = ReadModels(url, table_prefix=f"{name}_")
    models.create()
    yield models
    models.drop()
    models.close()


class Stream:
    """Relayed events of one aggregate, with versions and positions like a store's."""

    position = 0

    def __init__(self, aggregate_type: str, aggregate_id: uuid.UUID) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.version = 0

    def next(self, event: object) -> RelayEvent:
        self.version += 1
        Stream.position += 1
        return RelayEvent(
            self.aggregate_type,
            self.aggregate_id,
            self.version,
            Stream.position,
            registry.to_raw(event),
        )


def _history() -> list[RelayEvent]:
    acme, ada, invoice = Stream("Issuer", ACME), Stream("Investor", ADA), Stream("Invoice", INVOICE)
    return [
        acme.next(IssuerRegistered(ACME, "Acme")),
        ada.next(InvestorRegistered(ADA, "Ada")),
        ada.next(FundsDeposited(Decimal("1000.00"))),
        invoice.next(InvoicePutForSale(INVOICE, ACME, "A-1", Decimal("800.00"), Decimal("750.00"))),
        ada.next(BidPlaced(BID, INVOICE, Decimal("760.00"))),
        invoice.next(BidAccepted(BID, ADA, Decimal("760.00"))),
        ada.next(FundsCommitted(BID, INVOICE, Decimal("760.00"))),
    ]


def test_events_build_investors_and_invoices(read_models: ReadModels) -> None:
    for event in _history():
        assert read_models.projection.handle(event) is True
    assert read_models.investors() == [
        InvestorView(ADA, "Ada", Decimal("240.00"), Decimal("0.00"), Decimal("760.00"))
    ]
    [invoice] = read_models.invoices()
    assert (invoice.number, invoice.issuer, invoice.status) == ("A-1", "Acme", "financed")
    assert (invoice.investor_id, invoice.investor, invoice.financed_amount) == (
        ADA,
        "Ada",
        Decimal("760.00"),
    )
    assert read_models.applied_messages() == 7


def test_a_reversal_and_a_rejection_show_on_the_invoice(read_models: ReadModels) -> None:
    history = _history()
    invoice_stream = Stream("Invoice", INVOICE)
    invoice_stream.version = 2
    history += [
        invoice_stream.next(FinancingReversed(BID, ADA, Decimal("760.00"), "disputed")),
        invoice_stream.next(BidRejected(uuid.uuid4(), ADA, Decimal("10.00"), "too low")),
    ]
    for event in history:
        read_models.projection.handle(event)
    [invoice] = read_models.invoices()
    assert (invoice.status, invoice.investor, invoice.financed_amount) == ("for sale", None, None)
    assert (invoice.reversals, invoice.rejected_bids) == (1, 1)


def test_duplicate_deliveries_are_applied_once(read_models: ReadModels) -> None:
    history = _history()
    for event in history:
        read_models.projection.handle(event)
    before = (read_models.investors(), read_models.invoices())
    # At-least-once delivery: everything again, and the last events once more.
    applied = [read_models.projection.handle(e) for e in [*history, *history[-3:]]]
    assert applied == [False] * (len(history) + 3)
    assert (read_models.investors(), read_models.invoices()) == before
    assert read_models.applied_messages() == len(history)


def test_the_message_id_commits_with_the_changes_or_not_at_all(read_models: ReadModels) -> None:
    """apply() writes a deposit, then fails: the deposit and the message id are both
    rolled back, so the redelivery applies the event in full."""
    history = _history()
    for event in history[:3]:
        read_models.projection.handle(event)
    deposit = Stream("Investor", ADA)
    deposit.version = 2
    more = deposit.next(FundsDeposited(Decimal("5.00")))

    def apply_then_fail() -> None:
        read_models.handle(more)
        raise RuntimeError("the consumer died half way")

    with pytest.raises(RuntimeError, match="half way"):
        read_models.apply_once(more.message_id, apply_then_fail)
    assert not read_models.has_applied(more.message_id)
    assert read_models.investors()[0].available == Decimal("1000.00")

    assert read_models.projection.handle(more) is True
    assert read_models.has_applied(more.message_id)
    assert read_models.investors()[0].available == Decimal("1005.00")


def test_an_event_for_an_unknown_row_is_an_error_and_is_not_recorded(
    read_models: ReadModels,
) -> None:
    stray = RelayEvent("Investor", ADA, 2, 1, registry.to_raw(FundsDeposited(Decimal("1.00"))))
    with pytest.raises(ReadModelError, match=f"no row {ADA} in .*investors"):
        read_models.projection.handle(stray)
    assert not read_models.has_applied(stray.message_id)


def test_events_of_other_applications_are_ignored(read_models: ReadModels) -> None:
    """A stream may carry events the read models do not know: they are neither applied
    nor recorded."""
    foreign = RelayEvent("Order", "o-1", 1, 1, RawEvent("OrderPlaced", b"{}"))
    assert read_models.projection.handle(foreign) is False
    assert not read_models.has_applied(foreign.message_id)


def test_two_threads_delivering_one_message_apply_it_once(read_models: ReadModels) -> None:
    registered = _history()[1]
    assert read_models.projection.handle(registered)
    deposit = Stream("Investor", ADA)
    deposit.version = 1
    event = deposit.next(FundsDeposited(Decimal("100.00")))
    inside, release = threading.Event(), threading.Event()
    results: dict[str, bool] = {}

    def first() -> None:
        def apply() -> None:
            read_models.handle(event)
            inside.set()
            release.wait(10)

        results["first"] = read_models.apply_once(event.message_id, apply)

    def second() -> None:
        results["second"] = read_models.projection.handle(event)

    one = threading.Thread(target=first)
    one.start()
    assert inside.wait(10)
    two = threading.Thread(target=second)
    two.start()
    release.set()
    one.join(10)
    two.join(10)
    assert results == {"first": True, "second": False}
    assert read_models.investors()[0].available == Decimal("100.00")
