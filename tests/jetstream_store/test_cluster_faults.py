"""The JetStream store on a three-node cluster (R3 streams) when nodes die.

Rounds of a stream leader SIGKILLed while eight writers append (alone, in atomic
batches, and racing each other on a shared stream) and a relay runs, then started again
on its data directory: every acknowledged append is stored exactly once at the version
it was given, every stream's versions run 1..n, an append whose outcome the store said
was unknown (:class:`~esrc_core.errors.StoreUnavailableError`) is stored whole or not at
all, one refused as a conflict is not stored, and the relay hands over every stored
event in stream sequence order. Also: a node killed for good leaves a store that goes on
appending on the other two, and a node left alone accepts no write."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from esrc_core.errors import OptimisticConcurrencyError, StoreUnavailableError
from esrc_core.events import RawEvent
from esrc_core.relay import EventStoreOutbox, Relay, RelayEvent
from esrc_nats.store import NatsEventStore

from esrc_core import open_event_store

from .conftest import Cluster, append_one, start_cluster, until

T = TypeVar("T")
ROUNDS = 10
WRITERS = 8
SHARED = ("Ledger", "shared")
"""The stream every writer appends to now and then (conflicts are expected there)."""


def _open(url: str, stream: str, *, timeout: float = 30) -> NatsEventStore:
    """The store of R3 stream ``stream``, retried while the cluster elects leaders."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            store = open_event_store(
                f"{url}?stream={stream}&prefix={stream.lower()}&replicas=3&timeout=2"
            )
            assert isinstance(store, NatsEventStore)
            return store
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _replica(cluster: Cluster, node: str, stream: str) -> dict[str, Any] | None:
    """Node ``node``'s own replica of ``stream`` as ``/jsz`` reports it (``state``,
    ``cluster``), ``None`` when it has none (yet) or does not answer."""
    try:
        jsz = cluster.monitor(node, "jsz?accounts=true&streams=true")
    except OSError:
        return None
    for account in jsz.get("account_details") or []:
        for found in account.get("stream_detail") or []:
            if found["name"] == stream:
                replica: dict[str, Any] = found
                return replica
    return None


def _leader(cluster: Cluster, stream: str) -> str | None:
    """The leader of ``stream`` as a running node that holds a replica sees it."""
    for node in cluster.ports:
        if cluster.running(node):
            replica = _replica(cluster, node, stream)
            if replica is not None and replica["cluster"].get("leader"):
                return str(replica["cluster"]["leader"])
    return None


def _caught_up(cluster: Cluster, stream: str) -> bool | None:
    """True when all three replicas of ``stream`` hold the same messages."""
    states = [_replica(cluster, node, stream) for node in cluster.ports]
    if any(state is None for state in states):
        return None
    seen = {(s["state"]["messages"], s["state"]["last_seq"]) for s in states if s is not None}
    return True if len(seen) == 1 else None


@dataclass(frozen=True)
class _Event:
    """An event as a writer meant it: its stream, version and payload."""

    aggregate_type: str
    aggregate_id: str
    version: int
    payload: bytes


@dataclass
class _Writer:
    """What one writer thread saw: appends acknowledged, refused as conflicts, and of
    unknown outcome (each an append's events), and anything else it was raised."""

    acknowledged: list[list[_Event]] = field(default_factory=list)
    refused: list[list[_Event]] = field(default_factory=list)
    maybe: list[list[_Event]] = field(default_factory=list)
    unexpected: list[BaseException] = field(default_factory=list)

    def acked(self) -> int:
        """How many appends were acknowledged so far."""
        return len(self.acknowledged)


