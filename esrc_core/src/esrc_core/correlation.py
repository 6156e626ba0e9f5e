"""Correlation and causation: which command, and which event, led to an event.

Every event a :class:`~esrc_core.repository.Repository` (or a
:class:`~esrc_core.unit_of_work.UnitOfWork`) stores carries two metadata keys:

- ``correlation_id``: the same for every event that follows from one command, however
  many relayed events and handlers lie between them;
- ``causation_id``: the message id (:func:`~esrc_core.relay.message_id`,
  ``<type>/<encoded id>/<version>``) of the event whose handling stored this one;
  absent on the events of a command that no event caused.

Where they come from is a context variable, so it follows the code that runs a command
into threads started with :func:`contextvars.copy_context` (``asyncio.to_thread``
does) and into asyncio tasks:

- outside any context, each save (one :meth:`~esrc_core.repository.Repository.add`,
  ``update``, ``update_by_id``, or one unit of work's commit) starts a new
  correlation: a random UUID in its text form;
- :func:`correlation` opens a context with a correlation id of the caller's (a request
  id, say) or a new one, so that several saves of one command share it;
- :func:`handling` opens the context of handling a relayed event: the events stored
  inside it carry that event's correlation id (its own message id when it has none)
  and its message id as ``causation_id``. The consumer side's ``Projection``
  (``esrc_faststream.consumer``) runs every handler inside it.

Metadata given to a save explicitly (``metadata={...}``) wins over the context's.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CAUSATION_ID",
    "CORRELATION_ID",
    "Causation",
    "HandledMessage",
    "correlation",
    "correlation_metadata",
    "current_causation",
    "handling",
]

CORRELATION_ID = "correlation_id"
"""The metadata key of an event's correlation id."""
CAUSATION_ID = "causation_id"
"""The metadata key of the message id of the event that caused an event."""


@dataclass(frozen=True, slots=True)
class Causation:
    """The context saves run in: the correlation id the events they store carry, and
    the message id of the event being handled (``None`` when no event is)."""

    correlation_id: str
    causation_id: str | None = None

    def metadata(self) -> dict[str, str]:
        """The metadata keys an event stored in this context gets."""
        if self.causation_id is None:
            return {CORRELATION_ID: self.correlation_id}
        return {CORRELATION_ID: self.correlation_id, CAUSATION_ID: self.causation_id}


class HandledMessage(Protocol):
    """What :func:`handling` needs of an event: its message id and its metadata
    (:class:`~esrc_core.relay.RelayEvent` and
    :class:`~esrc_core.inspection.RecordedEvent` through their ``event``)."""

    @property
    def message_id(self) -> str:
        """The event's message id."""
        ...


_CURRENT: contextvars.ContextVar[Causation | None] = contextvars.ContextVar(
    "esrc_causation", default=None
)


def current_causation() -> Causation | None:
    """The context opened by the innermost :func:`correlation` or :func:`handling` in
    this thread or task, or ``None`` outside any."""
    return _CURRENT.get()


def correlation_metadata() -> dict[str, str]:
    """The ``correlation_id`` (and ``causation_id``) metadata of an event stored now:
    the current context's, or a new correlation id outside any context (each call
    then gives another)."""
    current = _CURRENT.get()
    if current is None:
        return {CORRELATION_ID: str(uuid.uuid4())}
    return current.metadata()


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty str, got {value!r}")
    return value


@contextlib.contextmanager
def correlation(correlation_id: str | None = None) -> Iterator[Causation]:
    """Open a correlation: every event stored inside (in this thread or task, and in
    those it starts with a copy of its context) carries ``correlation_id`` (a new random
    UUID as text when ``None``) and no ``causation_id``; yields the context. Inside
    :func:`handling` it starts a new correlation anyway. Raises ``ValueError`` for an
    empty or non-str id."""
    chosen = (
        str(uuid.uuid4()) if correlation_id is None else _text(correlation_id, "correlation_id")
    )
    context = Causation(chosen)
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def handling(
    event: HandledMessage | None = None,
    *,
    message_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Iterator[Causation]:
    """Open the context of handling a relayed event: every event stored inside carries
    the handled event's ``correlation_id`` (its own message id when its metadata has
    none: the chain then starts at it) and its message id as ``causation_id``; yields
    the context.

    Give the event (a :class:`~esrc_core.relay.RelayEvent`, whose ``event.metadata`` is
    read, or any object with a ``message_id`` and a ``metadata`` or ``event.metadata``),
    or its ``message_id`` and ``metadata`` when only those arrived (a broker message's
    headers). Raises ``ValueError`` when neither or both are given, or the message id
    is empty.
    """
    if (event is None) == (message_id is None):
        raise ValueError("handling() takes an event or a message_id, one of the two")
    if event is not None:
        cause = _text(event.message_id, "the handled event's message_id")
        raw = getattr(event, "event", None)
        found = getattr(raw if raw is not None else event, "metadata", None)
        meta: Mapping[str, str] = found if isinstance(found, Mapping) else {}
    else:
        cause = _text(message_id, "message_id")
        meta = metadata or {}
    correlation_id = meta.get(CORRELATION_ID)
    if not isinstance(correlation_id, str) or not correlation_id:
        correlation_id = cause
    context = Causation(correlation_id, cause)
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)
