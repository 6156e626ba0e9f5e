"""Assertions the acceptance suite and the state machine share. Each failure message
says what was checked and shows what the store returned and what was expected."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId, encode_id
from esrc_core.relay import RelayEvent, message_id

__all__ = [
    "assert_events_equal",
    "assert_order_consistent_with_versions",
    "comparable",
    "stream_key",
]

Comparable = tuple[str, bytes, dict[str, str]]


def stream_key(aggregate_type: str, aggregate_id: AggregateId) -> tuple[str, str]:
    """A hashable key of a stream that keeps ``42`` and ``"42"`` apart."""
    return aggregate_type, encode_id(aggregate_id)


def comparable(events: Iterable[RawEvent], *, what: str) -> list[Comparable]:
    """``events`` as (name, data, metadata dict) tuples, after checking that each is a
    :class:`RawEvent` with a ``str`` name, ``bytes`` data (not a bytearray or memoryview)
    and ``str`` metadata; ``what`` names the read, for the message."""
    result: list[Comparable] = []
    for index, event in enumerate(events):
        assert isinstance(event, RawEvent), f"{what}: item {index} is {event!r}, not a RawEvent"
        assert type(event.name) is str, f"{what}: event {index} name is {event.name!r}"
        assert type(event.data) is bytes, (
            f"{what}: event {index} data has type {type(event.data).__name__}, want bytes"
        )
        metadata = dict(event.metadata)
        for key, value in metadata.items():
            assert type(key) is str, f"{what}: event {index} metadata key {key!r} is not a str"
            assert type(value) is str, f"{what}: event {index} metadata {key!r}: {value!r}"
        result.append((event.name, event.data, metadata))
    return result


def assert_events_equal(got: Sequence[RawEvent], want: Sequence[RawEvent], *, what: str) -> None:
    """Assert that ``got`` holds exactly ``want``: same length, names, bytes and metadata,
    in order."""
    assert isinstance(got, list), f"{what}: returned {type(got).__name__}, want list"
    got_items = comparable(got, what=what)
    want_items = [(e.name, e.data, dict(e.metadata)) for e in want]
    assert len(got_items) == len(want_items), (
        f"{what}: got {len(got_items)} events, want {len(want_items)}\n"
        f"got:  {got_items!r}\nwant: {want_items!r}"
    )
    for index, (g, w) in enumerate(zip(got_items, want_items, strict=True)):
        assert g == w, (
            f"{what}: event {index} (version {index + 1}) differs\ngot:  {g!r}\nwant: {w!r}"
        )


def assert_order_consistent_with_versions(
    events: Sequence[RelayEvent], *, what: str, complete: bool = True
) -> None:
    """Assert that ``events`` (an outbox's order) lists each stream's versions in order
    without gaps or repeats, positions without repeats, and message ids that are the
    deterministic ``message_id`` of each event.

    With ``complete`` (the whole order of a relay that marked nothing) every stream must
    start at version 1; without it, a stream may start anywhere.
    """
    next_version: dict[tuple[str, str], int] = {}
    for index, relayed in enumerate(events):
        assert isinstance(relayed, RelayEvent), f"{what}: item {index} is {relayed!r}"
        key = stream_key(relayed.aggregate_type, relayed.aggregate_id)
        want = next_version.get(key, 1 if complete else relayed.version)
        assert relayed.version == want, (
            f"{what}: item {index} is {relayed.message_id} but the next version of "
            f"{relayed.aggregate_type} {relayed.aggregate_id!r} in the order is {want}; "
            f"order: {[e.message_id for e in events]}"
        )
        next_version[key] = want + 1
        assert relayed.message_id == message_id(
            relayed.aggregate_type, relayed.aggregate_id, relayed.version
        ), f"{what}: item {index} has message id {relayed.message_id!r}"
    positions = Counter(e.position for e in events)
    repeated = sorted(p for p, n in positions.items() if n > 1)
    assert not repeated, f"{what}: positions {repeated} appear more than once"
