"""Given / when / then for aggregate tests.

An aggregate test states the history, runs one command, and names the events the
command must raise, or the error it must raise::

    given(Account, AccountOpened(id, "Ada"), MoneyDeposited(100)).when(
        lambda account: account.withdraw(30)
    ).then(MoneyWithdrawn(30))

    given(Account, AccountOpened(id, "Ada")).when(
        lambda account: account.withdraw(30)
    ).then_raises(InsufficientFunds, match="balance 0")

:func:`given` rebuilds the aggregate from the history with the factory's
``from_events`` (no ``__init__``, as the repository does). A command that *creates* an
aggregate returns it, and the outcome is about the new aggregate::

    given(Account).when(lambda _: Account(id, "Ada")).then(AccountOpened(id, "Ada"))

Beyond comparing events, the checks catch two common mistakes: with a ``registry``,
every expected event must survive encoding and decoding (it is registered and
serializable); and :meth:`Outcome.then` rebuilds the aggregate from the history plus the
new events and requires the same state as the command left, so state changed outside
``on_event`` (which would be lost on the next load) fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, cast

from esrc_core.aggregate import Aggregate, AggregateFactory
from esrc_core.events import EventRegistry
from esrc_core.ids import AggregateId

__all__ = ["DEFAULT_AGGREGATE_ID", "Given", "Outcome", "given"]

A = TypeVar("A", bound=Aggregate)
E = TypeVar("E", bound=BaseException)

DEFAULT_AGGREGATE_ID: AggregateId = "aggregate-under-test"
"""The id :func:`given` passes to the factory unless told otherwise (an
``EventRaiserAggregate`` takes its id from its creation event instead)."""


def given(
    factory: AggregateFactory[A],
    *history: object,
    aggregate_id: AggregateId = DEFAULT_AGGREGATE_ID,
    registry: EventRegistry | None = None,
) -> Given[A]:
    """Start a test of an aggregate built by ``factory`` from the events ``history``
    (oldest first; none for a command that creates the aggregate).

    With ``registry``, :meth:`Outcome.then` also checks that each expected event is
    registered and comes back equal from :meth:`EventRegistry.to_raw
    <esrc_core.events.EventRegistry.to_raw>` and ``from_raw``.
    """
    return Given(factory, tuple(history), aggregate_id, registry)


def _state(aggregate: object) -> dict[str, Any]:
    """An aggregate's own attributes, without the change tracking of the base class."""
    attributes = getattr(aggregate, "__dict__", {})
    return {k: v for k, v in attributes.items() if not k.startswith("_esrc_")}


class Given(Generic[A]):
    """The history of an aggregate test; :meth:`when` runs the command."""

    def __init__(
        self,
        factory: AggregateFactory[A],
        history: tuple[object, ...],
        aggregate_id: AggregateId,
        registry: EventRegistry | None,
    ) -> None:
        self.factory = factory
        self.history = history
        self.aggregate_id = aggregate_id
        self.registry = registry

    def aggregate(self) -> A:
        """A new aggregate rebuilt from the history; its ``changes`` are empty."""
        return self.factory.from_events(self.aggregate_id, list(self.history))

    def when(self, command: Callable[[A], object]) -> Outcome[A]:
        """Run ``command`` on a new aggregate rebuilt from the history, catching what
        it raises; the :class:`Outcome` states what must have happened.

        If ``command`` returns an aggregate other than the one it was given (it created
        one), the outcome is about the returned aggregate.
        """
        aggregate = self.aggregate()
        error: BaseException | None = None
        try:
            returned = command(aggregate)
        except Exception as err:
            error = err
        else:
            if returned is not aggregate and isinstance(returned, Aggregate):
                aggregate = cast(A, returned)
        return Outcome(self, aggregate, error)


