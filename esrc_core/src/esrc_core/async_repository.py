"""The repository's async face: :class:`AsyncRepository`, the
:class:`~esrc_core.repository.Repository` itself run through its store's bridge."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from esrc_core.aggregate import Aggregate, AggregateFactory
from esrc_core.async_store import AsyncEventStore, Bridged, sync_face
from esrc_core.backoff import Backoff
from esrc_core.errors import StoreClosedError
from esrc_core.events import EventRegistry
from esrc_core.ids import AggregateId
from esrc_core.repository import Repository

__all__ = ["AsyncRepository"]

T = TypeVar("T", bound=Aggregate)


class AsyncRepository(Generic[T]):
    """:class:`~esrc_core.repository.Repository` for an
    :class:`~esrc_core.async_store.AsyncEventStore`: the same methods as coroutines,
    the same arguments, snapshot policy, retry policy and errors.

    It is not a second implementation: each call runs the sync repository's method
    through the store's :class:`~esrc_core.bridge.Bridge` (on a
    :class:`~esrc_core.async_store.Bridged` store, directly on its sync store, so a
    load or a save is one hop into the bridge), and waits for I/O on the event loop.
    Retries after a conflict wait with ``asyncio.sleep``. The callback of
    :meth:`update_by_id` may be a plain function or a coroutine function.

    Safe to share between the tasks of one event loop, as its store is.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        factory: AggregateFactory[T],
        registry: EventRegistry,
        *,
        aggregate_type: str | None = None,
        snapshot_every: int = 200,
        retry: Backoff | None = None,
        metadata: Mapping[str, str] | None = None,
        load_snapshots: bool = True,
        snapshot_schema: int = 1,
    ) -> None:
        sync_store, bridge = sync_face(store)
        self.store = store
        """The async store."""
        self._bridge = bridge
        self._closed: Callable[[], bool] = (
            (lambda: store.closed) if isinstance(store, Bridged) else (lambda: False)
        )
        wait = bridge.wait
        self.sync = Repository(
            sync_store,
            factory,
            registry,
            aggregate_type=aggregate_type,
            snapshot_every=snapshot_every,
            retry=retry,
            metadata=metadata,
            load_snapshots=load_snapshots,
            snapshot_schema=snapshot_schema,
            sleep=lambda seconds: wait(asyncio.sleep(seconds)),
        )
        """The sync repository each call runs (on the store's sync face); its methods may
        be called only inside the store's bridge."""

    @property
    def aggregate_type(self) -> str:
        """The name of the streams (the factory's class name unless given)."""
        return self.sync.aggregate_type

    @property
    def registry(self) -> EventRegistry:
        """The event registry."""
        return self.sync.registry

    @property
    def factory(self) -> AggregateFactory[T]:
        """The aggregate factory."""
        return self.sync.factory

    @property
    def snapshot_every(self) -> int:
        """The snapshot policy: a snapshot after each save that crosses a multiple."""
        return self.sync.snapshot_every

    @property
    def retry(self) -> Backoff:
        """The retry policy of :meth:`update_by_id`."""
        return self.sync.retry

    def _run(self, doing: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._closed():
            raise StoreClosedError(f"{doing} {self.aggregate_type}: the store is closed")
        return self._bridge.run(fn, *args, **kwargs)

    async def find_by_id(self, aggregate_id: AggregateId) -> T:
        """Load the aggregate; see :meth:`Repository.find_by_id
        <esrc_core.repository.Repository.find_by_id>`."""
        found: T = await self._run("find", self.sync.find_by_id, aggregate_id)
        return found

    async def contains(self, aggregate_id: AggregateId) -> bool:
        """Whether an aggregate with this id exists."""
        exists: bool = await self._run("check", self.sync.contains, aggregate_id)
        return exists

    async def add(self, aggregate: T, *, metadata: Mapping[str, str] | None = None) -> None:
        """Save a new aggregate; see :meth:`Repository.add
        <esrc_core.repository.Repository.add>`."""
        await self._run("add", self.sync.add, aggregate, metadata=metadata)

    async def update(self, aggregate: T, *, metadata: Mapping[str, str] | None = None) -> None:
        """Append a loaded aggregate's changes; see :meth:`Repository.update
        <esrc_core.repository.Repository.update>`."""
        await self._run("update", self.sync.update, aggregate, metadata=metadata)

    async def update_by_id(
        self,
        aggregate_id: AggregateId,
        update: Callable[[T], Any] | Callable[[T], Awaitable[Any]],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> T:
        """Load, apply ``update``, save, retrying on a conflict; see
        :meth:`Repository.update_by_id <esrc_core.repository.Repository.update_by_id>`.

        ``update`` may be a coroutine function (or return an awaitable): it is awaited
        on the event loop, and may run more than once.
        """
        wait = self._bridge.wait

        def call(aggregate: T) -> Any:
            result = update(aggregate)
            if inspect.isawaitable(result):
                return wait(result)
            return result

        saved: T = await self._run(
            "update", self.sync.update_by_id, aggregate_id, call, metadata=metadata
        )
        return saved
