"""A hypothesis state machine that runs random operations on a store and its outbox
and compares them, after every step, with a plain dict model
(see "What the testkit proves" in docs/internals.md).

The model is the specification: streams are lists of events keyed by (type, encoded
id); an append succeeds only at the current version; a failed call changes nothing;
the outbox lists every committed event exactly once, in one order that only ever grows
at the end; each relay name has marked a prefix of that order and sees the rest; a
relay lock has at most one holder.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import ClassVar

import hypothesis
import hypothesis.internal.conjecture.engine as hypothesis_engine
import pytest
from esrc_core.capabilities import Capability, require
from esrc_core.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    InvalidEventError,
    OptimisticConcurrencyError,
    SnapshotVersionError,
)
from esrc_core.events import RawEvent, RawSnapshot
from esrc_core.ids import AggregateId
from esrc_core.locks import HasRelayLock, RelayLock
from esrc_core.relay import EventStoreOutbox, HasOutbox, RelayEvent, message_id
from esrc_core.store import EventStore
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from esrc_testkit.checks import (
    assert_events_equal,
    assert_order_consistent_with_versions,
    comparable,
    stream_key,
)
from esrc_testkit.fixtures import EVERYTHING, StoreFactory, StoreSuite
from esrc_testkit.pytest_plugin import DATABASE_ENV_VAR, DATABASE_OPTION_DEST
from esrc_testkit.samples import ORDER, SHIPMENT, malformed_events

__all__ = [
    "DEFAULT_SETTINGS",
    "SHRINK_SECONDS",
    "EventStoreMachine",
    "StateMachineAcceptance",
    "example_database_settings",
    "run_event_store_machine",
]

DEFAULT_SETTINGS = hypothesis.settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""Settings that run the machine in seconds in memory and in well under a minute on a
local SQL server. Runs are at most 20 steps; only the first bug found is shrunk and
reported, without hypothesis's explain phase (which replays the failure many times
under a tracer to list the lines only failing runs reach)."""

SHRINK_SECONDS = 30.0
"""How long, at most, hypothesis shrinks a failing run before it reports the smallest
one found so far (hypothesis's own bound is five minutes)."""

TYPES = (ORDER, SHIPMENT)
"""The aggregate types the machine writes."""
IDS: tuple[AggregateId, ...] = (42, "42", uuid.UUID(int=42), "a")
"""The ids the machine writes: few, so that runs revisit streams, with ``42`` and
``"42"`` both in (a store that keys anything by ``str(id)`` mixes them up)."""
STREAMS: tuple[tuple[str, AggregateId], ...] = tuple((t, i) for t in TYPES for i in IDS)
"""Every stream the machine may write, in the order it draws them from."""
RELAYS = ("relay-a", "Relais ✓")
"""The relay names the machine reads and marks under."""
OBSERVER = "observer"
"""A relay name the machine reads under but never marks: its view is the whole order."""
LOCK_NAMES = ("relay-a", "relay-b")
"""The relay names the machine locks."""
HOLDERS = (0, 1)
"""Two lock objects per relay name, standing for two relay processes."""

_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=3)
_events = st.builds(
    RawEvent,
    name=st.sampled_from(("Created", "Changed", "Geändert ✓")),
    data=st.binary(max_size=4),
    metadata=st.dictionaries(_text, _text, max_size=2),
)
_batches = st.lists(_events, min_size=1, max_size=3)
_malformed_kinds = st.sampled_from(("name", "data", "metadata"))

Stream = tuple[str, AggregateId]
Key = tuple[str, str]


