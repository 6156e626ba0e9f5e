"""Atomic appends to several streams (capability ``units-of-work``): the store-level
half of a unit of work.

:class:`AtomicAppends` is the protocol a store offers when it can store the events of
several streams in one atomic operation, each stream at its own expected version;
:class:`StreamAppend` is one stream's part of it. :func:`check_appends` is the one
check of what such a call takes, shared by every backend so that all of them refuse
the same input the same way, before anything is written. The repository-level unit of
work that users call is :class:`esrc_core.unit_of_work.UnitOfWork`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from esrc_core.errors import AggregateRequiresEvents
from esrc_core.events import RawEvent, check_events
from esrc_core.ids import AggregateId, check_aggregate_type, check_id, encode_id
from esrc_core.store import INT64_MAX, check_int

__all__ = ["AtomicAppends", "StreamAppend", "check_appends"]


@dataclass(frozen=True)
class StreamAppend:
    """One stream's part of an atomic append: store ``events`` in the stream
    (``aggregate_type``, ``aggregate_id``) when it is at ``expected_version``.

    ``expected_version`` 0 creates the stream (as
    :meth:`~esrc_core.store.EventStore.add_aggregate`: it must not exist); any other
    version appends to an existing stream that is at exactly that version (as
    :meth:`~esrc_core.store.EventStore.append_events`).
    """

    aggregate_type: str
    aggregate_id: AggregateId
    expected_version: int
    events: Sequence[RawEvent] = field(default_factory=tuple)

    @property
    def creates(self) -> bool:
        """Whether this part creates its stream (``expected_version`` 0)."""
        return self.expected_version == 0

    def describe(self) -> str:
        """The part in words for messages: ``add order 'o-1'`` or ``append to order
        'o-1' at version 3``."""
        if self.creates:
            return f"add {self.aggregate_type} {self.aggregate_id!r}"
        return (
            f"append to {self.aggregate_type} {self.aggregate_id!r} at version "
            f"{self.expected_version}"
        )


@runtime_checkable
class AtomicAppends(Protocol):
    """An :class:`~esrc_core.store.EventStore` that appends to several streams in one
    atomic operation (capability ``units-of-work``).

    Contract, checked by ``esrc_testkit``:

    - :meth:`append_streams` stores the events of every part, or of none: when one
      part fails, nothing of any part is stored, and readers (and the outbox) never
      see some parts without the others.
    - Each part keeps the rules of a single append: a part at expected version 0
      raises :class:`~esrc_core.errors.AggregateAlreadyExists` when its stream exists;
      any other part raises :class:`~esrc_core.errors.OptimisticConcurrencyError` when
      its stream is not at that version (or does not exist). The message names the
      stream that failed (:meth:`StreamAppend.describe`).
    - Concurrent units that share a stream at one version: exactly one of them is
      stored (the others raise as above), as with single appends.
    - The outbox gives every event of a unit once, in an order consistent with each
      stream's versions; within a unit, the events of each part keep their order.
    - Input is checked with :func:`check_appends` before anything is written.
    - Thread-safe as the store's other methods are.
    """

    def append_streams(self, appends: Sequence[StreamAppend]) -> None:
        """Store every part of ``appends`` atomically (see the class docstring). An
        empty sequence stores nothing and returns."""
        ...


def check_appends(
    appends: Sequence[StreamAppend], *, doing: str = "append to several streams"
) -> list[StreamAppend]:
    """``appends`` as a list, after checking each part as a single append is checked
    (aggregate type and id, an expected version from 0 to the most the events leave
    room for, at least one well-formed event) and that no stream appears twice.

    Raises ``TypeError`` when ``appends`` is not a sequence of :class:`StreamAppend`,
    ``ValueError`` for a stream named twice,
    :class:`~esrc_core.errors.AggregateRequiresEvents` for a part without events and
    the errors of :func:`~esrc_core.ids.check_id`,
    :func:`~esrc_core.store.check_int` and :func:`~esrc_core.events.check_events`,
    each message naming the part at fault. Reads and writes nothing.
    """
    if isinstance(appends, str | bytes | StreamAppend) or not isinstance(appends, Sequence):
        raise TypeError(f"{doing}: expected a sequence of StreamAppend, got {appends!r:.80}")
    seen: dict[tuple[str, str], int] = {}
    checked: list[StreamAppend] = []
    for index, part in enumerate(appends):
        if not isinstance(part, StreamAppend):
            raise TypeError(f"{doing}: part {index} is a {type(part).__name__}, not a StreamAppend")
        where = f"{doing}: part {index} ({part.describe()})"
        check_aggregate_type(part.aggregate_type, doing=where)
        key = (part.aggregate_type, encode_id(check_id(part.aggregate_id, doing=where)))
        check_events(part.events, doing=where)
        if not part.events:
            raise AggregateRequiresEvents(f"{where}: no events")
        check_int(
            part.expected_version,
            "expected_version",
            doing=where,
            maximum=INT64_MAX - len(part.events),
        )
        if key in seen:
            raise ValueError(
                f"{where}: the stream is part {seen[key]} already; a unit of work "
                "appends to each stream once"
            )
        seen[key] = index
        checked.append(part)
    return checked
