"""The business rules the financing domain refuses to break.

Each is a :class:`FinancingError`. A command that breaks a rule raises one and records
no event. These are the application's own errors: failures of the store, the relay or a
broker are esrc's (:class:`esrc_core.EsrcError` and its subclasses).
"""

from __future__ import annotations

__all__ = [
    "BidStateError",
    "DuplicateBid",
    "FinancingError",
    "InsufficientFunds",
    "InvalidAmount",
    "InvoiceNotFinanced",
    "InvoiceNotForSale",
    "InvoiceNotWithdrawn",
    "IssuerNotActive",
    "UnknownAggregate",
    "UnknownBid",
]


class FinancingError(Exception):
    """A command was refused because it would break a business rule."""


class InvalidAmount(FinancingError, ValueError):
    """An amount is not a positive number of whole cents."""


class InsufficientFunds(FinancingError):
    """A bid is larger than the investor's available balance."""


class DuplicateBid(FinancingError):
    """The investor already has an open (reserved or committed) bid on the invoice."""


class UnknownBid(FinancingError, LookupError):
    """The investor has no bid with this id."""


class BidStateError(FinancingError):
    """The bid is not in a state that allows the step: funds are reserved, then either
    committed or released; committed funds may later be returned, and nothing else."""


class InvoiceNotForSale(FinancingError):
    """The invoice is already financed (bids are refused until a reversal re-opens it)
    or withdrawn."""


class InvoiceNotWithdrawn(FinancingError):
    """Only a withdrawn invoice's stream may be deleted."""


class InvoiceNotFinanced(FinancingError):
    """Only a financed invoice can have its financing reversed."""


class IssuerNotActive(FinancingError):
    """A suspended issuer cannot put invoices up for sale."""


class UnknownAggregate(FinancingError, LookupError):
    """A command names an issuer, investor or invoice that does not exist."""
