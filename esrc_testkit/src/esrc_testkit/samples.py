"""Sample data the acceptance suite writes: events with awkward payloads, ids of every
accepted type, and values that are not ids."""

from __future__ import annotations

import uuid
from typing import Final

from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId

__all__ = [
    "AWKWARD_EVENTS",
    "INVALID_IDS",
    "ORDER",
    "SHIPMENT",
    "VALID_IDS",
    "events_for",
    "malformed_events",
]

ORDER: Final = "Order"
"""The aggregate type most tests write."""
SHIPMENT: Final = "Shipment"
"""A second aggregate type, to show that types separate streams."""

VALID_IDS: Final[tuple[AggregateId, ...]] = (
    uuid.UUID("6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"),
    "order-1",
    "Bestellung ✓ 注文",
    42,
    0,
    -7,
    2**63 - 1,
)
"""Ids of every accepted type, including unicode text, zero, negative and large ints."""

INVALID_IDS: Final[tuple[object, ...]] = (1.5, True, None, b"order-1", "")
"""Values that are not aggregate ids: a float, a bool, None, bytes and the empty str."""

AWKWARD_EVENTS: Final[tuple[RawEvent, ...]] = (
    RawEvent("Created", b'{"sku": "A-1"}', {"user": "ada", "trace": "t-1"}),
    RawEvent("Noted", b"\xff\xfe\x00\x80 not utf-8 \x00", {}),
    RawEvent("Emptied", b"", {"note": "Grüße ✓ 日本語 🚀", "": "empty key"}),
    RawEvent("Created", b"same name again", {"k": ""}),
)
"""Events whose round trip is easy to get wrong: non-UTF-8 bytes and NUL bytes, empty
data, empty and unicode metadata, an empty metadata key and value, a repeated name."""


def events_for(tag: str, count: int, *, start: int = 1) -> list[RawEvent]:
    """``count`` distinct events named after ``tag``, with data ``<tag>:<n>`` for
    n = ``start``, ``start + 1``, ... (so a test can tell which writer wrote what)."""
    return [
        RawEvent(f"{tag}Happened", f"{tag}:{n}".encode(), {"n": str(n), "tag": tag})
        for n in range(start, start + count)
    ]


def malformed_events(kind: str) -> list[RawEvent]:
    """Three events of which the third is malformed in the way ``kind`` names:
    ``"name"`` (name is not a str), ``"data"`` (data is a str) or ``"metadata"``
    (a metadata value is not a str)."""
    good = events_for("Good", 2)
    bad: RawEvent
    if kind == "name":
        bad = RawEvent(123, b"x")  # type: ignore[arg-type]
    elif kind == "data":
        bad = RawEvent("BadData", "not bytes")  # type: ignore[arg-type]
    elif kind == "metadata":
        bad = RawEvent("BadMetadata", b"x", {"n": 3})  # type: ignore[dict-item]
    else:
        raise ValueError(f"unknown kind of malformed event: {kind!r}")
    return [*good, bad]