class EventStoreMachine(RuleBasedStateMachine):
    """Random adds, appends (at the current version, at the versions next to it, and to
    streams that do not exist), malformed batches, reads at the edges of a stream,
    snapshots (new, replacing, at invalid versions), relay batches and relay locks
    against a store, checked against a model.

    Every rule has a precondition that makes it meaningful: it writes a stream that
    does not exist yet, or one that does, or reads one that does, and so on; so no step
    is wasted and a failing run shrinks to the few steps the bug needs. The ids collide
    on purpose (``42`` and ``"42"``) and versions are drawn at the edges (``0``, the
    current version and the ones next to it).

    Bind it to a backend by subclassing: set :attr:`store_factory` (a callable class
    attribute that gives a new, empty store for each run) and :attr:`capabilities`
    (which enable the snapshot, outbox and relay-lock rules); then run it with
    ``hypothesis.stateful.run_state_machine_as_test`` or through its ``TestCase``.
    :func:`run_event_store_machine` does this for you.
    """

    store_factory: ClassVar[StoreFactory]
    """Gives a new, empty store; called once per run."""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    """The capabilities the store declares."""

    def __init__(self) -> None:
        super().__init__()
        machine = type(self)
        self.snapshots_on = Capability.SNAPSHOTS in machine.capabilities
        self.outbox_on = Capability.OUTBOX in machine.capabilities
        self.locks_on = Capability.RELAY_LOCK in machine.capabilities
        self.store: EventStore = machine.store_factory()
        self.streams: dict[Key, list[RawEvent]] = {}
        self.ids: dict[Key, AggregateId] = {}
        self.snapshots: dict[Key, dict[int, bytes]] = {}
        self.order: list[RelayEvent] = []
        self.marked: dict[str, int] = {}
        self.outboxes: dict[str, EventStoreOutbox] = {}
        self.locks: dict[tuple[str, int], RelayLock] = {}
        self.lock_owners: dict[str, int] = {}

    def teardown(self) -> None:
        """Release the relay locks and close the store."""
        try:
            for lock in self.locks.values():
                lock.release()
        finally:
            self.store.close()

    # -- helpers -----------------------------------------------------------------------

    def _existing(self) -> list[Stream]:
        return [s for s in STREAMS if stream_key(*s) in self.streams]

    def _missing(self) -> list[Stream]:
        return [s for s in STREAMS if stream_key(*s) not in self.streams]

    def _draw_existing(self, data: st.DataObject) -> tuple[Stream, Key, int]:
        stream = data.draw(st.sampled_from(self._existing()), label="stream")
        key = stream_key(*stream)
        return stream, key, len(self.streams[key])

    def _pending(self, relay: str) -> int:
        return sum(map(len, self.streams.values())) - self.marked.get(relay, 0)

    def _outbox(self, name: str, *, fresh: bool) -> EventStoreOutbox:
        if fresh or name not in self.outboxes:
            store = require(self.store, Capability.OUTBOX, "the state machine's outbox", HasOutbox)
            self.outboxes[name] = store.outbox(name)
        return self.outboxes[name]

    def _lock(self, name: str, holder: int) -> RelayLock:
        if (name, holder) not in self.locks:
            store = require(
                self.store, Capability.RELAY_LOCK, "the state machine's relay locks", HasRelayLock
            )
            self.locks[name, holder] = store.relay_lock(name)
        return self.locks[name, holder]

    def _check_holders(self, name: str) -> None:
        owner = self.lock_owners.get(name)
        for holder in HOLDERS:
            if (name, holder) in self.locks:
                held = self.locks[name, holder].held()
                assert held is (owner == holder), (
                    f"relay lock {name!r}: holder {holder}'s held() is {held}, "
                    f"but the lock is held by {'nobody' if owner is None else owner}"
                )

    @staticmethod
    def _expect(errors: tuple[type[Exception], ...], call: Callable[[], object], what: str) -> None:
        try:
            call()
        except errors:
            return
        names = " or ".join(e.__name__ for e in errors)
        raise AssertionError(f"{what}: want {names}, but it succeeded")

    # -- streams -----------------------------------------------------------------------

    @initialize(data=st.data(), events=_batches)
    def add_first(self, data: st.DataObject, events: list[RawEvent]) -> None:
        """Add the first stream: every run starts with one (hypothesis leaves some rules
        out of each run, and a run that never adds a stream proves little)."""
        self.add(data, events)

    @precondition(lambda self: len(self.streams) < len(STREAMS))
    @rule(data=st.data(), events=_batches)
    def add(self, data: st.DataObject, events: list[RawEvent]) -> None:
        """Add a stream that does not exist yet."""
        aggregate_type, aggregate_id = data.draw(st.sampled_from(self._missing()), label="stream")
        self.store.add_aggregate(aggregate_type, aggregate_id, events)
        key = stream_key(aggregate_type, aggregate_id)
        self.streams[key] = list(events)
        self.ids[key] = aggregate_id

    @precondition(lambda self: bool(self.streams))
    @rule(data=st.data(), events=_batches)
    def add_existing(self, data: st.DataObject, events: list[RawEvent]) -> None:
        """Add a stream that exists: AggregateAlreadyExists, and nothing changes."""
        (aggregate_type, aggregate_id), _, _ = self._draw_existing(data)
        self._expect(
            (AggregateAlreadyExists,),
            lambda: self.store.add_aggregate(aggregate_type, aggregate_id, events),
            f"add {aggregate_type} {aggregate_id!r}, which exists",
        )

    @precondition(lambda self: bool(self.streams))
    @rule(data=st.data(), events=_batches)
    def append(self, data: st.DataObject, events: list[RawEvent]) -> None:
        """Append to a stream at its current version."""
        (aggregate_type, aggregate_id), key, current = self._draw_existing(data)
        self.store.append_events(aggregate_type, aggregate_id, current, events)
        self.streams[key].extend(events)

    @precondition(lambda self: bool(self.streams))
    @rule(data=st.data(), events=_batches)
    def append_at_wrong_version(self, data: st.DataObject, events: list[RawEvent]) -> None:
        """Append at 0 or a version next to the current one (stale or ahead):
        OptimisticConcurrencyError, and nothing changes."""
        (aggregate_type, aggregate_id), _, current = self._draw_existing(data)
        wrong = sorted({0, current - 1, current + 1} - {current})
        version = data.draw(st.sampled_from(wrong), label="version")
        self._expect(
            (OptimisticConcurrencyError,),
            lambda: self.store.append_events(aggregate_type, aggregate_id, version, events),
            f"append to {aggregate_type} {aggregate_id!r} at {version} (stream at {current})",
        )

    @precondition(lambda self: len(self.streams) < len(STREAMS))
    @rule(data=st.data(), version=st.sampled_from((0, 1)), events=_batches)
    def append_to_missing(self, data: st.DataObject, version: int, events: list[RawEvent]) -> None:
        """Append to a stream that does not exist: OptimisticConcurrencyError, and it
        is not created."""
        aggregate_type, aggregate_id = data.draw(st.sampled_from(self._missing()), label="stream")
        self._expect(
            (OptimisticConcurrencyError,),
            lambda: self.store.append_events(aggregate_type, aggregate_id, version, events),
            f"append to {aggregate_type} {aggregate_id!r}, which does not exist, at {version}",
        )

    @precondition(lambda self: bool(self.streams))
    @rule(data=st.data(), kind=_malformed_kinds)
    def append_malformed(self, data: st.DataObject, kind: str) -> None:
        """Append a batch whose third event is malformed: nothing may be stored."""
        (aggregate_type, aggregate_id), _, current = self._draw_existing(data)
        self._expect(
            (InvalidEventError,),
            lambda: self.store.append_events(
                aggregate_type, aggregate_id, current, malformed_events(kind)
            ),
            f"append a batch with a bad {kind} to {aggregate_type} {aggregate_id!r}",
        )

    @precondition(lambda self: len(self.streams) < len(STREAMS))
    @rule(data=st.data(), kind=_malformed_kinds)
    def add_malformed(self, data: st.DataObject, kind: str) -> None:
        """Add a stream whose third event is malformed: nothing may be created."""
        aggregate_type, aggregate_id = data.draw(st.sampled_from(self._missing()), label="stream")
        self._expect(
            (InvalidEventError,),
            lambda: self.store.add_aggregate(aggregate_type, aggregate_id, malformed_events(kind)),
            f"add {aggregate_type} {aggregate_id!r} with a bad {kind}",
        )

    @precondition(lambda self: bool(self.streams))
    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        """Read a stream from 0, 1, or the current version or one next to it: exactly
        the events after that version."""
        (aggregate_type, aggregate_id), key, current = self._draw_existing(data)
        edges = sorted({0, 1, current - 1, current, current + 1})
        from_version = data.draw(st.sampled_from(edges), label="from_version")
        assert_events_equal(
            self.store.events(aggregate_type, aggregate_id, from_version),
            self.streams[key][from_version:],
            what=f"read {aggregate_type} {aggregate_id!r} from {from_version}",
        )

    # -- snapshots ---------------------------------------------------------------------

    @precondition(lambda self: self.snapshots_on and bool(self.streams))
    @rule(data=st.data(), content=st.binary(max_size=4))
    def add_snapshot(self, data: st.DataObject, content: bytes) -> None:
        """Snapshot a stream at version 1 or at its current version."""
        (aggregate_type, aggregate_id), key, current = self._draw_existing(data)
        version = data.draw(st.sampled_from(sorted({1, current})), label="version")
        self.store.add_snapshot(aggregate_type, aggregate_id, RawSnapshot(version, content))
        self.snapshots.setdefault(key, {})[version] = content

    @precondition(lambda self: self.snapshots_on and bool(self.snapshots))
    @rule(data=st.data())
    def replace_snapshot(self, data: st.DataObject) -> None:
        """Snapshot a stream again at a version it has a snapshot of, with other
        content: the new snapshot replaces the old one."""
        key = data.draw(st.sampled_from(sorted(self.snapshots)), label="stream")
        taken = self.snapshots[key]
        version = data.draw(st.sampled_from(sorted(taken)), label="version")
        content = data.draw(st.binary(max_size=4).filter(lambda c: c != taken[version]))
        self.store.add_snapshot(key[0], self.ids[key], RawSnapshot(version, content))
        taken[version] = content

    @precondition(lambda self: self.snapshots_on and bool(self.streams))
    @rule(data=st.data())
    def add_snapshot_at_bad_version(self, data: st.DataObject) -> None:
        """Snapshot a stream at 0 or past its version: SnapshotVersionError."""
        (aggregate_type, aggregate_id), _, current = self._draw_existing(data)
        version = data.draw(st.sampled_from((0, current + 1)), label="version")
        self._expect(
            (SnapshotVersionError,),
            lambda: self.store.add_snapshot(
                aggregate_type, aggregate_id, RawSnapshot(version, b"bad")
            ),
            f"snapshot {aggregate_type} {aggregate_id!r} at {version} (stream at {current})",
        )

    @precondition(lambda self: self.snapshots_on and len(self.streams) < len(STREAMS))
    @rule(data=st.data())
    def add_snapshot_of_missing(self, data: st.DataObject) -> None:
        """Snapshot a stream that does not exist: AggregateNotFound."""
        aggregate_type, aggregate_id = data.draw(st.sampled_from(self._missing()), label="stream")
        self._expect(
            (AggregateNotFound,),
            lambda: self.store.add_snapshot(
                aggregate_type, aggregate_id, RawSnapshot(1, b"missing")
            ),
            f"snapshot {aggregate_type} {aggregate_id!r}, which does not exist",
        )

    # -- outbox ------------------------------------------------------------------------

    @precondition(lambda self: self.outbox_on and any(self._pending(r) for r in RELAYS))
    @rule(data=st.data(), limit=st.integers(1, 4), fresh=st.booleans())
    def relay_batch(self, data: st.DataObject, limit: int, fresh: bool) -> None:
        """Read a batch under a relay name that has events to publish, and mark some
        leading part of it."""
        relay = data.draw(st.sampled_from([r for r in RELAYS if self._pending(r)]), label="relay")
        outbox = self._outbox(relay, fresh=fresh)
        batch = outbox.unpublished_events(limit)
        start = self.marked.get(relay, 0)
        want = [e.message_id for e in self.order[start : start + limit]]
        got = [e.message_id for e in batch]
        assert got == want, f"relay {relay!r} read {limit} after {start} marked"
        take = data.draw(st.integers(0, len(batch)), label="take")
        if take:
            outbox.mark_events_as_published(batch[:take])
            self.marked[relay] = start + take

    @precondition(lambda self: self.outbox_on and any(self.marked.values()))
    @rule(data=st.data(), fresh=st.booleans())
    def mark_older_prefix_again(self, data: st.DataObject, fresh: bool) -> None:
        """Mark a prefix of what a relay already marked: progress must not go back."""
        relay = data.draw(st.sampled_from(sorted(r for r, n in self.marked.items() if n)))
        end = data.draw(st.integers(1, self.marked[relay]), label="end")
        self._outbox(relay, fresh=fresh).mark_events_as_published(self.order[:end])

    # -- relay locks -------------------------------------------------------------------

    @precondition(lambda self: self.locks_on)
    @rule(name=st.sampled_from(LOCK_NAMES), holder=st.sampled_from(HOLDERS))
    def acquire_lock(self, name: str, holder: int) -> None:
        """Try to take a relay lock: it succeeds when nobody or this holder holds it;
        then the other holder tries too and must fail (exclusivity is checked on every
        acquisition, not only when the rules happen to alternate holders)."""
        owner = self.lock_owners.get(name)
        got = self._lock(name, holder).acquire()
        assert got is (owner in (None, holder)), (
            f"relay lock {name!r}: holder {holder}'s acquire() is {got} "
            f"while {'nobody' if owner is None else f'holder {owner}'} holds it"
        )
        owner = self.lock_owners[name] = owner if owner is not None else holder
        other = next(h for h in HOLDERS if h != owner)
        stolen = self._lock(name, other).acquire()
        assert not stolen, (
            f"relay lock {name!r}: holder {other}'s acquire() succeeded while holder "
            f"{owner} holds it"
        )
        self._check_holders(name)

    @precondition(lambda self: self.locks_on and bool(self.lock_owners))
    @rule(data=st.data(), holder=st.sampled_from(HOLDERS))
    def release_lock(self, data: st.DataObject, holder: int) -> None:
        """Release a held relay lock, by its holder (it is free) or by the other one
        (nothing changes)."""
        name = data.draw(st.sampled_from(sorted(self.lock_owners)), label="name")
        self._lock(name, holder).release()
        if self.lock_owners[name] == holder:
            del self.lock_owners[name]
        self._check_holders(name)

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def streams_match_the_model(self) -> None:
        """Every stream holds exactly the model's events; no other stream exists."""
        for aggregate_type, aggregate_id in STREAMS:
            key = stream_key(aggregate_type, aggregate_id)
            exists = self.store.contains_aggregate(aggregate_type, aggregate_id)
            assert exists == (key in self.streams), (
                f"contains_aggregate({aggregate_type}, {aggregate_id!r}) is {exists}"
            )
            if exists:
                assert_events_equal(
                    self.store.events(aggregate_type, aggregate_id),
                    self.streams[key],
                    what=f"stream {aggregate_type} {aggregate_id!r}",
                )

    @invariant()
    def latest_snapshots_match_the_model(self) -> None:
        """``latest_snapshot`` of every stream, existing or not, is the model's highest
        version, or None."""
        if not self.snapshots_on:
            return
        for aggregate_type, aggregate_id in STREAMS:
            key = stream_key(aggregate_type, aggregate_id)
            got = self.store.latest_snapshot(aggregate_type, aggregate_id)
            versions = self.snapshots.get(key)
            if not versions:
                assert got is None, f"latest snapshot of {key}: got {got!r}, want None"
                continue
            top = max(versions)
            assert got is not None, f"latest snapshot of {key}: got None, want version {top}"
            assert (got.version, got.data) == (top, versions[top]), (
                f"latest snapshot of {key}: got {got!r}, want version {top} {versions[top]!r}"
            )

    @invariant()
    def outbox_is_one_growing_order_with_nothing_skipped(self) -> None:
        """The whole order only grows at the end, lists every committed event once
        (each stream in version order, with its exact content), and each relay sees
        exactly what follows the prefix it marked."""
        if not self.outbox_on:
            return
        current = self._outbox(OBSERVER, fresh=True).unpublished_events(EVERYTHING)
        before = [e.message_id for e in self.order]
        now = [e.message_id for e in current]
        assert now[: len(before)] == before, (
            f"the outbox order changed or lost events:\nbefore: {before}\nnow:    {now}"
        )
        assert_order_consistent_with_versions(current, what="outbox order")
        committed = sorted(
            message_id(key[0], self.ids[key], version)
            for key, events in self.streams.items()
            for version in range(1, len(events) + 1)
        )
        assert sorted(now) == committed, "the outbox does not hold exactly the committed events"
        for relayed in current:
            key = stream_key(relayed.aggregate_type, relayed.aggregate_id)
            want_id = self.ids[key]
            assert type(relayed.aggregate_id) is type(want_id), relayed.message_id
            assert comparable([relayed.event], what=relayed.message_id) == comparable(
                [self.streams[key][relayed.version - 1]], what="model"
            ), f"{relayed.message_id} content differs from what was written"
        self.order = current
        for relay in RELAYS:
            marked = self.marked.get(relay, 0)
            rest = self._outbox(relay, fresh=False).unpublished_events(EVERYTHING)
            assert [e.message_id for e in rest] == now[marked:], (
                f"relay {relay!r} marked the first {marked} events of {now} "
                f"but sees {[e.message_id for e in rest]}"
            )


