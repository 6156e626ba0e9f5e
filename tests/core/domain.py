"""A small domain shared by the aggregate, repository and relay tests: a counter."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Self

from esrc_core import AggregateId, EventRaiserAggregate, EventRegistry

registry = EventRegistry()
"""The counter's events."""


@registry.register
@dataclass(frozen=True)
class CounterCreated:
    """A counter was created with ``counter_id``."""

    counter_id: str


@registry.register
@dataclass(frozen=True)
class Incremented:
    """The counter went up by ``by``."""

    by: int = 1


@registry.register
@dataclass(frozen=True)
class Refused:
    """An event whose handler always raises (to test that nothing is recorded)."""


class Counter(EventRaiserAggregate):
    """A counter that supports snapshots and records when it was restored from one."""

    value = 0
    restored_from: int | None = None
    """The counter value read from the snapshot, when it was loaded from one."""

    def __init__(self, counter_id: str) -> None:
        super().__init__()
        self.raise_event(CounterCreated(counter_id))

    def increment(self, by: int = 1) -> None:
        """Raise ``Incremented(by)``."""
        self.raise_event(Incremented(by))

    def on_event(self, event: object) -> None:
        """Apply one counter event; ``Refused`` raises ``ValueError``."""
        match event:
            case CounterCreated(counter_id=counter_id):
                self.id = counter_id
            case Incremented(by=by):
                self.value += by
            case Refused():
                raise ValueError("refused")
            case _:
                raise TypeError(f"unknown event {event!r}")

    def snapshot(self) -> bytes:
        """The value as JSON."""
        return json.dumps({"value": self.value}).encode()

    @classmethod
    def restore(cls, aggregate_id: AggregateId, data: bytes) -> Self:
        """Rebuild from :meth:`snapshot` bytes and record that a snapshot was used."""
        counter = cls.blank()
        counter.id = aggregate_id
        counter.value = json.loads(data)["value"]
        counter.restored_from = counter.value
        return counter


class PlainCounter(EventRaiserAggregate):
    """A counter without snapshot support."""

    value = 0

    def __init__(self, counter_id: AggregateId) -> None:
        super().__init__()
        self.raise_event(CounterCreated(str(counter_id)))
        self.id = counter_id

    def on_event(self, event: object) -> None:
        """Apply one counter event."""
        match event:
            case Incremented(by=by):
                self.value += by
            case _:
                pass
