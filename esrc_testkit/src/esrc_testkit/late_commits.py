"""Acceptance tests of late commits (capability ``"hold-commits"``, with ``"outbox"``
and ``"threads"``): appends held inside their transaction on purpose, through the
store's :class:`~esrc_core.late_commits.HoldsCommits` hook, while later appends commit;
every outbox reader must still see every event exactly once, each stream in version
order, and all readers the same one order.

This is the classic outbox bug, made to happen every time instead of once in a
while: a reader that reads "past the highest position I have marked" skips an event
whose transaction took a lower position and committed later. See "Late commits" in
docs/plugins.md.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

from esrc_core.atomic_appends import AtomicAppends, StreamAppend
from esrc_core.capabilities import Capability
from esrc_core.events import RawEvent
from esrc_core.late_commits import CommitHold, HoldsCommits
from esrc_core.relay import EventStoreOutbox, Relay, RelayEvent
from esrc_core.store import EventStore

from esrc_testkit.capabilities import capable, requires
from esrc_testkit.checks import assert_order_consistent_with_versions
from esrc_testkit.fixtures import EVERYTHING, StoreSuite
from esrc_testkit.outbox import ListPublisher
from esrc_testkit.samples import ORDER

__all__ = ["LateCommitAcceptance"]

SETTLE_SECONDS = 60.0
"""How long a reader waits for events that committed but are still held back (on a
server database, by a transaction of another session) before the test fails."""
CAUGHT_UP_SECONDS = 2.0
"""How long a reader waits for events a fresh reader already got: they are committed
and handed out, so a reader still without them skipped them."""


class _HeldAppend:
    """An append run in a thread of its own, which a hold stops before it commits."""

    def __init__(self, append: Callable[[], None], name: str) -> None:
        self._append = append
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name=f"esrc-testkit-{name}")
        self._thread.start()

    def _run(self) -> None:
        try:
            self._append()
        except BaseException as err:
            self._failure.append(err)

    def join(self) -> None:
        """Wait for the append to return; raise what it raised."""
        self._thread.join(SETTLE_SECONDS)
        assert not self._thread.is_alive(), "a released append did not commit"
        if self._failure:
            raise self._failure[0]


def _held(name: str, hold: CommitHold) -> list[RawEvent]:
    return [RawEvent(name, name.encode(), dict(hold.metadata))]


def _event(name: str) -> list[RawEvent]:
    return [RawEvent(name, name.encode())]


def _ids(events: Sequence[RelayEvent]) -> list[str]:
    return [e.message_id for e in events]


def _read_available(outbox: EventStoreOutbox) -> list[RelayEvent]:
    """Read and mark, two events at a time, until the outbox has nothing to hand out
    now: what a relay does while appends are held."""
    got: list[RelayEvent] = []
    while batch := outbox.unpublished_events(2):
        got.extend(batch)
        outbox.mark_events_as_published(batch)
    return got


def _read_until(
    outbox: EventStoreOutbox,
    got: list[RelayEvent],
    count: int,
    seconds: float = SETTLE_SECONDS,
) -> list[RelayEvent]:
    """Keep reading and marking after ``got`` until ``count`` events came; fails after
    ``seconds`` without them, showing what came."""
    deadline = time.monotonic() + seconds
    while len(got) < count:
        batch = _read_available(outbox)
        got.extend(batch)
        if not batch:
            assert time.monotonic() < deadline, (
                f"relay {outbox.name!r}: got {len(got)} of {count} events "
                f"within {seconds}s: {_ids(got)}"
            )
            time.sleep(0.02)
    return got


def _read_whole(outbox: EventStoreOutbox, count: int) -> list[RelayEvent]:
    """The whole order of a relay that marks nothing, once it holds ``count`` events
    (fails after :data:`SETTLE_SECONDS` without them, showing what came)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while len(got := outbox.unpublished_events(EVERYTHING)) < count:
        assert time.monotonic() < deadline, (
            f"relay {outbox.name!r}: got {len(got)} of {count} events "
            f"within {SETTLE_SECONDS}s: {_ids(got)}"
        )
        time.sleep(0.02)
    return got


