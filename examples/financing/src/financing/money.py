"""Amounts of money: exact decimals with two places, and how the read side stores them.

The domain uses :class:`~decimal.Decimal` throughout, never ``float``. The read models
keep amounts as whole cents in integer columns, so that SQL arithmetic is exact on every
database.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from financing.errors import InvalidAmount

__all__ = ["CENT", "format_money", "from_cents", "money", "to_cents"]

CENT = Decimal("0.01")
"""The smallest amount: one cent."""


def money(value: Decimal | int | str, *, what: str = "amount") -> Decimal:
    """``value`` as a positive :class:`~decimal.Decimal` with exactly two places.

    Raises :class:`~financing.errors.InvalidAmount` (naming ``what``) when ``value`` is
    not a number, not finite, zero or negative, or has fractions of a cent.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise InvalidAmount(f"{what} must be a Decimal, int or str, got {type(value).__name__}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise InvalidAmount(f"{what} {value!r} is not a number") from None
    if not amount.is_finite():
        raise InvalidAmount(f"{what} {value!r} is not a finite number")
    if amount <= 0:
        raise InvalidAmount(f"{what} must be positive, got {amount}")
    cents = amount.quantize(CENT)
    if cents != amount:
        raise InvalidAmount(f"{what} {amount} has fractions of a cent")
    return cents


def to_cents(amount: Decimal) -> int:
    """``amount`` in whole cents; raises ``ValueError`` for fractions of a cent."""
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount} has fractions of a cent")
    return int(cents)


def from_cents(cents: int) -> Decimal:
    """The amount of ``cents`` whole cents, with two places."""
    return (Decimal(cents) / 100).quantize(CENT)


def format_money(amount: Decimal) -> str:
    """``amount`` with a thousands separator and two places: ``12,500.00``."""
    return f"{amount.quantize(CENT):,.2f}"
