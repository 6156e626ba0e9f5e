"""The JetStream store on a three-node cluster (an R3 stream) when the network cuts one
node away from the other two while every node keeps running: a store that reaches only
the cut-off node has its appends refused, a store on the other two goes on appending
(after they elect a new stream leader if the cut-off node led), and once the network
heals every node holds exactly the acknowledged events.

The partition is real: every route between nodes runs through a TCP proxy of the test
(see ``partitionable_cluster``), and each test checks on the nodes' ``/routez`` that no
route bypasses the proxies and that the cut-off node has no route left."""

from __future__ import annotations

import functools
import time
from typing import Any, TypeVar

import pytest
from esrc_core.errors import StoreUnavailableError
from esrc_core.events import RawEvent

from esrc_core import EventStore, open_event_store

from .conftest import Cluster, append_one, until

STREAM = "R3"
T = TypeVar("T")


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


def _replica(cluster: Cluster, node: str) -> dict[str, Any]:
    """What node ``node`` reports of its own replica of the stream on ``/jsz``: its
    ``state`` (messages, last_seq) and ``cluster`` (the leader it knows of)."""
    jsz = cluster.monitor(node, "jsz?accounts=true&streams=true")
    for account in jsz.get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            if stream["name"] == STREAM:
                found: dict[str, Any] = stream
                return found
    raise AssertionError(f"{node} has no replica of {STREAM}: {jsz}")


def _leader_seen_by(cluster: Cluster, node: str) -> str | None:
    return _replica(cluster, node)["cluster"].get("leader") or None


def _peers(cluster: Cluster, node: str) -> set[str]:
    return {str(route.get("remote_name")) for route in cluster.routes(node)}


def _routed(cluster: Cluster) -> bool | None:
    """True when every node has routes to both others, all through the proxies."""
    everyone = set(cluster.ports)
    if all(_peers(cluster, node) == everyone - {node} for node in everyone):
        assert cluster.bypassing_routes() == [], "routes bypass the proxies"
        return True
    return None


def _cut_off(cluster: Cluster, node: str) -> bool | None:
    """True when ``node`` has no route and the other nodes route only to each other,
    all through the proxies."""
    others = set(cluster.ports) - {node}
    if cluster.routes(node) or any(_peers(cluster, other) != others - {other} for other in others):
        return None
    assert cluster.bypassing_routes() == [], "routes bypass the proxies"
    return True


def _refused(store: EventStore, version: int, payload: bytes) -> float:
    """Seconds until ``store`` refuses an append of ``payload`` at ``version`` with
    :class:`StoreUnavailableError` (the test fails if it is acknowledged)."""
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        store.append_events("Order", "o-1", version, [RawEvent("Item", payload)])
    return time.monotonic() - started


@pytest.mark.parametrize("cut_off", ["leader", "follower"])
def test_a_partitioned_node_refuses_writes_the_majority_accepts_and_nothing_diverges(
    partitionable_cluster: Cluster, cut_off: str
) -> None:
    cluster = partitionable_cluster
    until("every node routed to both others", lambda: _routed(cluster), timeout=15)
    acknowledged: list[bytes] = []
    with _open(cluster.url) as store:
        store.add_aggregate("Order", "o-1", [RawEvent("Item", b"0")])
        acknowledged.append(b"0")
        for n in range(1, 5):
            store.append_events("Order", "o-1", n, [RawEvent("Item", str(n).encode())])
            acknowledged.append(str(n).encode())
    leader = until("a stream leader", lambda: _leader_seen_by(cluster, "n1"), timeout=10)
    node = leader if cut_off == "leader" else next(n for n in cluster.ports if n != leader)
    majority = [n for n in cluster.ports if n != node]
    lonely = _open(cluster.url_of(node))
    both = _open(cluster.urls_of(*majority))
    try:
        before_cut = len(acknowledged)
        cluster.cut(node)
        until(f"{node} cut off", lambda: _cut_off(cluster, node), timeout=5)

        # The cut-off node stores nothing, at once and after the other two moved on.
        assert _refused(lonely, before_cut, b"lonely-1") < 10

        deadline = time.monotonic() + 30
        for n in range(before_cut, before_cut + 5):
            append_one(both, str(n).encode(), deadline)
            acknowledged.append(str(n).encode())
        new_leader = _leader_seen_by(cluster, majority[0])
        assert new_leader in majority, f"the majority's stream leader is {new_leader}"
        if cut_off == "follower":
            assert new_leader == leader, "the leader changed though it was not cut off"

        assert _refused(lonely, before_cut, b"lonely-2") < 10
        assert _cut_off(cluster, node), f"{node} found a route during the partition"
    finally:
        cluster.heal(node)
        lonely.close()
        both.close()

    until("the healed node routed again", lambda: _routed(cluster), timeout=15)

    def caught_up() -> bool | None:
        states = {n: _replica(cluster, n)["state"] for n in cluster.ports}
        want = {"messages": len(acknowledged), "last_seq": states[majority[0]]["last_seq"]}
        got = {n: {k: s[k] for k in want} for n, s in states.items()}
        return True if all(g == want for g in got.values()) else None

    until(f"{node} caught up with the majority", caught_up, timeout=20)

    def read(store: EventStore, version: int) -> list[bytes] | None:
        # Reads go to the stream's leader, which may be busy settling the healed
        # node's return for a few seconds (503): asked again, within the bound.
        try:
            return [event.data for event in store.events("Order", "o-1", version)]
        except StoreUnavailableError:
            return None

    for each in cluster.ports:
        with _open(cluster.url_of(each)) as store:
            for version in range(len(acknowledged) + 1):
                got = until(
                    f"a read through {each}", functools.partial(read, store, version), timeout=30
                )
                assert got == acknowledged[version:], (
                    f"{each} after version {version}: got {got}, want {acknowledged[version:]}"
                )