def _assert_one_order(readers: dict[str, list[RelayEvent]], want: Sequence[str]) -> None:
    """Every reader got each of ``want`` (message ids) exactly once, nothing else, each
    stream in version order, and all readers the same order."""
    expected = Counter(want)
    for name, got in readers.items():
        counts = Counter(_ids(got))
        missing = sorted(expected - counts)
        repeated = sorted(i for i, n in counts.items() if n > 1)
        unknown = sorted(set(counts) - set(expected))
        assert not missing, f"relay {name!r} skipped {missing}; it got {_ids(got)}"
        assert not repeated, f"relay {name!r} got {repeated} more than once: {_ids(got)}"
        assert not unknown, f"relay {name!r} got events never written: {unknown}"
        assert_order_consistent_with_versions(got, what=f"relay {name!r}")
    orders = {name: _ids(got) for name, got in readers.items()}
    first, *others = orders
    for other in others:
        assert orders[other] == orders[first], (
            f"relays {first!r} and {other!r} got different orders\n"
            f"{first}: {orders[first]}\n{other}: {orders[other]}"
        )


class LateCommitAcceptance(StoreSuite):
    """Tests that hold appends inside their transaction (the store's
    :class:`~esrc_core.late_commits.HoldsCommits` hook) while later appends commit, and
    read the outbox meanwhile."""

    def holder(self, store: EventStore) -> HoldsCommits:
        """``store`` as a :class:`~esrc_core.late_commits.HoldsCommits`; fails the test
        when the class declares ``hold-commits`` and the store does not offer it."""
        return capable(self, store, Capability.HOLD_COMMITS, HoldsCommits)

    @requires(Capability.OUTBOX, Capability.THREADS, Capability.HOLD_COMMITS)
    def test_append_committing_late_is_relayed_once_in_one_order(self, store: EventStore) -> None:
        """An append takes its position and is held; later appends to other streams
        commit, and a relay reads and marks them meanwhile. Nothing uncommitted is
        handed out; once the held append commits, that relay and a relay that reads
        only afterwards each get every event exactly once, in the same order."""
        holder = self.holder(store)
        for name in ("a", "b", "c"):
            store.add_aggregate(ORDER, name, _event(f"{name}1"))
        during_outbox = self.outbox(store, "during")
        during = _read_available(during_outbox)
        with holder.hold_commits() as hold:
            held = _HeldAppend(
                lambda: store.append_events(ORDER, "a", 1, _held("a2-late", hold)), "held-a2"
            )
            hold.wait_held()
            store.append_events(ORDER, "b", 1, _event("b2"))
            store.append_events(ORDER, "c", 1, _event("c2"))
            store.add_aggregate(ORDER, "d", _event("d1"))
            during.extend(_read_available(during_outbox))
            assert "Order/s:a/2" not in _ids(during), (
                f"relay 'during' got the held event before it committed: {_ids(during)}"
            )
        held.join()
        want = [f"Order/s:{s}/{v}" for s, v in (("a", 1), ("b", 1), ("c", 1))]
        want += ["Order/s:a/2", "Order/s:b/2", "Order/s:c/2", "Order/s:d/1"]
        after = _read_whole(self.outbox(store, "after"), len(want))
        _read_until(during_outbox, during, len(want), CAUGHT_UP_SECONDS)
        _assert_one_order({"during": during, "after": after}, want)

    @requires(
        Capability.OUTBOX, Capability.THREADS, Capability.HOLD_COMMITS, Capability.UNITS_OF_WORK
    )
    def test_unit_of_work_committing_late_is_relayed_whole_once(self, store: EventStore) -> None:
        """A unit of work over three streams takes its positions and is held; appends
        to streams outside it commit, and a relay reads and marks meanwhile. The relay
        gets none of the unit's events before it commits, and afterwards it and a relay
        that reads only then each get every event exactly once, in one order, the
        unit's events in the order of its parts."""
        holder = self.holder(store)
        atomic = capable(self, store, Capability.UNITS_OF_WORK, AtomicAppends)
        for name in ("a", "u", "b", "c"):
            store.add_aggregate(ORDER, name, _event(f"{name}1"))
        during_outbox = self.outbox(store, "during")
        during = _read_available(during_outbox)
        with holder.hold_commits() as hold:
            parts = [
                StreamAppend(ORDER, "a", 1, _event("a2")),
                StreamAppend(ORDER, "u", 1, _held("u2-late", hold)),
                StreamAppend(ORDER, "b", 1, _event("b2")),
            ]
            held = _HeldAppend(lambda: atomic.append_streams(parts), "held-unit")
            hold.wait_held()
            store.append_events(ORDER, "c", 1, _event("c2"))
            store.add_aggregate(ORDER, "d", _event("d1"))
            during.extend(_read_available(during_outbox))
            unit = {"Order/s:a/2", "Order/s:u/2", "Order/s:b/2"}
            early = sorted(unit & set(_ids(during)))
            assert not early, f"relay 'during' got events of the held unit: {early}"
        held.join()
        want = [f"Order/s:{s}/1" for s in ("a", "u", "b", "c")]
        want += ["Order/s:a/2", "Order/s:u/2", "Order/s:b/2", "Order/s:c/2", "Order/s:d/1"]
        after = _read_whole(self.outbox(store, "after"), len(want))
        _read_until(during_outbox, during, len(want), CAUGHT_UP_SECONDS)
        _assert_one_order({"during": during, "after": after}, want)
        order = [i for i in _ids(after) if i in unit]
        assert order == ["Order/s:a/2", "Order/s:u/2", "Order/s:b/2"], (
            f"the unit's events are not in the order of its parts: {order}"
        )

    @requires(Capability.OUTBOX, Capability.THREADS, Capability.HOLD_COMMITS)
    def test_appends_released_in_reverse_order_are_each_relayed_once(
        self, store: EventStore
    ) -> None:
        """Three appends take positions one after the other and are held; an append
        after them commits; the three are released last first, and a relay reads and
        marks between the releases. It and a relay that reads only afterwards each get
        every event exactly once, in the same order."""
        holder = self.holder(store)
        holds = [holder.hold_commits() for _ in range(3)]
        try:
            held: list[_HeldAppend] = []
            for n, hold in enumerate(holds):
                held.append(
                    _HeldAppend(
                        lambda n=n, hold=hold: store.add_aggregate(  # type: ignore[misc]
                            ORDER, f"held-{n}", _held(f"held-{n}", hold)
                        ),
                        f"held-{n}",
                    )
                )
                hold.wait_held()
            store.add_aggregate(ORDER, "free", _event("free"))
            during_outbox = self.outbox(store, "during")
            during = _read_available(during_outbox)
            for hold, append in zip(reversed(holds), reversed(held), strict=True):
                hold.release()
                append.join()
                during.extend(_read_available(during_outbox))
        finally:
            for hold in holds:
                hold.release()
        want = [f"Order/s:held-{n}/1" for n in range(3)] + ["Order/s:free/1"]
        after = _read_whole(self.outbox(store, "after"), len(want))
        _read_until(during_outbox, during, len(want), CAUGHT_UP_SECONDS)
        _assert_one_order({"during": during, "after": after}, want)

    @requires(Capability.OUTBOX, Capability.THREADS, Capability.HOLD_COMMITS)
    def test_relay_during_a_held_append_publishes_everything_once(self, store: EventStore) -> None:
        """:class:`~esrc_core.relay.Relay` runs batch after batch while an append is
        held and later ones commit, and on after the release: it publishes every event
        exactly once, in the order a relay that reads only afterwards gets."""
        holder = self.holder(store)
        store.add_aggregate(ORDER, "a", _event("a1"))
        publisher = ListPublisher()
        relay = Relay(self.outbox(store, "relay"), publisher, batch_size=2)
        while relay.run_once():
            pass
        with holder.hold_commits() as hold:
            held = _HeldAppend(
                lambda: store.append_events(ORDER, "a", 1, _held("a2-late", hold)), "held-a2"
            )
            hold.wait_held()
            for name in ("b", "c", "d"):
                store.add_aggregate(ORDER, name, _event(f"{name}1"))
                while relay.run_once():
                    pass
        held.join()
        want = ["Order/s:a/1", "Order/s:a/2", "Order/s:b/1", "Order/s:c/1", "Order/s:d/1"]
        after = _read_whole(self.outbox(store, "after"), len(want))
        deadline = time.monotonic() + CAUGHT_UP_SECONDS
        while len(publisher.published) < len(want) and time.monotonic() < deadline:
            if not relay.run_once():
                time.sleep(0.02)
        _assert_one_order({"relay": list(publisher.published), "after": after}, want)
