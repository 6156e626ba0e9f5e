"""AsyncRelay: the relay's logic run through the store's bridge from a task, on
``memory://`` and on the SQL store (a SQLite file and PostgreSQL with LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Sequence
from pathlib import Path

import pytest
from esrc_core.async_store import sync_face
from esrc_sqlalchemy.testing import drop_store_tables

from esrc_core import (
    AsyncEventStore,
    AsyncRelay,
    Backoff,
    HasOutbox,
    PublishError,
    RawEvent,
    RelayEvent,
    open_async_event_store,
    open_async_publisher,
)
from esrc_memory import MemoryPublisher

FAST = Backoff(base_delay=0.01, max_delay=0.05, rng=random.Random(7))


class FailingAfter:
    """An async publisher that accepts ``accept`` events of a batch, then refuses."""

    def __init__(self, accept: int) -> None:
        self.accept = accept
        self.published: list[RelayEvent] = []
        self.closed = False

    async def publish(self, event: RelayEvent) -> None:
        await self.publish_batch([event])

    async def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        await asyncio.sleep(0)
        for count, event in enumerate(events):
            if len(self.published) >= self.accept:
                raise PublishError("broker refused", published=count)
            self.published.append(event)

    async def close(self) -> None:
        self.closed = True


async def _append(store: AsyncEventStore, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        await store.add_aggregate("Account", n, [RawEvent("Opened", b"%d" % n)])


def _received(name: str) -> list[RelayEvent]:
    received: list[RelayEvent] = []
    MemoryPublisher(name).subscribe(received.append)
    return received


def test_run_once_publishes_in_order_and_marks_exactly_what_was_confirmed() -> None:
    async def scenario() -> tuple[list[object], list[object], list[int]]:
        store = await open_async_event_store("memory://")
        await _append(store, 5)
        failing = FailingAfter(accept=3)
        relay = AsyncRelay(store, failing, batch_size=10)
        with pytest.raises(PublishError):
            await relay.run_once()
        first: list[object] = [e.aggregate_id for e in failing.published]
        failing.accept = 100
        assert await relay.run_once() == 2
        again = AsyncRelay(store, FailingAfter(accept=100), batch_size=10)
        left = await again.run_once()
        await store.close()
        return first, [e.aggregate_id for e in failing.published], [left]

    first, everything, left = asyncio.run(scenario())
    assert first == [0, 1, 2]
    assert everything == [0, 1, 2, 3, 4]  # the two not confirmed came next, once
    assert left == [0]  # both batches were marked: nothing is left


def test_run_relays_what_is_appended_meanwhile_until_stopped() -> None:
    topic = f"async-relay-{secrets.token_hex(4)}"
    received = _received(topic)

    async def scenario() -> int:
        store = await open_async_event_store("memory://")
        publisher = await open_async_publisher(f"memory://{topic}")
        relay = AsyncRelay(store, publisher, batch_size=3, poll_interval=0.01, backoff=FAST)
        running = asyncio.ensure_future(relay.run())
        for start in range(0, 20, 5):
            await _append(store, 5, start)
            await asyncio.sleep(0.005)
        while len(received) < 20:
            await asyncio.sleep(0.005)
        relay.stop()
        relayed = await running
        assert relay.state == "stopped"
        await store.close()
        return relayed

    assert asyncio.run(scenario()) == 20
    assert [e.aggregate_id for e in received] == list(range(20))


def test_second_relay_waits_on_standby_and_takes_over_when_the_first_is_cancelled() -> None:
    topic = f"async-relay-{secrets.token_hex(4)}"
    received = _received(topic)

    async def scenario() -> list[str]:
        store = await open_async_event_store("memory://")
        publisher = await open_async_publisher(f"memory://{topic}")
        first = AsyncRelay(store, publisher, poll_interval=0.01, backoff=FAST)
        second = AsyncRelay(store, publisher, poll_interval=0.01, backoff=FAST)
        one = asyncio.ensure_future(first.run())
        await _append(store, 3)
        while len(received) < 3:
            await asyncio.sleep(0.005)
        two = asyncio.ensure_future(second.run())
        while second.state != "standby":
            await asyncio.sleep(0.005)
        states: list[str] = [first.state, second.state]
        one.cancel()
        with pytest.raises(asyncio.CancelledError):
            await one
        states.append(first.state)
        await _append(store, 3, 3)
        while len(received) < 6:
            await asyncio.sleep(0.005)
        states.append(second.state)
        second.stop()
        await two
        await store.close()
        return states

    assert asyncio.run(scenario()) == ["relaying", "standby", "stopped", "relaying"]
    assert [e.aggregate_id for e in received] == list(range(6))


def test_a_publisher_it_opens_is_reopened_after_a_failure_and_closed_at_the_end() -> None:
    opened: list[FailingAfter] = []

    async def open_publisher() -> FailingAfter:
        opened.append(FailingAfter(accept=2 if not opened else 100))
        return opened[-1]

    async def scenario() -> int:
        store = await open_async_event_store("memory://")
        await _append(store, 4)
        relay = AsyncRelay(store, open_publisher, poll_interval=0.01, backoff=FAST)
        running = asyncio.ensure_future(relay.run())
        while relay.relayed < 4:
            await asyncio.sleep(0.005)
        relay.stop()
        relayed = await running
        await store.close()
        return relayed

    assert asyncio.run(scenario()) == 4
    assert [p.closed for p in opened] == [True, True]
    assert [e.aggregate_id for e in opened[0].published] == [0, 1]
    assert [e.aggregate_id for e in opened[1].published] == [2, 3]


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/relay.db"
    url: str = request.getfixturevalue("postgresql_url")
    return url


def test_relay_from_the_async_sql_store(sql_url: str) -> None:
    """Events appended by tasks while the relay runs (woken by LISTEN/NOTIFY on
    PostgreSQL) are published once each, in the outbox's one total order (commit order
    on SQLite, transaction-id order on PostgreSQL, where positions may then be out of
    order): the order a second outbox reads them in afterwards."""
    topic = f"async-relay-{secrets.token_hex(4)}"
    received = _received(topic)
    prefix = f"r{secrets.token_hex(4)}_"
    notify = {"notify": True} if sql_url.startswith("postgresql") else {}

    async def scenario() -> tuple[list[RelayEvent], list[RelayEvent]]:
        store = await open_async_event_store(sql_url, table_prefix=prefix, **notify)
        try:
            publisher = await open_async_publisher(f"memory://{topic}")
            relay = AsyncRelay(store, publisher, batch_size=7, poll_interval=5.0, backoff=FAST)
            running = asyncio.ensure_future(relay.run())
            await asyncio.gather(*(_append(store, 6, start) for start in range(0, 30, 6)))
            while len(received) < 30:
                await asyncio.sleep(0.01)
            relay.stop()
            await running
            sync_store, bridge = sync_face(store)
            assert isinstance(sync_store, HasOutbox)
            second = sync_store.outbox("second-reader")
            in_order = await bridge.run(second.unpublished_events, 100)
            return list(received), list(in_order)
        finally:
            await store.close()

    try:
        events, outbox_order = asyncio.run(scenario())
    finally:
        drop_store_tables(sql_url, prefix)
    assert sorted(e.aggregate_id for e in events) == list(range(30))
    assert [e.position for e in events] == [e.position for e in outbox_order]


def test_idle_relay_on_a_polling_outbox_leaves_the_loop_free_and_stops_at_once(
    tmp_path: Path,
) -> None:
    """On SQLite the outbox polls while the relay waits for events; the polls sleep on
    the event loop (other tasks keep running: a ticker every 10 ms ticks most of its
    ticks in a second), and stop() ends the wait well before the 5 s poll interval."""

    async def scenario() -> tuple[int, float]:
        store = await open_async_event_store(f"sqlite:///{tmp_path}/idle.db")
        try:
            publisher = await open_async_publisher(f"memory://idle-{secrets.token_hex(4)}")
            relay = AsyncRelay(store, publisher, poll_interval=5.0, backoff=FAST)
            running = asyncio.ensure_future(relay.run())
            await asyncio.sleep(0.2)  # the relay is waiting for events now
            ticks = 0
            until = asyncio.get_running_loop().time() + 1.0
            while asyncio.get_running_loop().time() < until:
                await asyncio.sleep(0.01)
                ticks += 1
            asked = asyncio.get_running_loop().time()
            relay.stop()
            await running
            return ticks, asyncio.get_running_loop().time() - asked
        finally:
            await store.close()

    ticks, stopping = asyncio.run(scenario())
    assert ticks >= 40, f"the loop ran the ticker {ticks} times in 1 s: something blocked it"
    assert stopping < 2.0, f"stop took {stopping:.2f} s"
