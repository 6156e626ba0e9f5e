"""The JetStream store on a three-node cluster (an R3 stream) when nodes die: no
acknowledged event is lost or doubled, appends resume once a new leader is elected, and
a node cut off from the other two accepts no write."""

from __future__ import annotations

import asyncio
import threading
import time

import nats
import pytest
from esrc_core.errors import OptimisticConcurrencyError, StoreUnavailableError
from esrc_core.events import RawEvent

from esrc_core import EventStore, open_event_store

from .conftest import Cluster

STREAM = "R3"


def _open(url: str, *, timeout: float = 30) -> EventStore:
    """The store of an R3 stream, retried while the cluster elects its leaders."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return open_event_store(f"{url}?stream={STREAM}&prefix=r3&replicas=3&timeout=2")
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _stream_leader(url: str) -> str:
    async def ask() -> str:
        client = await nats.connect(servers)
        try:
            info = await client.jetstream().stream_info(STREAM)
            assert info.cluster is not None
            assert info.cluster.leader is not None
            return str(info.cluster.leader)
        finally:
            await client.close()

    servers = ["nats://" + host for host in url.removeprefix("nats://").split(",")]
    return asyncio.run(ask())


def _append_one(store: EventStore, payload: bytes, deadline: float) -> None:
    """Append one event after the stream's last, until it is acknowledged. After an
    error whose outcome is unknown, the stream is read: an event already stored with
    ``payload`` counts as appended (the server stored it before the answer was lost)."""
    while True:
        try:
            stored = store.events("Order", "o-1")
            if stored and stored[-1].data == payload:
                return
            store.append_events("Order", "o-1", len(stored), [RawEvent("Item", payload)])
            return
        except (StoreUnavailableError, OptimisticConcurrencyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_killing_the_stream_leader_mid_writes_loses_and_doubles_nothing(
    cluster: Cluster,
) -> None:
    store = _open(cluster.url)
    try:
        store.add_aggregate("Order", "o-1", [RawEvent("Item", b"0")])
        acknowledged = [b"0"]
        leader = _stream_leader(cluster.url)
        killer = threading.Timer(0.5, cluster.kill, args=(leader,))
        killer.start()
        deadline = time.monotonic() + 60
        after_kill = 0
        for n in range(1, 120):
            payload = str(n).encode()
            _append_one(store, payload, deadline)
            acknowledged.append(payload)
            if not cluster.running(leader):
                after_kill += 1
        killer.join()
        stored = [event.data for event in store.events("Order", "o-1")]
    finally:
        store.close()
    assert not cluster.running(leader)
    assert after_kill > 0, "no append was acknowledged after the leader died"
    assert stored == acknowledged
    assert _stream_leader(cluster.url) != leader


def test_a_node_cut_off_from_the_other_two_accepts_no_write(cluster: Cluster) -> None:
    with _open(cluster.url) as store:
        store.add_aggregate("Order", "o-1", [RawEvent("Item", b"0")])
    lonely = _open(cluster.url_of("n1"))
    cluster.kill("n2")
    cluster.kill("n3")
    try:
        with pytest.raises(StoreUnavailableError):
            lonely.append_events("Order", "o-1", 1, [RawEvent("Item", b"1")])
    finally:
        lonely.close()