def _write(
    store: NatsEventStore, writer: int, tag: str, seen: _Writer, stop: threading.Event
) -> None:
    """Append until ``stop``: two appends in three to the writer's own stream, one to
    the shared one, of one to three events each; record every outcome in ``seen``.
    The version is read before each append to the shared stream and after every
    append to the own one that did not succeed."""
    own = ("Order", f"w{writer}")
    known: dict[tuple[str, str], int | None] = {own: 1, SHARED: None}
    n = 0
    while not stop.is_set():
        n += 1
        target = SHARED if n % 3 == 0 else own
        version = known[target]
        if version is None:
            try:
                version = len(store.events(*target))
            except StoreUnavailableError:
                time.sleep(0.05)
                continue
            except Exception as error:
                seen.unexpected.append(error)
                return
        events = [
            _Event(*target, version + k, f"{tag}/{writer}/{n}/{k}".encode())
            for k in range(1, n % 3 + 2)
        ]
        known[target] = None
        try:
            store.append_events(
                *target, version, [RawEvent("Item", event.payload) for event in events]
            )
        except OptimisticConcurrencyError:
            seen.refused.append(events)
        except StoreUnavailableError:
            seen.maybe.append(events)
            time.sleep(0.05)
        except Exception as error:
            seen.unexpected.append(error)
            return
        else:
            seen.acknowledged.append(events)
            if target == own:
                known[own] = version + len(events)


class _Recorder:
    """A publisher that keeps every event it is handed, in order."""

    def __init__(self) -> None:
        self.delivered: list[RelayEvent] = []

    def publish(self, event: RelayEvent) -> None:
        """Keep ``event``."""
        self.delivered.append(event)

    def close(self) -> None:
        """Nothing to close."""


class _MarkWatch:
    """An outbox that remembers the positions of events whose marking as published
    raised (the checkpoint may not have moved, so they may be handed out again)."""

    def __init__(self, outbox: EventStoreOutbox) -> None:
        self._outbox = outbox
        self.unmarked: set[int] = set()

    @property
    def name(self) -> str:
        """The outbox's relay name."""
        return self._outbox.name

    def unpublished_events(self, limit: int) -> list[RelayEvent]:
        """The outbox's."""
        return self._outbox.unpublished_events(limit)

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        """The outbox's; the events' positions are remembered if it raises."""
        try:
            self._outbox.mark_events_as_published(events)
        except BaseException:
            self.unmarked.update(event.position for event in events)
            raise


def _relay(relay: Relay, stop: threading.Event, errors: list[BaseException]) -> None:
    """Run ``relay`` until ``stop`` is set and its outbox is empty, retrying through
    :class:`StoreUnavailableError`; anything else raised ends it in ``errors``."""
    while True:
        try:
            relayed = relay.run_once()
        except StoreUnavailableError:
            time.sleep(0.05)
            continue
        except Exception as error:
            errors.append(error)
            return
        if relayed == 0:
            if stop.is_set():
                return
            time.sleep(0.02)