def example_database_settings(
    settings: hypothesis.settings, location: str | None = None
) -> hypothesis.settings:
    """``settings`` with the example database at ``location`` (a directory), or, when
    ``location`` is None, at the directory in the ``ESRC_TESTKIT_HYPOTHESIS_DB``
    environment variable. ``none`` (either way) turns the database off; when neither is
    given ``settings`` is returned as is (hypothesis's default database is
    ``.hypothesis/`` in the working directory)."""
    if location is None:
        location = os.environ.get(DATABASE_ENV_VAR, "").strip() or None
    if location is None:
        return settings
    if location.lower() == "none":
        return hypothesis.settings(settings, database=None)
    return hypothesis.settings(settings, database=DirectoryBasedExampleDatabase(location))


@contextmanager
def _shrinking_for_at_most(seconds: float) -> Iterator[None]:
    # Hypothesis has no setting for this bound; its engine module keeps it in a global
    # that it documents as the one to patch.
    before = getattr(hypothesis_engine, "MAX_SHRINKING_SECONDS", None)
    if before is None:
        yield
        return
    hypothesis_engine.MAX_SHRINKING_SECONDS = seconds  # type: ignore[assignment]
    try:
        yield
    finally:
        hypothesis_engine.MAX_SHRINKING_SECONDS = before