class Outcome(Generic[A]):
    """What a command did: the events it raised (the aggregate's ``changes``) or the
    exception it raised."""

    def __init__(self, given: Given[A], aggregate: A, error: BaseException | None) -> None:
        self.given = given
        self.aggregate = aggregate
        """The aggregate after the command."""
        self.error = error
        """The exception the command raised, if any."""

    def then(self, *events: object) -> A:
        """Require that the command raised exactly ``events``, in order (none: it
        changed nothing), and return the aggregate.

        Fails when the command raised an exception, when the events differ (the message
        shows both lists), when an event does not survive the registry's encoding (with
        ``registry=``), and when the aggregate rebuilt from the history plus ``events``
        has a different state from the one the command left.
        """
        __tracebackhide__ = True
        if self.error is not None:
            raise AssertionError(
                f"expected the command to raise events {_listed(events)}, but it raised "
                f"{type(self.error).__name__}: {self.error}"
            ) from self.error
        got = list(self.aggregate.changes)
        if got != list(events):
            raise AssertionError(
                f"the command raised other events than expected\n"
                f"  got:  {_listed(got)}\n  want: {_listed(events)}"
            )
        if self.given.registry is not None:
            _check_encoding(self.given.registry, events)
        self._check_replay(events)
        return self.aggregate

    def then_nothing(self) -> A:
        """Require that the command raised no event and no exception."""
        __tracebackhide__ = True
        return self.then()

    def then_raises(self, error: type[E], *, match: str | None = None) -> E:
        """Require that the command raised ``error`` (or a subclass), whose message
        contains a match for the regular expression ``match`` when given, and that it
        recorded no event; return the exception."""
        __tracebackhide__ = True
        if self.error is None:
            raise AssertionError(
                f"expected the command to raise {error.__name__}, but it raised events "
                f"{_listed(self.aggregate.changes)}"
            )
        if not isinstance(self.error, error):
            raise AssertionError(
                f"expected the command to raise {error.__name__}, but it raised "
                f"{type(self.error).__name__}: {self.error}"
            ) from self.error
        if match is not None and not re.search(match, str(self.error)):
            raise AssertionError(
                f"{type(self.error).__name__} was raised, but its message does not match "
                f"{match!r}\n  message: {self.error}"
            )
        if self.aggregate.changes:
            raise AssertionError(
                f"the command raised {type(self.error).__name__} but left events behind: "
                f"{_listed(self.aggregate.changes)}; a refused command must record nothing"
            )
        return self.error

    def _check_replay(self, events: Sequence[object]) -> None:
        __tracebackhide__ = True
        given = self.given
        history = [*given.history, *events]
        try:
            rebuilt = given.factory.from_events(given.aggregate_id, history)
        except Exception as err:
            raise AssertionError(
                f"the aggregate cannot be rebuilt from the history plus the new events: "
                f"{type(err).__name__}: {err}"
            ) from err
        want, got = _state(self.aggregate), _state(rebuilt)
        if got != want:
            differing = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
            details = "\n".join(
                f"  {key}: after the command {want.get(key, '<unset>')!r}, "
                f"rebuilt {got.get(key, '<unset>')!r}"
                for key in differing
            )
            raise AssertionError(
                "the aggregate rebuilt from its events differs from the one the command "
                "left (state changed outside on_event is lost on the next load):\n" + details
            )


def _check_encoding(registry: EventRegistry, events: Sequence[object]) -> None:
    __tracebackhide__ = True
    for index, event in enumerate(events):
        try:
            decoded = registry.from_raw(registry.to_raw(event))
        except Exception as err:
            raise AssertionError(
                f"event {index} ({type(event).__name__}) cannot go through the registry: "
                f"{type(err).__name__}: {err}"
            ) from err
        if decoded != event:
            raise AssertionError(
                f"event {index} changes when encoded and decoded by the registry\n"
                f"  before: {event!r}\n  after:  {decoded!r}"
            )


def _listed(events: Sequence[object]) -> str:
    return "[" + ", ".join(repr(e) for e in events) + "]" if events else "[] (no events)"