@pytest.fixture(scope="module")
def fault_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One three-node cluster for every round; a round starts with all three running."""
    yield from start_cluster(Path(tmp_path_factory.mktemp("faults")), proxied=False)


@dataclass
class _Round:
    """What one round did and saw: the node killed and the leader after it, each
    writer's outcomes, the stored events of every stream (by type and id), what the
    relay delivered and the positions whose marking failed."""

    killed: str = ""
    new_leader: str | None = None
    seen: list[_Writer] = field(default_factory=lambda: [_Writer() for _ in range(WRITERS)])
    stored: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    recorder: _Recorder = field(default_factory=_Recorder)
    unmarked: set[int] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)


def _kill_and_restart_the_leader(cluster: Cluster, stream: str, seen: list[_Writer]) -> str:
    """While the writers write: kill the stream's leader once each writer was
    acknowledged, wait for each to be acknowledged again by the other two, start it
    again and wait until it holds what the others held then. Returns the node."""
    until(
        "every writer acknowledged",
        lambda: True if all(s.acked() >= 3 for s in seen) else None,
        timeout=20,
    )
    leader = until("a stream leader", lambda: _leader(cluster, stream), timeout=10)
    cluster.kill(leader)
    before = [s.acked() for s in seen]
    until(
        f"every writer acknowledged after {leader} was killed",
        lambda: (
            True if all(s.acked() >= b + 3 for s, b in zip(seen, before, strict=True)) else None
        ),
        timeout=40,
    )
    cluster.restart(leader)
    other = next(node for node in cluster.ports if node != leader)
    target = until(
        "the survivors' last sequence",
        lambda: (_replica(cluster, other, stream) or {}).get("state", {}).get("last_seq"),
        timeout=10,
    )
    until(
        f"{leader} restarted and caught up to sequence {target}",
        lambda: (
            True
            if (_replica(cluster, leader, stream) or {}).get("state", {}).get("last_seq", 0)
            >= target
            else None
        ),
        timeout=30,
    )
    return leader


def _fault_round(cluster: Cluster, stream: str, tag: str) -> _Round:
    """Run one round on a new stream (see the module's docstring) and return what it
    saw once the three replicas are equal and the relay delivered every stored event."""
    done = _Round()
    store = _open(cluster.url, stream)
    stores = [_open(cluster.url, stream) for _ in range(WRITERS // 2)]
    relay_store = _open(cluster.url, stream)
    stop_writers, stop_relay = threading.Event(), threading.Event()
    outbox = _MarkWatch(relay_store.outbox("faults"))
    relay = threading.Thread(
        target=_relay, args=(Relay(outbox, done.recorder, batch_size=50), stop_relay, done.errors)
    )
    writers = [
        threading.Thread(
            target=_write, args=(stores[i % len(stores)], i, tag, done.seen[i], stop_writers)
        )
        for i in range(WRITERS)
    ]
    try:
        store.add_aggregate(*SHARED, [RawEvent("Opened", f"{tag}/shared".encode())])
        for i in range(WRITERS):
            store.add_aggregate("Order", f"w{i}", [RawEvent("Opened", f"{tag}/{i}".encode())])
        relay.start()
        for writer in writers:
            writer.start()
        done.killed = _kill_and_restart_the_leader(cluster, stream, done.seen)
        done.new_leader = _leader(cluster, stream)
        stop_writers.set()
        for writer in writers:
            writer.join(timeout=30)
            assert not writer.is_alive(), "a writer did not stop within 30 s"
        until("all three replicas equal", lambda: _caught_up(cluster, stream), timeout=30)

        for info in store.streams():
            key = (info.aggregate_type, str(info.aggregate_id))
            done.stored[key] = store.recorded_events(info.aggregate_type, info.aggregate_id)
        positions = {e.position for events in done.stored.values() for e in events}
        until(
            "the relay delivered every stored event",
            lambda: True if positions <= {e.position for e in done.recorder.delivered} else None,
            timeout=30,
        )
        stop_relay.set()
        relay.join(timeout=30)
        assert not relay.is_alive(), "the relay did not stop within 30 s"
        assert relay_store.outbox("faults").unpublished_events(10) == []
    finally:
        stop_writers.set()
        stop_relay.set()
        for thread in [*writers, relay]:
            if thread.is_alive():
                thread.join(timeout=30)
        for each in [store, relay_store, *stores]:
            each.close()
    done.unmarked = outbox.unmarked
    done.errors += [error for s in done.seen for error in s.unexpected]
    return done


def _where(done: _Round, tag: str) -> dict[bytes, tuple[tuple[str, str], int, int]]:
    """Where each stored payload is (stream, version, position), after checking that
    every stream holds versions 1..n, each payload once, and only what was appended."""
    assert set(done.stored) == {SHARED, *(("Order", f"w{i}") for i in range(WRITERS))}
    where: dict[bytes, tuple[tuple[str, str], int, int]] = {}
    for key, events in done.stored.items():
        versions = [e.version for e in events]
        assert versions == list(range(1, len(events) + 1)), f"{key}: versions {versions}"
        for e in events:
            assert e.event.data not in where, f"{e.event.data!r} stored twice"
            where[e.event.data] = (key, e.version, e.position)
    asked = {e.payload for s in done.seen for a in s.acknowledged + s.maybe for e in a}
    unasked = set(where) - asked - {f"{tag}/shared".encode()}
    assert unasked == {f"{tag}/{i}".encode() for i in range(WRITERS)}, "events nobody appended"
    return where


def _check_appends(done: _Round, where: dict[bytes, tuple[tuple[str, str], int, int]]) -> None:
    """Acknowledged appends are stored at their versions (a batch on consecutive
    positions); one of unknown outcome is stored whole at its versions or not at all;
    one refused as a conflict is not stored."""
    for append in (a for s in done.seen for a in s.acknowledged):
        got = [where.get(e.payload) for e in append]
        want = [((e.aggregate_type, e.aggregate_id), e.version) for e in append]
        assert [g[:2] if g else None for g in got] == want, f"acknowledged {append}: {got}"
        first = got[0][2] if got[0] else 0
        assert [g[2] if g else None for g in got] == list(range(first, first + len(append)))
    for append in (a for s in done.seen for a in s.maybe):
        got = [where.get(e.payload) for e in append]
        if got != [None] * len(append):
            want = [((e.aggregate_type, e.aggregate_id), e.version) for e in append]
            assert [g[:2] if g else None for g in got] == want, f"unknown {append}: {got}"
    refused = [a for s in done.seen for a in s.refused]
    assert [a for a in refused if any(e.payload in where for e in a)] == []


def _check_relay(done: _Round, where: dict[bytes, tuple[tuple[str, str], int, int]]) -> int:
    """The relay handed over every stored event, first in position order, as stored;
    again only when marking its batch as published failed. Returns how many again."""
    firsts: list[int] = []
    again: list[int] = []
    for event in done.recorder.delivered:
        key, version, position = where[event.event.data]
        assert (event.aggregate_type, str(event.aggregate_id), event.version) == (*key, version)
        assert event.position == position
        (again if event.position in firsts else firsts).append(event.position)
    assert firsts == sorted(p for _, _, p in where.values()), "relay order or coverage differs"
    assert set(again) <= done.unmarked, f"handed over again though marked: {again}"
    return len(again)


@pytest.mark.parametrize("round_", range(1, ROUNDS + 1))
def test_killing_the_stream_leader_mid_writes_and_relaying_loses_and_doubles_nothing(
    fault_cluster: Cluster, round_: int
) -> None:
    for node in fault_cluster.ports:
        if not fault_cluster.running(node):
            fault_cluster.restart(node)
    tag = f"r{round_}"
    done = _fault_round(fault_cluster, f"FAULTS{round_}", tag)
    assert done.errors == [], f"raised: {done.errors}"
    assert done.new_leader not in {None, done.killed}, f"the leader after {done.killed}"
    where = _where(done, tag)
    _check_appends(done, where)
    again = _check_relay(done, where)
    maybe = [a for s in done.seen for a in s.maybe]
    print(
        f"round {round_}: killed {done.killed}, new leader {done.new_leader}; "
        f"{sum(s.acked() for s in done.seen)} acknowledged, {len(maybe)} unknown "
        f"({sum(1 for a in maybe if a[0].payload in where)} stored), "
        f"{sum(len(s.refused) for s in done.seen)} conflicts; {len(where)} events, "
        f"{len(done.recorder.delivered)} deliveries ({again} again)"
    )


@pytest.mark.parametrize("dead", ["leader", "follower"])
def test_a_node_killed_for_good_leaves_a_store_appending_on_the_other_two(
    cluster: Cluster, dead: str
) -> None:
    store = _open(cluster.url, "R3")
    try:
        store.add_aggregate("Order", "o-1", [RawEvent("Item", b"0")])
        acknowledged = [b"0"]
        leader = until("a stream leader", lambda: _leader(cluster, "R3"), timeout=10)
        node = leader if dead == "leader" else next(n for n in cluster.ports if n != leader)
        cluster.kill(node)
        deadline = time.monotonic() + 40
        for n in range(1, 31):
            append_one(store, str(n).encode(), deadline)
            acknowledged.append(str(n).encode())
        store.add_aggregate("Order", "o-2", [RawEvent("Item", b"a"), RawEvent("Item", b"b")])
        assert [event.data for event in store.events("Order", "o-1")] == acknowledged
        assert [event.data for event in store.events("Order", "o-2")] == [b"a", b"b"]
        assert not cluster.running(node)
    finally:
        store.close()
    survivors = [n for n in cluster.ports if n != node]
    with _open(cluster.urls_of(*survivors), "R3") as again:
        again.append_events("Order", "o-1", len(acknowledged), [RawEvent("Item", b"last")])
        assert [event.data for event in again.events("Order", "o-1")] == [*acknowledged, b"last"]


def test_a_node_cut_off_from_the_other_two_accepts_no_write(cluster: Cluster) -> None:
    with _open(cluster.url, "R3") as store:
        store.add_aggregate("Order", "o-1", [RawEvent("Item", b"0")])
    lonely = _open(cluster.url_of("n1"), "R3")
    cluster.kill("n2")
    cluster.kill("n3")
    try:
        with pytest.raises(StoreUnavailableError):
            lonely.append_events("Order", "o-1", 1, [RawEvent("Item", b"1")])
    finally:
        lonely.close()
