"""The events of the financing domain and the registry that names them.

Events are facts in the past tense. Each belongs to the stream of one aggregate:
``Issuer``, ``Investor`` or ``Invoice``. An event carries what a reader of the relayed
stream needs without loading anything else: the read models and the choreography work
from the events alone (the aggregate id comes with the relayed message).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from esrc_core.personal_data import KeyStore, MemoryKeyStore, PersonalData, PersonalDataMarshaler

from esrc_core import EventRegistry

__all__ = [
    "BidAccepted",
    "BidPlaced",
    "BidRejected",
    "CommittedFundsReturned",
    "FinancingReversed",
    "FundsCommitted",
    "FundsDeposited",
    "InvestorForgotten",
    "InvestorRegistered",
    "InvoicePutForSale",
    "InvoiceWithdrawn",
    "IssuerRegistered",
    "IssuerSuspended",
    "ReservedFundsReleased",
    "key_store",
    "registry",
    "use_key_store",
]

registry = EventRegistry(PersonalDataMarshaler(MemoryKeyStore()))
"""Every event of the domain, registered under its class name. Investor names are
personal data, encrypted per investor with the keys of :func:`key_store` (in memory
until :func:`use_key_store` gives another)."""


def use_key_store(keys: KeyStore) -> None:
    """Encrypt and decrypt investors' personal data with ``keys`` from now on (a
    :class:`~esrc_sqlalchemy.keys.SqlKeyStore` beside the events, say)."""
    registry.marshaler = PersonalDataMarshaler(keys)


def key_store() -> KeyStore:
    """The key store investors' personal data is encrypted with."""
    marshaler = registry.marshaler
    if not isinstance(marshaler, PersonalDataMarshaler):
        raise TypeError("the financing registry's marshaler must be a PersonalDataMarshaler")
    return marshaler.keys


# Issuer


@registry.register
@dataclass(frozen=True)
class IssuerRegistered:
    """An issuer (a business that sells its invoices) joined the marketplace."""

    issuer_id: uuid.UUID
    name: str


@registry.register(version=2)
@dataclass(frozen=True)
class IssuerSuspended:
    """The issuer may no longer put invoices up for sale.

    Schema version 2: version 1 named the field ``why``; events stored at version 1
    are upcast on read (:func:`_issuer_suspended_v1`), so this class decodes version 2
    only."""

    reason: str


@registry.upcaster("IssuerSuspended", 1)
def _issuer_suspended_v1(stored: dict[str, Any]) -> dict[str, Any]:
    """``IssuerSuspended`` version 1 to 2: ``why`` was renamed ``reason``."""
    return {"reason": stored["why"]}


# Investor


@registry.register
@dataclass(frozen=True)
class InvestorRegistered:
    """An investor joined the marketplace, with no funds yet."""

    investor_id: uuid.UUID
    name: Annotated[str, PersonalData(subject="investor_id")]
    """Personal data: encrypted in the store, ``"<forgotten>"`` once the investor is."""


@registry.register
@dataclass(frozen=True)
class InvestorForgotten:
    """The investor asked to be forgotten: their key is deleted, so their name reads
    as ``"<forgotten>"`` from now on; read models erase their copies of it."""


@registry.register
@dataclass(frozen=True)
class FundsDeposited:
    """``amount`` was added to the investor's available balance."""

    amount: Decimal


@registry.register
@dataclass(frozen=True)
class BidPlaced:
    """The investor bid ``amount`` on an invoice; the amount moved from available to
    reserved until the invoice accepts or rejects the bid."""

    bid_id: uuid.UUID
    invoice_id: uuid.UUID
    amount: Decimal


@registry.register
@dataclass(frozen=True)
class FundsCommitted:
    """The bid was accepted: its reserved amount is now committed to the invoice."""

    bid_id: uuid.UUID
    invoice_id: uuid.UUID
    amount: Decimal


@registry.register
@dataclass(frozen=True)
class ReservedFundsReleased:
    """The bid was rejected: its reserved amount is available again (compensation)."""

    bid_id: uuid.UUID
    invoice_id: uuid.UUID
    amount: Decimal
    reason: str


@registry.register
@dataclass(frozen=True)
class CommittedFundsReturned:
    """The invoice's financing was reversed: the committed amount is available again
    (compensation)."""

    bid_id: uuid.UUID
    invoice_id: uuid.UUID
    amount: Decimal
    reason: str


# Invoice


@registry.register
@dataclass(frozen=True)
class InvoicePutForSale:
    """An issuer offered an invoice of ``face_value`` for at least ``asking_price``."""

    invoice_id: uuid.UUID
    issuer_id: uuid.UUID
    number: str
    face_value: Decimal
    asking_price: Decimal


@registry.register
@dataclass(frozen=True)
class BidAccepted:
    """The invoice is financed by this bid."""

    bid_id: uuid.UUID
    investor_id: uuid.UUID
    amount: Decimal


@registry.register
@dataclass(frozen=True)
class BidRejected:
    """The invoice refused this bid, for ``reason``."""

    bid_id: uuid.UUID
    investor_id: uuid.UUID
    amount: Decimal
    reason: str


@registry.register
@dataclass(frozen=True)
class FinancingReversed:
    """The financing by this bid was undone and the invoice is for sale again."""

    bid_id: uuid.UUID
    investor_id: uuid.UUID
    amount: Decimal
    reason: str


@registry.register
@dataclass(frozen=True)
class InvoiceWithdrawn:
    """The issuer took the invoice off the market before it was financed; once every
    reader has seen this, the invoice's stream may be deleted."""

    reason: str
