"""The async face of the core: the greenlet bridge, BridgedEventStore, AsyncRepository
and opening async backends by URL."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import uuid
from collections.abc import Callable, Coroutine, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, Self, TypeVar

import pytest
from esrc_core.async_outbox import async_outbox, async_relay_lock
from esrc_core.async_store import sync_face
from esrc_core.closing import Closeable
from esrc_core.demo import Account, registry
from esrc_core.ids import AggregateId
from esrc_memory.publisher import MemoryPublisher
from esrc_memory.store import MemoryEventStore

from esrc_core import (
    GREENLETS,
    AsyncEventStore,
    AsyncEventStoreOutbox,
    AsyncHasOutbox,
    AsyncHasRelayLock,
    AsyncReadAheadOutbox,
    AsyncRelay,
    AsyncRelayLock,
    AsyncRepository,
    AsyncWaitingOutbox,
    Bridged,
    BridgedEventStore,
    NotSupportedError,
    OptimisticConcurrencyError,
    RawEvent,
    RawSnapshot,
    RelayEvent,
    Repository,
    RetryPolicy,
    StoreClosedError,
    open_async_event_store,
    open_async_publisher,
    open_event_store,
)

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


# --- the bridge ---------------------------------------------------------------------


def test_bridge_runs_sync_code_that_waits_on_the_loop() -> None:
    order: list[str] = []

    def sync(n: int) -> int:
        order.append(f"start {n}")
        GREENLETS.wait(asyncio.sleep(0.01))
        order.append(f"end {n}")
        return n * 2

    async def main() -> list[int]:
        return list(await asyncio.gather(GREENLETS.run(sync, 1), GREENLETS.run(sync, 2)))

    assert run(main()) == [2, 4]
    # Both started before either ended: the waits ran on the loop, not in turn.
    assert order[:2] == ["start 1", "start 2"], order


def test_bridge_raises_what_the_awaitable_raises_where_it_waited() -> None:
    async def fail() -> None:
        raise KeyError("from the loop")

    def sync() -> str:
        try:
            GREENLETS.wait(fail())
        except KeyError as err:
            return f"caught {err}"
        return "not raised"

    assert run(GREENLETS.run(sync)) == "caught 'from the loop'"


def test_bridge_cancellation_reaches_the_sync_code() -> None:
    cleaned: list[str] = []

    def sync() -> None:
        try:
            GREENLETS.wait(asyncio.sleep(10))
        finally:
            cleaned.append("finally ran")

    async def main() -> None:
        task = asyncio.create_task(GREENLETS.run(sync))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert cleaned == ["finally ran"]


def test_bridge_sees_the_tasks_context_variables() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> str:
        var.set("the task's")
        return await GREENLETS.run(var.get)

    assert run(main()) == "the task's"


def test_bridge_wait_outside_run_is_a_clear_error_and_closes_the_coroutine() -> None:
    coroutine = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match=r"outside Bridge\.run"):
        GREENLETS.wait(coroutine)
    # Closed, so no "never awaited" warning follows.
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


# --- BridgedEventStore --------------------------------------------------------------


def _event(n: int) -> RawEvent:
    return RawEvent(f"E{n}", b"%d" % n, {"n": str(n)})


def test_bridged_store_keeps_the_sync_contract_and_shares_its_data() -> None:
    name = f"bridged-{uuid.uuid4().hex}"
    sync = MemoryEventStore(name)
    other = MemoryEventStore(name)  # the same data through a store left open

    async def main() -> None:
        async with BridgedEventStore(sync) as store:
            assert isinstance(store, AsyncEventStore)
            assert isinstance(store, Bridged)
            await store.add_aggregate("A", 1, [_event(1)])
            await store.append_events("A", 1, 1, [_event(2), _event(3)])
            with pytest.raises(OptimisticConcurrencyError):
                await store.append_events("A", 1, 1, [_event(9)])
            assert await store.events("A", 1, 1) == [_event(2), _event(3)]
            assert await store.contains_aggregate("A", 1)
            assert not await store.contains_aggregate("A", "1")
            await store.add_snapshot("A", 1, RawSnapshot(2, b"snap"))
            assert await store.latest_snapshot("A", 1) == RawSnapshot(2, b"snap")
            snapshot, rest = await store.load_stream("A", 1)
            assert snapshot == RawSnapshot(2, b"snap")
            assert [e async for e in rest] == [_event(3)]
            events = await store.iter_events("A", 1, page_size=1)
            assert [e async for e in events] == [_event(1), _event(2), _event(3)]
        assert store.closed

    run(main())
    assert sync.closed, "closing the bridged store left its sync store open"
    assert other.events("A", 1) == [_event(1), _event(2), _event(3)]


def test_bridged_store_methods_after_close_raise_store_closed() -> None:
    async def main() -> None:
        store = BridgedEventStore(MemoryEventStore(), what="the test store")
        await store.close()
        await store.close()  # harmless
        calls: list[Callable[[], Coroutine[Any, Any, Any]]] = [
            lambda: store.add_aggregate("A", 1, [_event(1)]),
            lambda: store.append_events("A", 1, 1, [_event(1)]),
            lambda: store.events("A", 1),
            lambda: store.contains_aggregate("A", 1),
            lambda: store.add_snapshot("A", 1, RawSnapshot(1, b"")),
            lambda: store.latest_snapshot("A", 1),
            lambda: store.load_stream("A", 1),
            lambda: store.iter_events("A", 1),
        ]
        for call in calls:
            with pytest.raises(StoreClosedError, match="the test store is closed"):
                await call()

    run(main())


def test_memory_url_opens_both_faces_on_the_same_data() -> None:
    name = f"memory://async-{uuid.uuid4()}"

    async def main() -> None:
        store = await open_async_event_store(name)
        try:
            await store.add_aggregate("A", 7, [_event(1)])
            assert open_event_store(name).events("A", 7) == [_event(1)]
        finally:
            await store.close()

    run(main())


def test_async_from_a_backend_without_it_is_a_clear_error() -> None:
    async def main() -> None:
        await open_async_event_store("toy://")

    with pytest.raises(NotSupportedError, match=r"'toy' backend .* offers only the sync API"):
        run(main())


def test_sync_face_refuses_a_sync_store() -> None:
    with pytest.raises(TypeError, match="expected an AsyncEventStore"):
        sync_face(MemoryEventStore())  # type: ignore[arg-type]


# --- AsyncRepository ----------------------------------------------------------------


class NativeAsyncStore:
    """An async store that is not bridged: every method is a coroutine that yields to
    the loop before it acts on a memory store."""

    def __init__(self) -> None:
        self.inner = MemoryEventStore()
        self.closed = False

    async def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        await asyncio.sleep(0)
        self.inner.add_aggregate(aggregate_type, aggregate_id, events)

    async def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        await asyncio.sleep(0)
        self.inner.append_events(aggregate_type, aggregate_id, from_version, events)

    async def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        await asyncio.sleep(0)
        return self.inner.events(aggregate_type, aggregate_id, from_version)

    async def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        await asyncio.sleep(0)
        return self.inner.contains_aggregate(aggregate_type, aggregate_id)

    async def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        await asyncio.sleep(0)
        self.inner.add_snapshot(aggregate_type, aggregate_id, snapshot)

    async def latest_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId
    ) -> RawSnapshot | None:
        await asyncio.sleep(0)
        return self.inner.latest_snapshot(aggregate_type, aggregate_id)

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


STORES: dict[str, Callable[[], AsyncEventStore]] = {
    "bridged": lambda: BridgedEventStore(MemoryEventStore()),
    "native": NativeAsyncStore,
}


@pytest.fixture(params=sorted(STORES))
def async_store(request: pytest.FixtureRequest) -> AsyncEventStore:
    return STORES[request.param]()


def test_async_repository_round_trip(async_store: AsyncEventStore) -> None:
    async def main() -> None:
        repo = AsyncRepository(async_store, Account, registry)
        account = Account(uuid.uuid4(), "ann")
        account.deposit(Decimal(10))
        await repo.add(account)
        assert await repo.contains(account.id)
        assert not await repo.contains(uuid.uuid4())

        loaded = await repo.find_by_id(account.id)
        loaded.withdraw(Decimal(3))
        await repo.update(loaded)
        assert (await repo.find_by_id(account.id)).balance == Decimal(7)

        async def deposit(acc: Account) -> None:
            await asyncio.sleep(0)
            acc.deposit(Decimal(5))

        saved = await repo.update_by_id(account.id, deposit)
        assert saved.balance == Decimal(12)
        saved = await repo.update_by_id(account.id, lambda acc: acc.deposit(Decimal(1)))
        assert (await repo.find_by_id(account.id)).balance == Decimal(13)

    run(main())


def test_async_repository_retries_conflicts_with_tasks_interleaved(
    async_store: AsyncEventStore,
) -> None:
    async def main() -> Account:
        retry = RetryPolicy(attempts=None, base_delay=0.001, max_delay=0.01)
        repo = AsyncRepository(async_store, Account, registry, retry=retry)
        account = Account(uuid.uuid4(), "ann")
        await repo.add(account)

        async def deposit(acc: Account) -> None:
            await asyncio.sleep(0)  # let the other tasks load the same version
            acc.deposit(Decimal(1))

        await asyncio.gather(*(repo.update_by_id(account.id, deposit) for _ in range(32)))
        return await repo.find_by_id(account.id)

    final = run(main())
    assert final.balance == Decimal(32)
    assert final.version == 33


def test_async_repository_after_close_raises_store_closed() -> None:
    async def main() -> None:
        store = await open_async_event_store("memory://")
        repo = AsyncRepository(store, Account, registry)
        await store.close()
        with pytest.raises(StoreClosedError, match="find Account: the store is closed"):
            await repo.find_by_id(uuid.uuid4())

    run(main())


def test_repository_waits_between_retries_with_its_sleep() -> None:
    store = MemoryEventStore()
    slept: list[float] = []
    repo = Repository(store, Account, registry, retry=RetryPolicy(attempts=2), sleep=slept.append)
    account = Account(uuid.uuid4(), "ann")
    repo.add(account)

    def conflicting(acc: Account) -> None:
        if not slept:  # another writer saves first, once
            other = repo.find_by_id(acc.id)
            other.deposit(Decimal(1))
            repo.update(other)
        acc.deposit(Decimal(2))

    saved = repo.update_by_id(account.id, conflicting)
    assert len(slept) == 1
    assert saved.balance == Decimal(3)


def test_async_update_by_id_says_it_gave_up_and_how_often(async_store: AsyncEventStore) -> None:
    """Retries run out on the async repository as on the sync one: the error says so,
    counts the attempts and chains the last conflict."""

    async def main() -> None:
        retry = RetryPolicy(attempts=2, base_delay=0, max_delay=0)
        repo = AsyncRepository(async_store, Account, registry, retry=retry)
        account = Account(uuid.uuid4(), "ann")
        await repo.add(account)
        calls = 0

        async def conflicting(acc: Account) -> None:
            nonlocal calls
            calls += 1
            other = await repo.find_by_id(acc.id)  # a rival saves first, every time
            other.deposit(Decimal(1))
            await repo.update(other)
            acc.deposit(Decimal(100))

        with pytest.raises(OptimisticConcurrencyError) as raised:
            await repo.update_by_id(account.id, conflicting)
        assert calls == 2
        assert raised.value.attempts == 2
        assert str(raised.value).startswith(
            f"update Account {account.id!r}: gave up after 2 attempts, each lost to a "
            "concurrent writer; the last conflict: "
        ), str(raised.value)
        assert isinstance(raised.value.__cause__, OptimisticConcurrencyError)

    run(main())


# --- the relay's capabilities on the async API ------------------------------------------


def test_bridged_store_outbox_and_relay_lock_faces() -> None:
    """A bridged store's outbox and relay lock, awaited: the outbox hands out events in
    order and forgets what was marked; one lock holder per name across two stores."""

    async def scenario() -> None:
        first = await open_async_event_store("memory://async-outbox-faces")
        second = await open_async_event_store("memory://async-outbox-faces")
        await first.add_aggregate("Order", "o-1", [RawEvent("Placed", b"{}")])
        await first.append_events("Order", "o-1", 1, [RawEvent("Paid", b"{}")])
        assert isinstance(first, AsyncHasOutbox)
        assert isinstance(first, AsyncHasRelayLock)
        outbox = first.outbox("emails")
        assert isinstance(outbox, AsyncReadAheadOutbox)  # memory:// reads ahead
        assert not isinstance(outbox, AsyncWaitingOutbox)  # and does not wait
        batch = await outbox.unpublished_events(10)
        assert [(e.event.name, e.version) for e in batch] == [("Placed", 1), ("Paid", 2)]
        assert await outbox.unpublished_events_after(batch[0], 10) == batch[1:]
        await outbox.mark_events_as_published(batch[:1])
        assert await first.outbox("emails").unpublished_events(10) == batch[1:]

        assert isinstance(second, AsyncHasRelayLock)
        mine, theirs = first.relay_lock("emails"), second.relay_lock("emails")
        assert await mine.acquire()
        assert not await theirs.acquire(timeout=0.1)
        assert await mine.held()
        await mine.release()
        assert await theirs.acquire()
        await theirs.release()
        await first.close()
        with pytest.raises(StoreClosedError):
            first.outbox("emails")
        await second.close()

    run(scenario())


class OutboxlessStore(Closeable):
    """A sync store with the stream methods only (no outbox, no relay lock)."""

    def __init__(self) -> None:
        inner = MemoryEventStore()
        self.add_aggregate = inner.add_aggregate
        self.append_events = inner.append_events
        self.events = inner.events
        self.contains_aggregate = inner.contains_aggregate
        self.add_snapshot = inner.add_snapshot
        self.latest_snapshot = inner.latest_snapshot
        self._inner = inner

    def close(self) -> None:
        self._inner.close()


def test_bridged_store_without_an_outbox_says_so() -> None:
    store = BridgedEventStore(OutboxlessStore())
    with pytest.raises(NotSupportedError, match="open outbox 'emails'"):
        store.outbox("emails")
    with pytest.raises(NotSupportedError, match="open relay lock 'emails'"):
        store.relay_lock("emails")


async def _native_call(doing: str, fn: Callable[..., T], *args: Any) -> T:
    await asyncio.sleep(0)
    return fn(*args)


class NativeRelayStore(NativeAsyncStore):
    """A native async store with async outboxes and relay locks of its own."""

    def outbox(self, name: str = "default") -> AsyncEventStoreOutbox:
        return async_outbox(self.inner.outbox(name), _native_call)

    def relay_lock(self, name: str) -> AsyncRelayLock:
        return async_relay_lock(self.inner.relay_lock(name), _native_call)


def test_async_relay_runs_on_a_native_async_stores_outbox() -> None:
    """AsyncRelay on a store that is not bridged: its sync logic waits for the store's
    async outbox and lock; events go out in order, once each."""
    published: list[RelayEvent] = []
    topic = f"native-relay-{uuid.uuid4().hex}"
    MemoryPublisher(topic).subscribe(published.append)

    async def scenario() -> int:
        store = NativeRelayStore()
        for n in range(5):
            await store.add_aggregate("Order", n, [RawEvent("Placed", b"{}")])
        publisher = await open_async_publisher(f"memory://{topic}")
        relay = AsyncRelay(store, publisher, batch_size=2)
        relayed = 0
        while count := await relay.run_once():
            relayed += count
        running = asyncio.ensure_future(AsyncRelay(store, publisher).run())
        await asyncio.sleep(0.1)
        assert len(published) == 5, "the second relay (same name) re-published"
        await store.add_aggregate("Order", 5, [RawEvent("Placed", b"{}")])
        while len(published) < 6:
            await asyncio.sleep(0.01)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        return relayed

    assert run(scenario()) == 5
    assert [e.aggregate_id for e in published] == [0, 1, 2, 3, 4, 5]
