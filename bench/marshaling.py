"""What msgspec gains JsonMarshaler: encode and decode of one small event, through
msgspec and through the hand-written path (``JsonMarshaler(use_msgspec=False)``).

``uv run nox -s bench-marshaling`` (or ``python -m bench.marshaling``) prints, for a
5-field dataclass (UUID, str, int, Decimal, bool) and for one that adds a float, a
list of nested dataclasses and a ``dict[str, Any]``, the microseconds per call of each
path and their ratio; both paths write the same bytes, which is checked first.
"""

from __future__ import annotations

import argparse
import timeit
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from esrc_core._json_exact import msgspec_codec

from esrc_core import JsonMarshaler

__all__ = ["Deposited", "Line", "OrderPlaced", "main", "measure"]


@dataclass(frozen=True)
class Deposited:
    """The 5-field event of the headline figure."""

    account_id: uuid.UUID
    reference: str
    sequence: int
    amount: Decimal
    confirmed: bool


@dataclass(frozen=True)
class Line:
    """A nested value of :class:`OrderPlaced`."""

    sku: str
    quantity: int
    price: Decimal


@dataclass(frozen=True)
class OrderPlaced:
    """A larger event: nested dataclasses, a float and values under ``Any``."""

    order_id: uuid.UUID
    customer: str
    lines: list[Line]
    discount: float
    attributes: dict[str, Any]


def _events() -> dict[str, object]:
    return {
        "Deposited (5 fields)": Deposited(
            uuid.uuid4(), "wire 2024-118", 42, Decimal("1250.75"), True
        ),
        "OrderPlaced (nested, float, Any)": OrderPlaced(
            uuid.uuid4(),
            "customer-7",
            [Line(f"sku-{n}", n + 1, Decimal("9.90")) for n in range(3)],
            0.15,
            {"channel": "web", "tags": ["gift", "express"], "score": 3},
        ),
    }


def _per_call(fn: Callable[[], object], seconds: float) -> float:
    """Seconds per call of ``fn``: the best of five runs of about ``seconds`` / 5."""
    timer = timeit.Timer(fn)
    number, elapsed = timer.autorange()
    runs = max(1, int(number * seconds / 5 / elapsed))
    return min(timer.repeat(repeat=5, number=runs)) / runs


def measure(event: object, seconds: float = 1.0) -> dict[str, float]:
    """Seconds per encode and per decode of ``event`` on each path (``fast_*`` through
    msgspec, ``plain_*`` hand-written). Raises ``RuntimeError`` if the event's class
    does not take the msgspec path or the two paths write different bytes."""
    cls: type[Any] = type(event)
    if msgspec_codec(cls) is None:
        raise RuntimeError(f"{cls.__qualname__} does not take the msgspec path")
    fast, plain = JsonMarshaler(), JsonMarshaler(use_msgspec=False)
    data = fast.marshal(event)
    if data != plain.marshal(event):
        raise RuntimeError(f"{cls.__qualname__}: the two paths write different bytes")
    return {
        "fast_encode": _per_call(lambda: fast.marshal(event), seconds),
        "plain_encode": _per_call(lambda: plain.marshal(event), seconds),
        "fast_decode": _per_call(lambda: fast.unmarshal(data, cls), seconds),
        "plain_decode": _per_call(lambda: plain.unmarshal(data, cls), seconds),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures; ``--seconds`` is the time spent per figure."""
    parser = argparse.ArgumentParser(prog="python -m bench.marshaling", description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per figure")
    options = parser.parse_args(argv)
    print(f"{'event':34} {'op':7} {'msgspec µs':>11} {'plain µs':>9} {'ratio':>6}")
    for name, event in _events().items():
        figures = measure(event, options.seconds)
        for op in ("encode", "decode"):
            fast, plain = figures[f"fast_{op}"], figures[f"plain_{op}"]
            print(f"{name:34} {op:7} {fast * 1e6:11.2f} {plain * 1e6:9.2f} {plain / fast:5.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
