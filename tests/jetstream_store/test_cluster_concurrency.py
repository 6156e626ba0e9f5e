"""Concurrent writers on a stream replicated over three nodes (an R3 stream), through
stores connected to each node: a lost race is a conflict, never an error whose outcome
is unknown."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from esrc_core.errors import OptimisticConcurrencyError, StoreUnavailableError
from esrc_core.events import RawEvent
from esrc_testkit.races import run_in_threads

from esrc_core import EventStore, open_event_store

from .conftest import Cluster

NODES = ("n1", "n2", "n3")


def _open(url: str, name: str, *, timeout: float = 30) -> EventStore:
    """The store of stream ``name`` (three replicas), retried while the cluster elects
    its leaders."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return open_event_store(f"{url}?stream={name}&prefix={name.lower()}&replicas=3")
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _add_when_ready(store: EventStore, aggregate_id: str, *, timeout: float = 30) -> None:
    """Add ``aggregate_id`` through ``store``, retried while its node does not route
    publishes to the new stream yet (no responders)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            store.add_aggregate("Order", aggregate_id, [RawEvent("Opened", b"")])
            return
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def stores(shared_cluster: Cluster) -> Iterator[list[EventStore]]:
    """One store connected to each node of the cluster, all on one R3 stream that each
    node already routes publishes to: two of them talk to a server that is not the
    stream's leader."""
    name = f"RACE{uuid.uuid4().hex[:8]}"
    opened = [_open(shared_cluster.url_of(node), name) for node in NODES]
    for index, store in enumerate(opened):
        _add_when_ready(store, f"ready-{index}")
    yield opened
    for store in opened:
        store.close()


def test_racing_appends_lose_with_a_conflict(stores: list[EventStore]) -> None:
    """Sixteen writers, spread over the three nodes, race five times to append at one
    version: each race has exactly one winner and every loser gets
    OptimisticConcurrencyError (the server's refusal while the winner's publish is still
    being replicated is not an error whose outcome is unknown: nothing was stored)."""
    writers, rounds = 16, 5
    _add_when_ready(stores[0], "contended")
    barrier = threading.Barrier(writers, timeout=120)

    def race(writer: int) -> list[bool]:
        store = stores[writer % len(stores)]
        won: list[bool] = []
        for round_ in range(rounds):
            barrier.wait()
            try:
                store.append_events(
                    "Order", "contended", 1 + round_, [RawEvent("Won", f"{writer}".encode())]
                )
            except OptimisticConcurrencyError:
                won.append(False)
            else:
                won.append(True)
            barrier.wait()
        return won

    outcomes = run_in_threads(writers, race, barrier=barrier)
    winners = [[w for w in range(writers) if outcomes[w][r]] for r in range(rounds)]
    assert all(len(w) == 1 for w in winners), f"winners of each race: {winners}"
    stored = stores[1].events("Order", "contended")
    assert [e.data for e in stored] == [b""] + [f"{w[0]}".encode() for w in winners]
