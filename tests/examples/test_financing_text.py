"""Money amounts and the plain text tables the demo prints."""

from __future__ import annotations

from decimal import Decimal

import pytest
from financing.errors import InvalidAmount
from financing.money import format_money, from_cents, money, to_cents
from financing.tables import render_table


@pytest.mark.parametrize(
    ("value", "want"),
    [("12", Decimal("12.00")), (7, Decimal("7.00")), (Decimal("0.10"), Decimal("0.10"))],
)
def test_money_gives_two_places(value: str | int | Decimal, want: Decimal) -> None:
    amount = money(value)
    assert amount == want
    assert amount.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be positive"),
        ("-1", "must be positive"),
        ("0.001", "fractions of a cent"),
        ("Infinity", "not a finite number"),
        ("ten", "not a number"),
        (1.5, "got float"),
        (True, "got bool"),
    ],
)
def test_money_refuses_what_is_not_an_amount(value: object, message: str) -> None:
    with pytest.raises(InvalidAmount, match=message):
        money(value, what="bid")  # type: ignore[arg-type]


def test_cents_round_trip_and_formatting() -> None:
    assert to_cents(Decimal("1234.56")) == 123456
    assert from_cents(123456) == Decimal("1234.56")
    assert format_money(Decimal("1234567.5")) == "1,234,567.50"
    with pytest.raises(ValueError, match="fractions of a cent"):
        to_cents(Decimal("0.005"))


def test_render_table_aligns_columns() -> None:
    text = render_table(
        ["name", "amount"],
        [("Ada", "1.00"), ("Benjamin", "1,000.00"), ("Cleo", None)],
        right=[1],
        title="Balances",
    )
    assert text.splitlines() == [
        "Balances",
        "name        amount",
        "--------  --------",
        "Ada           1.00",
        "Benjamin  1,000.00",
        "Cleo",
    ]


def test_render_table_refuses_ragged_rows() -> None:
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 headers"):
        render_table(["a", "b"], [("1", "2"), ("3",)])
