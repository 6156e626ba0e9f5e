"""The ``Invoice`` aggregate: an invoice up for sale, financed by at most one bid."""

from __future__ import annotations

import enum
import uuid
from decimal import Decimal

from esrc_core import EventRaiserAggregate
from financing.errors import InvalidAmount, InvoiceNotFinanced, InvoiceNotForSale
from financing.events import (
    BidAccepted,
    BidRejected,
    FinancingReversed,
    InvoicePutForSale,
    InvoiceWithdrawn,
)
from financing.money import format_money, money

__all__ = ["Invoice", "InvoiceStatus", "invoice_id_for"]

_INVOICE_IDS = uuid.UUID("6f0c5a53-62a8-4c3e-9d6b-0e9a3f1c2b7d")


def invoice_id_for(issuer_id: uuid.UUID, number: str) -> uuid.UUID:
    """The id of invoice ``number`` of ``issuer_id``: the same inputs always give the
    same id, so the store refuses an issuer's second sale of one invoice number
    (:class:`~esrc_core.AggregateAlreadyExists`)."""
    return uuid.uuid5(_INVOICE_IDS, f"{issuer_id}/{number}")


class InvoiceStatus(enum.Enum):
    """Whether the invoice can still be financed."""

    FOR_SALE = "for sale"
    FINANCED = "financed"
    WITHDRAWN = "withdrawn"


class Invoice(EventRaiserAggregate):
    """An issuer's invoice, for sale until a bid finances it.

    Invariants: financed by at most one bid at a time (a bid arriving while it is
    financed is rejected); a bid is accepted only between the asking price and the face
    value; every bid is decided once (deciding a bid again raises nothing, so a
    duplicated message changes nothing); only a financed invoice can be reversed, which
    puts it up for sale again.

    Create invoices with :meth:`financing.issuer.Issuer.put_invoice_for_sale`, which
    checks that the issuer may sell.
    """

    id: uuid.UUID
    issuer_id: uuid.UUID
    number = ""
    face_value = Decimal(0)
    asking_price = Decimal(0)
    status = InvoiceStatus.FOR_SALE
    financed_by: BidAccepted | None = None
    """The accepted bid, while the invoice is financed."""
    _decided: set[uuid.UUID]

    def __init__(
        self,
        invoice_id: uuid.UUID,
        issuer_id: uuid.UUID,
        number: str,
        face_value: Decimal | int | str,
        asking_price: Decimal | int | str,
    ) -> None:
        super().__init__()
        if not number.strip():
            raise ValueError("an invoice needs a number")
        face = money(face_value, what="face value")
        asking = money(asking_price, what="asking price")
        if asking > face:
            raise InvalidAmount(
                f"invoice {number}: asking price {format_money(asking)} is above the face "
                f"value {format_money(face)}"
            )
        self.raise_event(InvoicePutForSale(invoice_id, issuer_id, number.strip(), face, asking))

    def decide_bid(self, bid_id: uuid.UUID, investor_id: uuid.UUID, amount: Decimal) -> None:
        """Accept or reject a bid; a bid already decided is ignored.

        Rejected when the invoice is financed, or when ``amount`` is below the asking
        price or above the face value; accepted otherwise. Never raises for a bid it
        cannot accept: rejecting it is the answer, and it triggers the compensation.
        """
        if bid_id in self._decided:
            return
        reason = None
        if self.status is InvoiceStatus.FINANCED:
            reason = f"invoice {self.number} is already financed"
        elif self.status is InvoiceStatus.WITHDRAWN:
            reason = f"invoice {self.number} was withdrawn"
        elif amount < self.asking_price:
            reason = f"bid below the asking price of {format_money(self.asking_price)}"
        elif amount > self.face_value:
            reason = f"bid above the face value of {format_money(self.face_value)}"
        if reason is None:
            self.raise_event(BidAccepted(bid_id, investor_id, amount))
        else:
            self.raise_event(BidRejected(bid_id, investor_id, amount, reason))

    def withdraw(self, reason: str) -> None:
        """Take the invoice off the market; a withdrawn invoice is left as it is.

        Raises :class:`~financing.errors.InvoiceNotForSale` when it is financed
        (reverse the financing first). Bids decided afterwards are rejected.
        """
        if self.status is InvoiceStatus.WITHDRAWN:
            return
        if self.status is InvoiceStatus.FINANCED:
            raise InvoiceNotForSale(
                f"withdraw invoice {self.number} ({self.id}): it is financed; reverse the "
                "financing first"
            )
        self.raise_event(InvoiceWithdrawn(reason))

    def reverse_financing(self, reason: str) -> None:
        """Undo the financing and put the invoice up for sale again.

        Raises :class:`~financing.errors.InvoiceNotFinanced` unless it is financed.
        """
        accepted = self.financed_by
        if accepted is None:
            raise InvoiceNotFinanced(
                f"reverse financing of invoice {self.number} ({self.id}): it is not financed"
            )
        self.raise_event(
            FinancingReversed(accepted.bid_id, accepted.investor_id, accepted.amount, reason)
        )

    def on_event(self, event: object) -> None:
        """Apply one invoice event."""
        match event:
            case InvoicePutForSale() as sale:
                self.id = sale.invoice_id
                self.issuer_id = sale.issuer_id
                self.number = sale.number
                self.face_value = sale.face_value
                self.asking_price = sale.asking_price
                self._decided = set()
            case BidAccepted(bid_id=bid_id) as accepted:
                self._decided.add(bid_id)
                self.status = InvoiceStatus.FINANCED
                self.financed_by = accepted
            case BidRejected(bid_id=bid_id):
                self._decided.add(bid_id)
            case FinancingReversed():
                self.status = InvoiceStatus.FOR_SALE
                self.financed_by = None
            case InvoiceWithdrawn():
                self.status = InvoiceStatus.WITHDRAWN
