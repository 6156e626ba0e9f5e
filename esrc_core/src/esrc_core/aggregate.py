"""Aggregates: the protocol the repository works with, and a base class that raises
events and tracks changes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

from esrc_core.errors import SnapshotNotSupported
from esrc_core.events import RawSnapshot
from esrc_core.ids import AggregateId

__all__ = ["Aggregate", "AggregateFactory", "EventRaiserAggregate", "StreamingFactory"]

T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class Aggregate(Protocol):
    """What a domain aggregate offers the :class:`~esrc_core.repository.Repository`.

    ``initial_version`` is the stream version the aggregate was loaded at (0 for a new
    one); ``changes`` are the events raised since, oldest first. After a successful save
    the repository calls :meth:`mark_changes_committed`, which must empty ``changes``
    and advance ``initial_version`` by their number.
    """

    @property
    def id(self) -> AggregateId:
        """The aggregate's id."""
        ...

    @property
    def initial_version(self) -> int:
        """The version the aggregate had when loaded or last saved."""
        ...

    @property
    def changes(self) -> Sequence[object]:
        """Events raised and not yet saved, oldest first."""
        ...

    def mark_changes_committed(self) -> None:
        """Forget the saved changes and advance ``initial_version`` past them."""
        ...

    def snapshot(self) -> bytes:
        """The aggregate's state as bytes, or raise
        :class:`~esrc_core.errors.SnapshotNotSupported`."""
        ...


class AggregateFactory(Protocol[T_co]):
    """Builds an aggregate from its history.

    Both methods receive decoded events, oldest first, and must return an aggregate
    whose ``initial_version`` is the version of the last event (or of the snapshot when
    there are no events after it) and whose ``changes`` are empty.

    The :class:`~esrc_core.repository.Repository` passes a list (so ``len`` and
    indexing work), which holds a whole stream in memory at once. A factory that
    consumes its events once, in order, says so by being a :class:`StreamingFactory`;
    it is then given an iterator that decodes events as they are read.
    """

    def from_events(self, aggregate_id: AggregateId, events: Sequence[object]) -> T_co:
        """Replay ``events`` (versions 1..n) into a new aggregate."""
        ...

    def from_snapshot(
        self, aggregate_id: AggregateId, snapshot: RawSnapshot, events: Sequence[object]
    ) -> T_co:
        """Restore ``snapshot`` and replay the ``events`` recorded after it."""
        ...


@runtime_checkable
class StreamingFactory(Protocol[T_co]):
    """An :class:`AggregateFactory` whose methods take any iterable of events and
    consume it once, in order, without ``len`` or indexing.

    A factory declares it with a ``replays_iterables`` attribute that is ``True``; the
    :class:`~esrc_core.repository.Repository` then replays a stream as it reads it,
    holding one page of events (see :class:`~esrc_core.store.StreamingStore`) rather
    than the whole stream. Errors raised while iterating (a store or decoding error)
    must propagate unchanged.
    """

    replays_iterables: bool
    """``True`` when :meth:`from_events` and :meth:`from_snapshot` accept iterators."""

    def from_events(self, aggregate_id: AggregateId, events: Iterable[object]) -> T_co:
        """Replay ``events`` (versions 1..n) into a new aggregate."""
        ...

    def from_snapshot(
        self, aggregate_id: AggregateId, snapshot: RawSnapshot, events: Iterable[object]
    ) -> T_co:
        """Restore ``snapshot`` and replay the ``events`` recorded after it."""
        ...