def run_event_store_machine(
    store_factory: StoreFactory,
    capabilities: Iterable[str],
    *,
    settings: hypothesis.settings = DEFAULT_SETTINGS,
    shrink_seconds: float = SHRINK_SECONDS,
    database: str | None = None,
) -> None:
    """Run :class:`EventStoreMachine` on stores from ``store_factory``; raises (with
    hypothesis's shrunk example) when the store and the model disagree.

    Shrinking a failure stops after ``shrink_seconds``; ``database`` is the example
    database's directory (see :func:`example_database_settings`)."""

    machine = type(
        "BoundEventStoreMachine",
        (EventStoreMachine,),
        {"store_factory": staticmethod(store_factory), "capabilities": frozenset(capabilities)},
    )
    with _shrinking_for_at_most(shrink_seconds):
        run_state_machine_as_test(machine, settings=example_database_settings(settings, database))


class StateMachineAcceptance(StoreSuite):
    """Runs :class:`EventStoreMachine` as ``test_state_machine``.

    Override :attr:`state_machine_settings` (a ``hypothesis.settings``) to run more or
    fewer examples. The example database is where the ``--esrc-hypothesis-db`` option
    or the ``ESRC_TESTKIT_HYPOTHESIS_DB`` environment variable says, else the settings'
    own (see :func:`example_database_settings`).
    """

    state_machine_settings: ClassVar[hypothesis.settings] = DEFAULT_SETTINGS
    """The hypothesis settings of ``test_state_machine``."""
    state_machine_shrink_seconds: ClassVar[float] = SHRINK_SECONDS
    """How long a failure of ``test_state_machine`` is shrunk, at most."""

    def test_state_machine(
        self, store_factory: StoreFactory, request: pytest.FixtureRequest
    ) -> None:
        """Random operations on the store, its outbox and its relay locks agree with a
        dict model."""
        run_event_store_machine(
            store_factory,
            self.capabilities,
            settings=self.state_machine_settings,
            shrink_seconds=self.state_machine_shrink_seconds,
            database=request.config.getoption(DATABASE_OPTION_DEST, default=None),
        )
