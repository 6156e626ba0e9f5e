"""Units of work: save the changes of several aggregates, of one type or of several, in
one atomic append (:class:`UnitOfWork`, and its async face :class:`AsyncUnitOfWork`).

A unit of work is given the repositories of the aggregates it may save, which must
share one store offering the ``units-of-work`` capability
(:class:`~esrc_core.atomic_appends.AtomicAppends`). Aggregates are registered with
:meth:`UnitOfWork.add` (new ones) and :meth:`UnitOfWork.update` (loaded ones), or
loaded through it with :meth:`UnitOfWork.load`; :meth:`UnitOfWork.commit` stores all
their changes, or none. ``with UnitOfWork(...) as uow:`` commits when the block ends
and stores nothing when it raises; :meth:`UnitOfWork.run` loads, decides and commits
again after a concurrency conflict, as
:meth:`Repository.update_by_id <esrc_core.repository.Repository.update_by_id>` does
for one aggregate.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, overload

from esrc_core.aggregate import Aggregate
from esrc_core.async_repository import AsyncRepository
from esrc_core.async_store import sync_face
from esrc_core.atomic_appends import AtomicAppends, StreamAppend
from esrc_core.backoff import Backoff
from esrc_core.capabilities import Capability, require
from esrc_core.correlation import correlation, current_causation
from esrc_core.errors import OptimisticConcurrencyError
from esrc_core.ids import AggregateId, check_id, encode_id
from esrc_core.repository import Repository
from esrc_core.store import EventStore

__all__ = ["AsyncUnitOfWork", "UnitOfWork"]

T = TypeVar("T", bound=Aggregate)
R = TypeVar("R")

log = logging.getLogger("esrc.repository")


@dataclass
class _Entry:
    """One registered aggregate: its repository, whether it is new, its metadata."""

    repository: Repository[Any]
    aggregate: Any
    creates: bool
    metadata: Mapping[str, str] | None


class UnitOfWork:
    """Saves the changes of several aggregates in one atomic append.

    ``repositories`` are those of the aggregates it may save (any types); they must
    share one store (``store``, when given, is the store they use seen through another
    face: the async unit of work passes it) offering the ``units-of-work`` capability,
    else :class:`~esrc_core.errors.NotSupportedError` naming it is raised here.
    ``retry`` is the policy of :meth:`run` (the first repository's by default).

    Usage::

        with UnitOfWork(invoices, investors) as uow:
            invoice = uow.load(invoices, invoice_id)
            investor = uow.load(investors, investor_id)
            invoice.finance(investor.id)
            investor.commit_funds(invoice.id, invoice.amount)
        # both saved here, or neither

    Contract:

    - :meth:`commit` stores the changes of every registered aggregate, or none (the
      store's :meth:`~esrc_core.atomic_appends.AtomicAppends.append_streams`), then
      tells each aggregate its changes are committed and takes snapshots by each
      repository's policy. A conflict raises
      :class:`~esrc_core.errors.OptimisticConcurrencyError` or
      :class:`~esrc_core.errors.AggregateAlreadyExists` naming the stream.
    - After :meth:`commit`, successful or not, and after :meth:`discard`, the unit is
      empty and may be used again; the aggregates of a failed commit keep their
      changes and are stale (load them again).
    - Each stream is saved once per unit: registering a second object for a stream
      raises ``ValueError``; registering the same object again does nothing.
    - Not thread-safe: one unit per thread (repositories and stores may be shared).
    """

    def __init__(
        self,
        *repositories: Repository[Any],
        retry: Backoff | None = None,
        store: EventStore | None = None,
    ) -> None:
        if not repositories:
            raise ValueError("a UnitOfWork needs the repositories of the aggregates it saves")
        for repository in repositories:
            if not isinstance(repository, Repository):
                raise TypeError(f"UnitOfWork takes repositories, got a {type(repository).__name__}")
        if store is None:
            store = repositories[0].store
            others = [r for r in repositories if r.store is not store]
            if others:
                raise ValueError(
                    "the repositories of a UnitOfWork must share one store: "
                    f"{repositories[0].aggregate_type} uses {store!r}, "
                    f"{others[0].aggregate_type} uses {others[0].store!r}"
                )
        self.store = store
        """The store the unit appends through."""
        self._atomic = require(
            store, Capability.UNITS_OF_WORK, "create a UnitOfWork", AtomicAppends
        )
        self.repositories = repositories
        """The repositories given."""
        self.retry: Backoff = retry if retry is not None else repositories[0].retry
        """The retry policy of :meth:`run`."""
        self._sleep = repositories[0].sleep
        self._entries: dict[tuple[str, str], _Entry] = {}

    def __repr__(self) -> str:
        types = ", ".join(r.aggregate_type for r in self.repositories)
        return f"UnitOfWork({types}; {len(self._entries)} registered)"

    # --- registering ---------------------------------------------------------------------

    def _repository_for(self, what: object, given: Repository[Any] | None) -> Repository[Any]:
        """The repository of ``what`` (an aggregate, or an aggregate class): ``given``,
        or the one registered repository whose factory class it is an instance (or
        subclass) of."""
        if given is not None:
            if given.store is not self.store and given not in self.repositories:
                raise ValueError(
                    f"the {given.aggregate_type} repository uses {given.store!r}, not this "
                    f"unit's store {self.store!r}"
                )
            return given
        cls = what if isinstance(what, type) else type(what)
        found = [
            r
            for r in self.repositories
            if isinstance(r.factory, type) and issubclass(cls, r.factory)
        ]
        if len(found) == 1:
            return found[0]
        name = cls.__name__
        if not found:
            known = ", ".join(r.aggregate_type for r in self.repositories)
            raise ValueError(
                f"no repository of this unit of work takes a {name} (it has {known}); "
                "give the UnitOfWork its repository, or pass repository="
            )
        listed = ", ".join(r.aggregate_type for r in found)
        raise ValueError(f"several repositories take a {name} ({listed}); pass repository=")

    def _register(
        self,
        aggregate: Any,
        repository: Repository[Any] | None,
        metadata: Mapping[str, str] | None,
        *,
        creates: bool,
    ) -> None:
        repo = self._repository_for(aggregate, repository)
        doing = f"{'add' if creates else 'update'} {repo.aggregate_type} in a unit of work"
        key = (repo.aggregate_type, encode_id(check_id(aggregate.id, doing=doing)))
        known = self._entries.get(key)
        if known is not None:
            if known.aggregate is aggregate and known.creates == creates:
                if metadata is not None:
                    known.metadata = metadata
                return
            raise ValueError(
                f"{doing}: {repo.aggregate_type} {aggregate.id!r} is registered already "
                "(as another object, or to be added rather than updated); a unit of work "
                "saves each stream once"
            )
        if not creates and aggregate.initial_version == 0:
            raise ValueError(
                f"{doing}: {repo.aggregate_type} {aggregate.id!r} was never saved "
                "(version 0); register it with add()"
            )
        self._entries[key] = _Entry(repo, aggregate, creates, metadata)

    def add(
        self,
        aggregate: Any,
        *,
        repository: Repository[Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Register a new aggregate: :meth:`commit` creates its stream (as
        :meth:`Repository.add <esrc_core.repository.Repository.add>`: it must have
        changes, and its stream must not exist). ``repository`` is needed only when no
        repository, or several, of the unit take its class; ``metadata`` is added to
        its events."""
        self._register(aggregate, repository, metadata, creates=True)

    def update(
        self,
        aggregate: Any,
        *,
        repository: Repository[Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Register a loaded aggregate: :meth:`commit` appends its changes at its
        ``initial_version`` (as :meth:`Repository.update
        <esrc_core.repository.Repository.update>`; without changes it is left out).
        Raises ``ValueError`` for an aggregate never saved (use :meth:`add`)."""
        self._register(aggregate, repository, metadata, creates=False)

    @overload
    def load(self, source: Repository[T], aggregate_id: AggregateId) -> T: ...

    @overload
    def load(self, source: type[T], aggregate_id: AggregateId) -> T: ...

    def load(self, source: Any, aggregate_id: AggregateId) -> Any:
        """Load an aggregate through its repository (``source``: the repository, or
        the aggregate class one repository of the unit takes) and register it for
        :meth:`update`. Loading a stream the unit holds already returns the object
        it holds. Raises :class:`~esrc_core.errors.AggregateNotFound` when it does not
        exist."""
        repo = self._repository_for(source, source if isinstance(source, Repository) else None)
        key = (repo.aggregate_type, encode_id(check_id(aggregate_id, doing="load")))
        known = self._entries.get(key)
        if known is not None:
            return known.aggregate
        aggregate = repo.find_by_id(aggregate_id)
        self._entries[key] = _Entry(repo, aggregate, False, None)
        return aggregate

    def discard(self) -> None:
        """Forget every registered aggregate; nothing is stored."""
        self._entries.clear()

    # --- committing -----------------------------------------------------------------------

    def commit(self) -> None:
        """Store the changes of every registered aggregate in one atomic append (see
        the class docstring); nothing when none has changes. The unit is empty
        afterwards, whatever the outcome. Outside a correlation context
        (:mod:`esrc_core.correlation`) the events of every aggregate of the unit share
        one new ``correlation_id``."""
        entries = list(self._entries.values())
        self._entries.clear()
        if current_causation() is None:
            with correlation():  # one command: its aggregates' events share one
                self._commit(entries)
        else:
            self._commit(entries)

    def _commit(self, entries: list[_Entry]) -> None:
        saved: list[tuple[_Entry, int]] = []
        parts: list[StreamAppend] = []
        for entry in entries:
            aggregate, repo = entry.aggregate, entry.repository
            if not entry.creates and not aggregate.changes:
                continue
            doing = f"{'add' if entry.creates else 'update'} {repo.aggregate_type}"
            raw = repo.pending_events(aggregate, metadata=entry.metadata, doing=doing)
            expected = 0 if entry.creates else aggregate.initial_version
            parts.append(StreamAppend(repo.aggregate_type, aggregate.id, expected, raw))
            saved.append((entry, len(raw)))
        if not parts:
            return
        self._atomic.append_streams(parts)
        for entry, count in saved:
            entry.repository.mark_saved(entry.aggregate, count)

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def run(self, work: Callable[[UnitOfWork], R]) -> R:
        """Run ``work`` (which loads and changes aggregates through this unit), then
        :meth:`commit`; on an :class:`~esrc_core.errors.OptimisticConcurrencyError`
        start again from an empty unit, as :attr:`retry` allows. Returns what
        ``work`` returned.

        ``work`` may run more than once, so it must only load and change aggregates
        (through :meth:`load`, :meth:`add` and :meth:`update`). An exception from
        ``work`` is raised as is and nothing is stored. When the tries run out,
        raises :class:`~esrc_core.errors.OptimisticConcurrencyError` saying so, with
        ``attempts`` set and the last conflict chained.
        """
        attempt = 1
        while True:
            self.discard()
            try:
                result = work(self)
            except BaseException:
                self.discard()
                raise
            try:
                self.commit()
            except OptimisticConcurrencyError as err:
                if self.retry.exhausted(attempt):
                    raise OptimisticConcurrencyError(
                        f"unit of work: gave up after {attempt} attempt(s), each lost to a "
                        f"concurrent writer; the last conflict: {err}",
                        attempts=attempt,
                    ) from err
                log.debug("unit of work: concurrency conflict on attempt %d, retrying", attempt)
                self._sleep(self.retry.delay(attempt))
                attempt += 1
            else:
                return result


class AsyncUnitOfWork:
    """:class:`UnitOfWork` for :class:`~esrc_core.async_repository.AsyncRepository`
    objects sharing one async store: the same contract, loads and commits as
    coroutines, run by the sync unit through the store's bridge (one copy of the
    logic). ``async with AsyncUnitOfWork(...) as uow:`` commits when the block ends.
    The work given to :meth:`run` may be a coroutine function."""

    def __init__(self, *repositories: AsyncRepository[Any], retry: Backoff | None = None) -> None:
        if not repositories:
            raise ValueError("an AsyncUnitOfWork needs the repositories of the aggregates it saves")
        store = repositories[0].store
        others = [r for r in repositories if r.store is not store]
        if others:
            raise ValueError(
                "the repositories of an AsyncUnitOfWork must share one store: "
                f"{repositories[0].aggregate_type} uses {store!r}, "
                f"{others[0].aggregate_type} uses {others[0].store!r}"
            )
        sync_store, self._bridge = sync_face(store)
        self.store = store
        """The async store the unit appends through."""
        self.sync = UnitOfWork(*(r.sync for r in repositories), retry=retry, store=sync_store)
        """The sync unit each call runs, inside the store's bridge."""
        self._repositories = {id(r): r.sync for r in repositories}

    def _sync_repository(self, repository: AsyncRepository[Any] | None) -> Repository[Any] | None:
        if repository is None:
            return None
        found = self._repositories.get(id(repository))
        if found is None:
            raise ValueError(
                f"the {repository.aggregate_type} repository is not one of this unit's"
            )
        return found

    def add(
        self,
        aggregate: Any,
        *,
        repository: AsyncRepository[Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Register a new aggregate; see :meth:`UnitOfWork.add`."""
        self.sync.add(aggregate, repository=self._sync_repository(repository), metadata=metadata)

    def update(
        self,
        aggregate: Any,
        *,
        repository: AsyncRepository[Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Register a loaded aggregate; see :meth:`UnitOfWork.update`."""
        self.sync.update(aggregate, repository=self._sync_repository(repository), metadata=metadata)

    @overload
    async def load(self, source: AsyncRepository[T], aggregate_id: AggregateId) -> T: ...

    @overload
    async def load(self, source: type[T], aggregate_id: AggregateId) -> T: ...

    async def load(self, source: Any, aggregate_id: AggregateId) -> Any:
        """Load and register an aggregate; see :meth:`UnitOfWork.load`."""
        if isinstance(source, AsyncRepository):
            source = self._sync_repository(source)
        return await self._bridge.run(self.sync.load, source, aggregate_id)

    def discard(self) -> None:
        """Forget every registered aggregate; see :meth:`UnitOfWork.discard`."""
        self.sync.discard()

    async def commit(self) -> None:
        """Store every registered aggregate's changes atomically; see
        :meth:`UnitOfWork.commit`."""
        await self._bridge.run(self.sync.commit)

    async def __aenter__(self) -> AsyncUnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.commit()
        else:
            self.discard()

    @overload
    async def run(self, work: Callable[[AsyncUnitOfWork], Awaitable[R]]) -> R: ...

    @overload
    async def run(self, work: Callable[[AsyncUnitOfWork], R]) -> R: ...

    async def run(self, work: Callable[[AsyncUnitOfWork], Any]) -> Any:
        """Run ``work`` and commit, retrying after a conflict; see
        :meth:`UnitOfWork.run`. ``work`` gets this unit and may be a coroutine
        function (awaited on the event loop)."""
        wait = self._bridge.wait

        def call(_: UnitOfWork) -> Any:
            result = work(self)
            if inspect.isawaitable(result):
                return wait(result)
            return result

        return await self._bridge.run(self.sync.run, call)
