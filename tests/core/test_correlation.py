"""Correlation and causation (esrc_core.correlation): what a save outside any context
records, what correlation() and handling() make the events stored inside carry, that
the context follows asyncio tasks and copied contexts into threads and never leaks
between them, and correlated_events()."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import uuid
from typing import Any

import pytest
from esrc_core.correlation import (
    Causation,
    correlation,
    correlation_metadata,
    current_causation,
    handling,
)
from esrc_core.inspection import correlated_events

from esrc_core import AsyncRepository, BridgedEventStore, RawEvent, RelayEvent, Repository
from esrc_memory import MemoryEventStore
from tests.core.domain import Counter, registry


def _meta(store: MemoryEventStore, aggregate_id: str) -> list[dict[str, str]]:
    return [dict(e.metadata) for e in store.events("Counter", aggregate_id)]


def _relayed(metadata: dict[str, str]) -> RelayEvent:
    return RelayEvent("Invoice", uuid.UUID(int=7), 3, 12, RawEvent("BidAccepted", b"{}", metadata))


def test_each_save_outside_a_context_starts_a_correlation() -> None:
    store = MemoryEventStore()
    repo = Repository(store, Counter, registry)
    counter = Counter("c")
    counter.increment()
    counter.increment()
    repo.add(counter)
    repo.update_by_id("c", lambda c: c.increment())
    *added, third = _meta(store, "c")
    first = added[0]
    assert len(added) >= 2
    assert all(m == first for m in added)  # one save, one correlation
    assert set(first) == set(third) == {"correlation_id"}
    assert first["correlation_id"] != third["correlation_id"]
    assert str(uuid.UUID(first["correlation_id"])) == first["correlation_id"]
    assert current_causation() is None


def test_correlation_shares_one_id_and_restores_the_outer_context() -> None:
    store = MemoryEventStore()
    repo = Repository(store, Counter, registry)
    with correlation("request-17") as outer:
        assert outer == Causation("request-17") == current_causation()
        repo.add(Counter("a"))
        repo.add(Counter("b"))
        with correlation() as inner:
            repo.add(Counter("c"))
        assert current_causation() == outer
    assert current_causation() is None
    assert _meta(store, "a") == _meta(store, "b") == [{"correlation_id": "request-17"}]
    assert _meta(store, "c") == [{"correlation_id": inner.correlation_id}]
    assert inner.correlation_id != "request-17"


def test_handling_an_event_makes_it_the_cause() -> None:
    """Inside handling(event) the events stored carry the event's correlation id and
    its message id as causation; an event without a correlation id starts one at its
    own message id; metadata given to the save wins."""
    store = MemoryEventStore()
    repo = Repository(store, Counter, registry)
    cause = _relayed({"correlation_id": "k-1"})
    with handling(cause) as context:
        assert context == Causation("k-1", cause.message_id)
        repo.add(Counter("a"))
        repo.add(Counter("b"), metadata={"correlation_id": "mine"})
    with handling(_relayed({})):
        repo.add(Counter("c"))
    with handling(message_id="Investor/u:x/3", metadata={"correlation_id": "k-2"}):
        repo.add(Counter("d"))
    assert _meta(store, "a") == [{"correlation_id": "k-1", "causation_id": cause.message_id}]
    assert _meta(store, "b") == [{"correlation_id": "mine", "causation_id": cause.message_id}]
    assert _meta(store, "c") == [
        {"correlation_id": cause.message_id, "causation_id": cause.message_id}
    ]
    assert _meta(store, "d") == [{"correlation_id": "k-2", "causation_id": "Investor/u:x/3"}]


@pytest.mark.parametrize(
    "call",
    [
        handling,
        lambda: handling(_relayed({}), message_id="x"),
        lambda: handling(message_id=""),
        lambda: correlation(""),
    ],
    ids=["nothing", "both", "empty message id", "empty correlation id"],
)
def test_bad_arguments_raise_value_error(call: Any) -> None:
    with pytest.raises(ValueError, match=r"message_id|correlation_id"), call():
        pass


def test_threads_see_the_context_only_through_a_copy() -> None:
    """A thread started with a copy of the context (what asyncio.to_thread and
    contextvars.copy_context().run do) records the correlation; a plain thread starts
    with an empty context, so its save starts a correlation of its own."""
    seen: dict[str, dict[str, str]] = {}

    def save(name: str) -> None:
        seen[name] = correlation_metadata()

    with correlation("c-1"):
        copied = threading.Thread(target=contextvars.copy_context().run, args=(save, "copied"))
        plain = threading.Thread(target=save, args=("plain",))
        for thread in (copied, plain):
            thread.start()
            thread.join()
    assert seen["copied"] == {"correlation_id": "c-1"}
    assert seen["plain"]["correlation_id"] != "c-1"


def test_concurrent_tasks_keep_their_own_causes() -> None:
    """Two asyncio tasks handling different events through an AsyncRepository at the
    same time: each task's events carry its own cause, never the other's."""

    async def scenario() -> list[dict[str, str]]:
        store = MemoryEventStore()
        repo = AsyncRepository(BridgedEventStore(store), Counter, registry)
        gate = asyncio.Barrier(2)

        async def handle(n: int) -> None:
            event = RelayEvent(
                "Bid", n, 1, n, RawEvent("Placed", b"{}", {"correlation_id": f"k{n}"})
            )
            with handling(event):
                await gate.wait()  # both contexts are open now
                await repo.add(Counter(f"c{n}"))
                await asyncio.to_thread(lambda: None)
                await repo.update_by_id(f"c{n}", lambda c: c.increment())

        await asyncio.gather(handle(1), handle(2))
        return _meta(store, "c1") + _meta(store, "c2")

    assert asyncio.run(scenario()) == [
        {"correlation_id": "k1", "causation_id": "Bid/i:1/1"},
        {"correlation_id": "k1", "causation_id": "Bid/i:1/1"},
        {"correlation_id": "k2", "causation_id": "Bid/i:2/1"},
        {"correlation_id": "k2", "causation_id": "Bid/i:2/1"},
    ]


def test_correlated_events_across_streams_by_position() -> None:
    store = MemoryEventStore()
    repo = Repository(store, Counter, registry)
    with correlation("k"):
        repo.add(Counter("a"))
    repo.add(Counter("other"))
    with handling(message_id="Counter/s:a/1", metadata={"correlation_id": "k"}):
        repo.add(Counter("b"))
    found = correlated_events(store, "k", page=1)
    assert [(e.aggregate_id, e.position) for e in found] == [("a", 1), ("b", 3)]
    assert correlated_events(store, "nothing") == []
    with pytest.raises(ValueError, match="correlation_id"):
        correlated_events(store, "")
