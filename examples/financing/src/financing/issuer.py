"""The ``Issuer`` aggregate: a business that sells its invoices."""

from __future__ import annotations

import uuid
from decimal import Decimal

from esrc_core import EventRaiserAggregate
from financing.errors import IssuerNotActive
from financing.events import IssuerRegistered, IssuerSuspended
from financing.invoice import Invoice, invoice_id_for

__all__ = ["Issuer"]


class Issuer(EventRaiserAggregate):
    """An issuer of invoices.

    Invariant: a suspended issuer puts no invoice up for sale. The issuer decides
    whether an invoice may be sold and builds it (:meth:`put_invoice_for_sale`), but the
    sale is recorded in the new invoice's own stream: the issuer's stream does not
    change, so selling invoices never contends with other commands on the issuer.
    """

    id: uuid.UUID
    name = ""
    suspended_because: str | None = None

    def __init__(self, issuer_id: uuid.UUID, name: str) -> None:
        super().__init__()
        if not name.strip():
            raise ValueError("an issuer needs a name")
        self.raise_event(IssuerRegistered(issuer_id, name.strip()))

    @property
    def active(self) -> bool:
        """Whether the issuer may put invoices up for sale."""
        return self.suspended_because is None

    def suspend(self, reason: str) -> None:
        """Stop the issuer from selling invoices; suspending twice records nothing."""
        if self.active:
            self.raise_event(IssuerSuspended(reason))

    def put_invoice_for_sale(
        self,
        number: str,
        face_value: Decimal | int | str,
        asking_price: Decimal | int | str,
    ) -> Invoice:
        """A new :class:`~financing.invoice.Invoice` of this issuer, for sale (not yet
        saved). Its id comes from :func:`~financing.invoice.invoice_id_for`.

        Raises :class:`~financing.errors.IssuerNotActive` when the issuer is suspended.
        """
        number = number.strip()
        if not self.active:
            raise IssuerNotActive(
                f"put invoice {number} of issuer {self.name} ({self.id}) up for sale: "
                f"the issuer is suspended ({self.suspended_because})"
            )
        return Invoice(invoice_id_for(self.id, number), self.id, number, face_value, asking_price)

    def on_event(self, event: object) -> None:
        """Apply one issuer event."""
        match event:
            case IssuerRegistered(issuer_id=issuer_id, name=name):
                self.id = issuer_id
                self.name = name
            case IssuerSuspended(reason=reason):
                self.suspended_because = reason
