"""Stream deletion and retention through the async face: a bridged store deletes and
truncates as its sync store does, and a store without the capability is named."""

from __future__ import annotations

import asyncio

import pytest

from esrc_core import (
    AggregateNotFound,
    BridgedEventStore,
    NotSupportedError,
    RawEvent,
    RawSnapshot,
    StreamDeletedError,
    open_event_store,
)
from tests.core.test_unit_of_work import PlainStore


def test_a_bridged_store_deletes_and_truncates() -> None:
    """``delete_stream`` and ``truncate_stream`` on a bridged memory store: the same
    results as the sync store's."""

    async def scenario() -> None:
        store = BridgedEventStore(open_event_store("memory://"))
        events = [RawEvent("E", b"%d" % n) for n in range(4)]
        await store.add_aggregate("Order", "a", events)
        await store.add_snapshot("Order", "a", RawSnapshot(3, b"three"))
        assert await store.truncate_stream("Order", "a") == 3
        assert [e.data for e in await store.events("Order", "a", 3)] == [b"3"]
        await store.delete_stream("Order", "a")
        assert not await store.contains_aggregate("Order", "a")
        with pytest.raises(StreamDeletedError):
            await store.append_events("Order", "a", 4, events[:1])
        with pytest.raises(AggregateNotFound):
            await store.delete_stream("Order", "never")
        await store.close()

    asyncio.run(scenario())


def test_a_store_without_the_capability_is_named() -> None:
    """A bridged store whose sync store cannot delete raises NotSupportedError naming
    the capability, from both methods."""

    async def scenario() -> None:
        store = BridgedEventStore(PlainStore())
        with pytest.raises(NotSupportedError, match="'delete-streams'"):
            await store.delete_stream("Order", "a")
        with pytest.raises(NotSupportedError, match="'delete-streams'"):
            await store.truncate_stream("Order", "a")

    asyncio.run(scenario())
