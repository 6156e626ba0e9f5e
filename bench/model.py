"""The aggregate the benchmark stores and loads: a shopping basket that items are added to.

Its events are ordinary dataclasses encoded by the default
:class:`~esrc_core.JsonMarshaler`, so loading it through the
:class:`~esrc_core.Repository` pays the decoding a real application pays.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Self

from esrc_core import AggregateId, EventRaiserAggregate, EventRegistry, RawEvent

__all__ = [
    "AGGREGATE_TYPE",
    "Basket",
    "BasketOpened",
    "ItemAdded",
    "basket_history",
    "default_metadata",
    "raw_history",
    "registry",
]

AGGREGATE_TYPE = "BenchBasket"
"""The aggregate type of every stream the benchmark writes."""

registry = EventRegistry()
"""Maps the basket's event classes to their names."""


@registry.register
@dataclass(frozen=True)
class BasketOpened:
    """The first event of every basket stream."""

    basket_id: uuid.UUID
    customer: str


@registry.register
@dataclass(frozen=True)
class ItemAdded:
    """``quantity`` of ``sku`` were put in the basket at ``unit_price_cents`` each."""

    sku: str
    quantity: int
    unit_price_cents: int
    note: str


class Basket(EventRaiserAggregate):
    """Counts the items, the quantity and the total price of everything added.

    Supports snapshots: :meth:`snapshot` and :meth:`restore` round-trip its state as JSON.
    """

    customer = ""
    items = 0
    quantity = 0
    total_cents = 0

    def __init__(self, basket_id: uuid.UUID, customer: str) -> None:
        super().__init__()
        self.raise_event(BasketOpened(basket_id, customer))

    def on_event(self, event: object) -> None:
        """Apply one basket event to the counters."""
        match event:
            case BasketOpened(basket_id=basket_id, customer=customer):
                self.id = basket_id
                self.customer = customer
            case ItemAdded(quantity=quantity, unit_price_cents=price):
                self.items += 1
                self.quantity += quantity
                self.total_cents += quantity * price
            case _:
                raise TypeError(f"Basket cannot apply {type(event).__qualname__}")

    def snapshot(self) -> bytes:
        """The counters as JSON bytes."""
        state = {
            "customer": self.customer,
            "items": self.items,
            "quantity": self.quantity,
            "total_cents": self.total_cents,
        }
        return json.dumps(state, separators=(",", ":")).encode()

    @classmethod
    def restore(cls, aggregate_id: AggregateId, data: bytes) -> Self:
        """Rebuild a basket from :meth:`snapshot` bytes."""
        state = json.loads(data)
        basket = cls.blank()
        basket.id = aggregate_id
        basket.customer = state["customer"]
        basket.items = state["items"]
        basket.quantity = state["quantity"]
        basket.total_cents = state["total_cents"]
        return basket


def basket_history(basket_id: uuid.UUID, count: int, *, first: int = 1) -> list[object]:
    """The ``count`` events (1 or more) of a basket at versions ``first`` on: version 1
    opens it, every later version adds an item.

    The payloads vary from event to event (about 70 bytes of JSON each) and are the
    same for the same arguments, so a long stream can be built in parts.
    """
    if count < 1 or first < 1:
        raise ValueError(
            f"a basket history has at least one event from version 1 on, got {count} "
            f"from version {first}"
        )
    history: list[object] = []
    if first == 1:
        history.append(BasketOpened(basket_id, f"customer-{basket_id.hex[:12]}"))
    history.extend(
        ItemAdded(
            sku=f"SKU-{(index * 7919) % 100_000:05d}",
            quantity=1 + index % 5,
            unit_price_cents=199 + (index * 37) % 5_000,
            note="gift wrap" if index % 3 == 0 else "",
        )
        for index in range(max(first - 1, 1), first - 1 + count)
    )
    return history


def raw_history(
    basket_id: uuid.UUID,
    count: int,
    metadata: dict[str, str] | None = None,
    *,
    first: int = 1,
) -> list[RawEvent]:
    """:func:`basket_history` encoded through :data:`registry`, with ``metadata`` on
    every event (by default a correlation id and a user, as an application would add)."""
    meta = metadata if metadata is not None else default_metadata()
    return [registry.to_raw(event, meta) for event in basket_history(basket_id, count, first=first)]


def default_metadata() -> dict[str, str]:
    """The metadata the benchmark puts on its events: a fresh correlation id and a user."""
    return {"correlation_id": str(uuid.uuid4()), "user": "bench"}