class EventRaiserAggregate:
    """Base class for aggregates that raise events and track their changes.

    Subclasses implement :meth:`on_event`, which applies one event to the state. A
    command method validates, then calls :meth:`raise_event`; rehydration replays
    stored events through the same :meth:`on_event`, so state changes live in one place::

        class Account(EventRaiserAggregate):
            def __init__(self, account_id: str) -> None:
                super().__init__()
                self.raise_event(AccountOpened(account_id))

            def on_event(self, event: object) -> None:
                match event:
                    case AccountOpened(account_id=account_id):
                        self.id = account_id

    :meth:`from_events` builds an instance without calling ``__init__`` (which would
    raise the creation event again), so every attribute must be set by an event handler
    or have a class-level default. To support snapshots, override :meth:`snapshot` and
    :meth:`restore`.

    The class is a :class:`StreamingFactory`: loading replays events one by one as
    they are read. A subclass that overrides :meth:`from_events` or
    :meth:`from_snapshot` is given lists instead (its ``replays_iterables`` becomes
    ``False``), unless it sets ``replays_iterables = True`` itself.
    """

    replays_iterables: ClassVar[bool] = True
    """Whether :meth:`from_events` and :meth:`from_snapshot` accept any iterable (see
    :class:`StreamingFactory`)."""

    id: Any
    _esrc_changes: list[object]
    _esrc_initial_version: int

    def __init__(self) -> None:
        self._esrc_changes = []
        self._esrc_initial_version = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "replays_iterables" not in own and ("from_events" in own or "from_snapshot" in own):
            # An override written for the Sequence contract may use len() or indexing.
            cls.replays_iterables = False

    def _esrc_state(self) -> list[object]:
        # Tolerate subclasses that forget super().__init__().
        try:
            return self._esrc_changes
        except AttributeError:
            self._esrc_changes = []
            self._esrc_initial_version = 0
            return self._esrc_changes

    @property
    def changes(self) -> tuple[object, ...]:
        """Events raised since the aggregate was loaded or last saved, oldest first."""
        return tuple(self._esrc_state())

    @property
    def initial_version(self) -> int:
        """The stream version when loaded or last saved (0 for a new aggregate)."""
        self._esrc_state()
        return self._esrc_initial_version

    @property
    def version(self) -> int:
        """The version the stream will have once the changes are saved."""
        return self.initial_version + len(self._esrc_state())

    def raise_event(self, event: object) -> None:
        """Apply ``event`` through :meth:`on_event`, then record it as a change.

        If :meth:`on_event` raises, the event is not recorded.
        """
        changes = self._esrc_state()
        self.on_event(event)
        changes.append(event)

    def on_event(self, event: object) -> None:
        """Apply one event to the aggregate's state. Subclasses must override this."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement on_event(event)")

    def mark_changes_committed(self) -> None:
        """Called by the repository after a save: empties :attr:`changes` and advances
        :attr:`initial_version` by their number."""
        changes = self._esrc_state()
        self._esrc_initial_version += len(changes)
        changes.clear()

    def snapshot(self) -> bytes:
        """The state as bytes for :meth:`restore`; raises
        :class:`~esrc_core.errors.SnapshotNotSupported` unless overridden."""
        raise SnapshotNotSupported(f"{type(self).__qualname__} does not implement snapshot()")

    @classmethod
    def restore(cls, aggregate_id: AggregateId, data: bytes) -> Self:
        """Build an instance from :meth:`snapshot` bytes, without calling ``__init__``.

        Raises :class:`~esrc_core.errors.SnapshotNotSupported` unless overridden.
        """
        raise SnapshotNotSupported(f"{cls.__qualname__} does not implement restore()")

    @classmethod
    def blank(cls) -> Self:
        """A new instance with no state and no changes, without calling ``__init__``."""
        aggregate = cls.__new__(cls)
        EventRaiserAggregate.__init__(aggregate)
        return aggregate

    @classmethod
    def from_events(cls, aggregate_id: AggregateId, events: Iterable[object]) -> Self:
        """Replay ``events`` (any iterable, consumed once) into a :meth:`blank`
        instance whose ``id`` is set to ``aggregate_id`` first (an event handler may set
        it again); ``initial_version`` becomes the number of events."""
        aggregate = cls.blank()
        aggregate.id = aggregate_id
        aggregate._replay(events, 0)
        return aggregate

    @classmethod
    def from_snapshot(
        cls, aggregate_id: AggregateId, snapshot: RawSnapshot, events: Iterable[object]
    ) -> Self:
        """:meth:`restore` the snapshot, then replay ``events`` (any iterable, consumed
        once); ``initial_version`` becomes the snapshot version plus the number of
        events."""
        aggregate = cls.restore(aggregate_id, snapshot.data)
        EventRaiserAggregate.__init__(aggregate)
        aggregate._replay(events, snapshot.version)
        return aggregate

    def _replay(self, events: Iterable[object], base_version: int) -> None:
        on_event = self.on_event
        count = 0
        for count, event in enumerate(events, 1):  # noqa: B007 (count is the result)
            on_event(event)
        self._esrc_initial_version = base_version + count
