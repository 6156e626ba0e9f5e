"""The acceptance suite for async stores: :class:`AsyncEventStoreAcceptance`.

It runs the sync suite's contract cases, written once, against an
:class:`~esrc_core.async_store.AsyncEventStore`: every case gets a sync face
(:class:`AwaitingStore`) whose each call runs the async store's coroutine on an event
loop of its own (:class:`LoopThread`) and waits for it, so the cases exercise the async
methods themselves, and the thread races become races between tasks on one loop. The
repository cases get an :class:`~esrc_core.async_repository.AsyncRepository` behind the
same kind of face. Then come the tests only the async API has: 64 tasks racing on one
stream, cancellation in the middle of appends, a concurrent history of 16 tasks checked
for linearizability, and closing.
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any, ClassVar, TypeAlias, TypeVar

import pytest
from esrc_core.async_outbox import AsyncHasOutbox, AsyncHasRelayLock, sync_outbox, sync_relay_lock
from esrc_core.async_repository import AsyncRepository
from esrc_core.async_store import (
    AsyncAtomicAppends,
    AsyncEventStore,
    AsyncStreamingStore,
    Bridged,
)
from esrc_core.atomic_appends import AtomicAppends, StreamAppend
from esrc_core.capabilities import Capability
from esrc_core.errors import (
    AggregateNotFound,
    OptimisticConcurrencyError,
    StoreClosedError,
)
from esrc_core.events import RawEvent, RawSnapshot
from esrc_core.ids import AggregateId
from esrc_core.locks import HasRelayLock, RelayLock
from esrc_core.relay import EventStoreOutbox, HasOutbox
from esrc_core.repository import Repository, RetryPolicy
from esrc_core.store import EventStore

from esrc_testkit.capabilities import requires
from esrc_testkit.fixtures import StoreFactory, StoreSuite
from esrc_testkit.histories import check_store_history, record_history_async
from esrc_testkit.linearizability import Operation
from esrc_testkit.locks import RelayLockAcceptance
from esrc_testkit.machines import StateMachineAcceptance
from esrc_testkit.outbox import OutboxAcceptance
from esrc_testkit.races import JOIN_TIMEOUT, ConcurrencyAcceptance
from esrc_testkit.repository import Counter, RepositoryAcceptance, registry
from esrc_testkit.snapshots import SnapshotAcceptance
from esrc_testkit.streaming import StreamingAcceptance
from esrc_testkit.streams import StreamAcceptance
from esrc_testkit.units_of_work import UnitOfWorkAcceptance

__all__ = [
    "ASYNC_FACE_CAPABILITIES",
    "AsyncEventStoreAcceptance",
    "AsyncStoreFactory",
    "AsyncStoreSuite",
    "AwaitingRepository",
    "AwaitingStore",
    "LoopThread",
]

T = TypeVar("T")

AsyncStoreFactory: TypeAlias = Callable[[], Awaitable[AsyncEventStore]]
"""What a backend's ``async_store_factory`` fixture returns: each call (awaited) opens a
new, empty async store."""

ASYNC_FACE_CAPABILITIES = frozenset(
    {
        Capability.SNAPSHOTS,
        Capability.THREADS,
        Capability.STREAMING,
        Capability.OUTBOX,
        Capability.READ_AHEAD,
        Capability.WAIT,
        Capability.RELAY_LOCK,
        Capability.UNITS_OF_WORK,
    }
)
"""The capabilities the async suite tests through the async face (``threads``: many
tasks at once; the outbox and relay lock through
:class:`~esrc_core.async_outbox.AsyncHasOutbox` and
:class:`~esrc_core.async_outbox.AsyncHasRelayLock`). The others (operator views,
migrations) have no async face and are proven by the sync suite."""


class LoopThread:
    """An event loop running in a thread of its own, for sync code (the contract cases)
    that calls async code: :meth:`run` waits for a coroutine run on it. Several threads
    may call :meth:`run` at once; their coroutines run as concurrent tasks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="esrc-testkit-loop", daemon=True
        )
        self._thread.start()

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` on the loop and return its result (raise its exception);
        fails the test when it takes longer than the suite's hang limit."""

        async def wrapped() -> T:
            return await awaitable

        future: Future[T] = asyncio.run_coroutine_threadsafe(wrapped(), self.loop)
        try:
            return future.result(JOIN_TIMEOUT)
        except TimeoutError:
            future.cancel()
            pytest.fail(f"a coroutine on the test loop took over {JOIN_TIMEOUT:.0f}s: a hang?")

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(JOIN_TIMEOUT)
        self.loop.close()


class AwaitingStore(EventStore):
    """A sync :class:`~esrc_core.store.EventStore` face of an async store: each method
    runs the async method on :attr:`loop` and waits for it."""

    def __init__(self, store: AsyncEventStore, loop: LoopThread) -> None:
        self.async_store = store
        """The async store under test."""
        self.loop = loop
        """The loop its coroutines run on."""

    def __repr__(self) -> str:
        return f"AwaitingStore({self.async_store!r})"

    def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """The async store's ``add_aggregate``."""
        self.loop.run(self.async_store.add_aggregate(aggregate_type, aggregate_id, events))

    def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        """The async store's ``append_events``."""
        self.loop.run(
            self.async_store.append_events(aggregate_type, aggregate_id, from_version, events)
        )

    def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        """The async store's ``events``."""
        return self.loop.run(self.async_store.events(aggregate_type, aggregate_id, from_version))

    def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        """The async store's ``contains_aggregate``."""
        return self.loop.run(self.async_store.contains_aggregate(aggregate_type, aggregate_id))

    def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        """The async store's ``add_snapshot``."""
        self.loop.run(self.async_store.add_snapshot(aggregate_type, aggregate_id, snapshot))

    def latest_snapshot(self, aggregate_type: str, aggregate_id: AggregateId) -> RawSnapshot | None:
        """The async store's ``latest_snapshot``."""
        return self.loop.run(self.async_store.latest_snapshot(aggregate_type, aggregate_id))

    def close(self) -> None:
        """The async store's ``close``."""
        self.loop.run(self.async_store.close())


class _AwaitingStreamingStore(AwaitingStore):
    """An :class:`AwaitingStore` that streams, for an
    :class:`~esrc_core.async_store.AsyncStreamingStore`."""

    def _iterate(self, events: AsyncIterator[RawEvent]) -> Iterator[RawEvent]:
        while True:
            try:
                yield self.loop.run(anext(events))
            except StopAsyncIteration:
                return

    def iter_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int = 0,
        *,
        page_size: int | None = None,
    ) -> Iterator[RawEvent]:
        streaming: Any = self.async_store
        events = self.loop.run(
            streaming.iter_events(aggregate_type, aggregate_id, from_version, page_size=page_size)
        )
        return self._iterate(events)

    def load_stream(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        *,
        snapshot: bool = True,
        page_size: int | None = None,
    ) -> tuple[RawSnapshot | None, Iterator[RawEvent]]:
        streaming: Any = self.async_store
        found, events = self.loop.run(
            streaming.load_stream(
                aggregate_type, aggregate_id, snapshot=snapshot, page_size=page_size
            )
        )
        return found, self._iterate(events)


class _AwaitingOutboxes:
    """Outboxes of an :class:`AwaitingStore` whose async store has them (their sync
    faces wait on the store's loop)."""

    async_store: Any
    loop: LoopThread

    def outbox(self, name: str = "default") -> EventStoreOutbox:
        """The sync face of the async store's outbox ``name``."""
        return sync_outbox(self.async_store.outbox(name), self.loop.run)


class _AwaitingRelayLocks:
    """Relay locks of an :class:`AwaitingStore` whose async store has them."""

    async_store: Any
    loop: LoopThread

    def relay_lock(self, name: str) -> RelayLock:
        """The sync face of the async store's lock on relay ``name``."""
        return sync_relay_lock(self.async_store.relay_lock(name), self.loop.run)


class _AwaitingAtomicAppends:
    """Atomic appends of an :class:`AwaitingStore` whose async store offers them
    (:class:`~esrc_core.async_store.AsyncAtomicAppends`)."""

    async_store: Any
    loop: LoopThread

    def append_streams(self, appends: Sequence[StreamAppend]) -> None:
        """The async store's ``append_streams``."""
        self.loop.run(self.async_store.append_streams(appends))


_FACES: dict[tuple[bool, bool, bool, bool], type[AwaitingStore]] = {}


def awaiting(store: AsyncEventStore, loop: LoopThread) -> AwaitingStore:
    """The sync face of ``store``: streaming when ``store`` streams, with outboxes and
    relay locks when it has them."""
    kind = (
        isinstance(store, AsyncStreamingStore),
        isinstance(store, AsyncHasOutbox) and _offers(store, HasOutbox),
        isinstance(store, AsyncHasRelayLock) and _offers(store, HasRelayLock),
        isinstance(store, AsyncAtomicAppends) and _offers(store, AtomicAppends),
    )
    face = _FACES.get(kind)
    if face is None:
        streaming, outboxes, locks, atomic = kind
        bases: list[type] = [_AwaitingOutboxes] if outboxes else []
        bases += [_AwaitingRelayLocks] if locks else []
        bases += [_AwaitingAtomicAppends] if atomic else []
        bases.append(_AwaitingStreamingStore if streaming else AwaitingStore)
        face = _FACES[kind] = type("AwaitingStore", tuple(bases), {})
    return face(store, loop)


def _offers(store: AsyncEventStore, protocol: type[Any]) -> bool:
    """Whether a bridged store's sync store really implements ``protocol`` (a
    :class:`~esrc_core.async_store.BridgedEventStore` has the async methods either
    way, and raises ``NotSupportedError`` from them)."""
    return not isinstance(store, Bridged) or isinstance(store.sync_store, protocol)


class AwaitingRepository(Repository[Any]):
    """A sync face of an :class:`~esrc_core.async_repository.AsyncRepository`: each
    method runs the async one on the loop and waits for it."""

    def __init__(self, repository: AsyncRepository[Any], loop: LoopThread) -> None:
        sync = repository.sync
        super().__init__(
            sync.store,
            sync.factory,
            sync.registry,
            aggregate_type=sync.aggregate_type,
            snapshot_every=sync.snapshot_every,
            retry=sync.retry,
        )
        self.async_repository = repository
        """The async repository under test."""
        self.loop = loop

    def find_by_id(self, aggregate_id: AggregateId) -> Any:
        """``AsyncRepository.find_by_id``."""
        return self.loop.run(self.async_repository.find_by_id(aggregate_id))

    def contains(self, aggregate_id: AggregateId) -> bool:
        """``AsyncRepository.contains``."""
        return self.loop.run(self.async_repository.contains(aggregate_id))

    def add(self, aggregate: Any, *, metadata: Any = None) -> None:
        """``AsyncRepository.add``."""
        self.loop.run(self.async_repository.add(aggregate, metadata=metadata))

    def update(self, aggregate: Any, *, metadata: Any = None) -> None:
        """``AsyncRepository.update``."""
        self.loop.run(self.async_repository.update(aggregate, metadata=metadata))

    def update_by_id(
        self, aggregate_id: AggregateId, update: Callable[[Any], Any], *, metadata: Any = None
    ) -> Any:
        """``AsyncRepository.update_by_id``."""
        return self.loop.run(
            self.async_repository.update_by_id(aggregate_id, update, metadata=metadata)
        )


def _event(n: int, writer: int = 0) -> RawEvent:
    return RawEvent(f"E{n}", b"%d" % n, {"writer": str(writer)})


class AsyncStoreSuite(StoreSuite):
    """Base of the async acceptance classes: the backend provides an
    ``async_store_factory`` fixture (a callable whose every call, awaited, opens a new,
    empty async store; cleaning up after its ``yield``) and the ``capabilities`` of its
    sync backend, of which those in :data:`ASYNC_FACE_CAPABILITIES` are tested here.
    The suite opens the stores on its own loop and closes them after each test."""

    tasks: ClassVar[int] = 64
    """How many tasks race in the async-only tests."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = vars(cls).get("capabilities")
        if declared is not None:
            cls.capabilities = frozenset(declared) & ASYNC_FACE_CAPABILITIES

    @pytest.fixture
    def loop_thread(self) -> Iterator[LoopThread]:
        """The loop the test's coroutines run on."""
        loop = LoopThread()
        yield loop
        loop.close()

    @pytest.fixture
    def store_factory(
        self, async_store_factory: AsyncStoreFactory, loop_thread: LoopThread
    ) -> Iterator[StoreFactory]:
        """Sync faces of new async stores, closed after the test."""
        opened: list[AwaitingStore] = []

        def open_empty() -> EventStore:
            opened.append(awaiting(loop_thread.run(async_store_factory()), loop_thread))
            return opened[-1]

        yield open_empty
        for store in opened:
            store.close()

    def repository(self, store: EventStore, *args: Any, **options: Any) -> Repository[Any]:
        """An :class:`~esrc_core.async_repository.AsyncRepository` behind a sync face."""
        assert isinstance(store, AwaitingStore)
        return AwaitingRepository(AsyncRepository(store.async_store, *args, **options), store.loop)

    # --- what only the async API has ---------------------------------------------------

    def _open(self, factory: AsyncStoreFactory, loop: LoopThread) -> AsyncEventStore:
        return loop.run(factory())

    def test_tasks_racing_at_one_version_exactly_one_wins(
        self, async_store_factory: AsyncStoreFactory, loop_thread: LoopThread
    ) -> None:
        """64 tasks append at the same version of one stream: one wins, the others get
        OptimisticConcurrencyError; then each retries until it lands: every version from
        2 to 65 is written by exactly one task, and nothing else is stored."""
        store = self._open(async_store_factory, loop_thread)
        tasks = self.tasks

        async def race() -> tuple[list[bool], list[RawEvent]]:
            await store.add_aggregate("Race", "r", [_event(0)])
            gate = asyncio.Event()

            async def first(writer: int) -> bool:
                await gate.wait()
                try:
                    await store.append_events("Race", "r", 1, [_event(1, writer)])
                except OptimisticConcurrencyError:
                    return False
                return True

            pending = [asyncio.ensure_future(first(w)) for w in range(tasks)]
            await asyncio.sleep(0)
            gate.set()
            won = list(await asyncio.gather(*pending))

            async def until_landed(writer: int) -> None:
                if won[writer]:
                    return
                while True:
                    version = len(await store.events("Race", "r"))
                    try:
                        await store.append_events("Race", "r", version, [_event(2, writer)])
                    except OptimisticConcurrencyError:
                        await asyncio.sleep(random.random() / 1000)
                        continue
                    return

            await asyncio.gather(*(until_landed(w) for w in range(tasks)))
            events = await store.events("Race", "r")
            await store.close()
            return won, events

        won, events = loop_thread.run(race())
        assert won.count(True) == 1, f"got {won.count(True)} winners at version 1, want 1"
        writers = [e.metadata["writer"] for e in events[1:]]
        assert len(events) == tasks + 1, f"got {len(events)} events, want {tasks + 1}"
        assert sorted(writers, key=int) == [str(w) for w in range(tasks)], writers

    def test_tasks_updating_one_aggregate_lose_no_update(
        self, async_store_factory: AsyncStoreFactory, loop_thread: LoopThread
    ) -> None:
        """64 tasks ``update_by_id`` one aggregate, with an async callback that yields to
        the loop while it holds the loaded aggregate: retries land every increment once."""
        store = self._open(async_store_factory, loop_thread)
        tasks = self.tasks

        async def race() -> Any:
            retry = RetryPolicy(attempts=None, base_delay=0.001, max_delay=0.02)
            counters = AsyncRepository(store, Counter, registry, snapshot_every=0, retry=retry)
            counter = Counter(uuid.uuid4(), "hits")
            await counters.add(counter)

            async def increment(loaded: Any) -> None:
                await asyncio.sleep(0)
                loaded.increment()

            await asyncio.gather(
                *(counters.update_by_id(counter.id, increment) for _ in range(tasks))
            )
            found = await counters.find_by_id(counter.id)
            await store.close()
            return found

        found = loop_thread.run(race())
        assert (found.value, found.initial_version) == (tasks, tasks + 1)

    def test_cancelled_appends_store_all_or_nothing(
        self, async_store_factory: AsyncStoreFactory, loop_thread: LoopThread
    ) -> None:
        """Appends of three events cancelled at random moments leave each stream with
        whole appends only, and the store keeps working afterwards."""
        store = self._open(async_store_factory, loop_thread)
        rng = random.Random(7)
        streams = 24

        async def scenario() -> list[list[RawEvent]]:
            async def append(stream: int) -> None:
                await store.add_aggregate("Cancel", stream, [_event(0)])
                await store.append_events("Cancel", stream, 1, [_event(n) for n in (1, 2, 3)])

            for stream in range(streams):
                task = asyncio.ensure_future(append(stream))
                await asyncio.sleep(rng.random() / 200)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            found: list[list[RawEvent]] = []
            for stream in range(streams):
                try:
                    events = await store.events("Cancel", stream)
                except AggregateNotFound:
                    await store.add_aggregate("Cancel", stream, [_event(0)])
                    events = await store.events("Cancel", stream)
                await store.append_events("Cancel", stream, len(events), [_event(9)])
                found.append(await store.events("Cancel", stream))
            await store.close()
            return found

        for stream, events in enumerate(loop_thread.run(scenario())):
            names = [e.name for e in events]
            assert names in (["E0", "E9"], ["E0", "E1", "E2", "E3", "E9"]), (
                f"stream {stream}: got {names}, want whole appends only"
            )

    linearizability_tasks: ClassVar[int] = 16
    """How many tasks run operations at once in the concurrent-history test."""
    linearizability_operations: ClassVar[int] = 600
    """How many operations they run in all (at most)."""
    linearizability_seconds: ClassVar[float] = 2.0
    """How long they run (at most)."""

    @requires(Capability.THREADS)
    def test_concurrent_tasks_history_is_linearizable(
        self, async_store_factory: AsyncStoreFactory, loop_thread: LoopThread
    ) -> None:
        """Tasks on one loop run random operations through the async face (the outbox
        and relay locks too, when declared): every stream and relay lock behaves as if
        each operation took effect at one instant between its call and its return, and
        the outbox passes the checks of
        :func:`~esrc_testkit.histories.check_store_history`."""
        store = self._open(async_store_factory, loop_thread)

        async def record() -> list[Operation]:
            try:
                return await record_history_async(
                    store,
                    capabilities=self.capabilities,
                    tasks=self.linearizability_tasks,
                    operations=self.linearizability_operations,
                    seconds=self.linearizability_seconds,
                )
            finally:
                await store.close()

        verdict = check_store_history(loop_thread.run(record()))
        if not verdict:
            pytest.fail(verdict.explain(), pytrace=False)

    def test_methods_after_close_raise_store_closed(
        self, async_store_factory: AsyncStoreFactory, loop_thread: LoopThread
    ) -> None:
        """``async with`` closes the store; every method afterwards raises
        StoreClosedError, and closing again is harmless."""
        store = self._open(async_store_factory, loop_thread)

        async def scenario() -> list[str]:
            async with store as entered:
                assert entered is store
                await store.add_aggregate("Closed", 1, [_event(0)])
            await store.close()
            calls: list[Callable[[], Awaitable[Any]]] = [
                lambda: store.add_aggregate("Closed", 2, [_event(0)]),
                lambda: store.append_events("Closed", 1, 1, [_event(1)]),
                lambda: store.events("Closed", 1),
                lambda: store.contains_aggregate("Closed", 1),
                lambda: store.add_snapshot("Closed", 1, RawSnapshot(1, b"")),
                lambda: store.latest_snapshot("Closed", 1),
            ]
            raised: list[str] = []
            for call in calls:
                try:
                    await call()
                except StoreClosedError:
                    raised.append("StoreClosedError")
                except Exception as err:
                    raised.append(f"{type(err).__name__}: {err}")
                else:
                    raised.append("nothing")
            return raised

        raised = loop_thread.run(scenario())
        assert raised == ["StoreClosedError"] * 6, raised


class AsyncEventStoreAcceptance(
    AsyncStoreSuite,
    StreamAcceptance,
    SnapshotAcceptance,
    StreamingAcceptance,
    ConcurrencyAcceptance,
    RepositoryAcceptance,
    OutboxAcceptance,
    RelayLockAcceptance,
    UnitOfWorkAcceptance,
    StateMachineAcceptance,
):
    """The acceptance suite of an async store. Subclass it in a test module::

        import pytest
        from esrc_core import open_async_event_store
        from esrc_testkit import AsyncEventStoreAcceptance, capabilities_of

        class TestMyAsyncStore(AsyncEventStoreAcceptance):
            capabilities = capabilities_of("my://")

            @pytest.fixture
            def async_store_factory(self):
                async def open_empty():
                    return await open_async_event_store("my://")

                yield open_empty

    The stream, snapshot, streaming, race, repository, outbox, relay-lock, unit-of-work
    and state-machine cases of the sync suite run on the async store through
    :class:`AwaitingStore` (threads become tasks; outboxes and locks are the async
    store's own, :class:`~esrc_core.async_outbox.AsyncHasOutbox` and
    :class:`~esrc_core.async_outbox.AsyncHasRelayLock`), then the async-only tests of
    :class:`AsyncStoreSuite`.
    """
