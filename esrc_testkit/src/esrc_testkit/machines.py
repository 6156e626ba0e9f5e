"""A hypothesis state machine that runs random operations on a store and its outbox
and compares them, after every step, with a plain dict model
(see "What the testkit proves" in docs/internals.md).

The model is the specification: streams are lists of events keyed by (type, encoded
id); an append succeeds only at the current version; a failed call changes nothing;
the outbox lists every committed event exactly once, in one order that only ever grows
at the end; each relay name has marked a prefix of that order and sees the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from functools import partial
from typing import ClassVar

import hypothesis
from esrc_core.capabilities import Capability
from esrc_core.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    AggregateRequiresEvents,
    InvalidEventError,
    OptimisticConcurrencyError,
    SnapshotVersionError,
)
from esrc_core.events import RawEvent, RawSnapshot
from esrc_core.ids import AggregateId
from esrc_core.relay import EventStoreOutbox, HasOutbox, RelayEvent, message_id
from esrc_core.store import EventStore
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
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
from esrc_testkit.samples import ORDER, SHIPMENT, malformed_events

__all__ = [
    "DEFAULT_SETTINGS",
    "EventStoreMachine",
    "StateMachineAcceptance",
    "run_event_store_machine",
]

DEFAULT_SETTINGS = hypothesis.settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""Settings that run the machine in seconds in memory and in well under a minute on a
local SQL server."""

TYPES = (ORDER, SHIPMENT)
"""The aggregate types the machine writes."""
IDS: tuple[AggregateId, ...] = (
    uuid.UUID(int=1),
    uuid.UUID(int=2),
    "a",
    "1",
    1,
    7,
)
"""The ids the machine writes: UUIDs, strs and ints, with ``1`` and ``"1"`` both in."""
RELAYS = ("relay-a", "relay-b", "Relais ✓")
"""The relay names the machine reads and marks under."""
OBSERVER = "observer"
"""A relay name the machine reads under but never marks: its view is the whole order."""

_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=4)
_events = st.builds(
    RawEvent,
    name=st.sampled_from(("Created", "Changed", "Geändert ✓")),
    data=st.binary(max_size=8),
    metadata=st.dictionaries(_text, _text, max_size=2),
)
_streams = st.tuples(st.sampled_from(TYPES), st.sampled_from(IDS))
_malformed_kinds = st.sampled_from(("name", "data", "metadata"))

Stream = tuple[str, AggregateId]
Key = tuple[str, str]


class EventStoreMachine(RuleBasedStateMachine):
    """Random adds, appends (at fresh, stale and future versions), malformed batches,
    reads, snapshots and relay batches against a store, checked against a model.

    Bind it to a backend by subclassing: set :attr:`store_factory` (a callable class
    attribute that gives a new, empty store for each run) and :attr:`capabilities`
    (which enable the snapshot and outbox rules); then run it with
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
        self.store: EventStore = machine.store_factory()
        self.streams: dict[Key, list[RawEvent]] = {}
        self.ids: dict[Key, AggregateId] = {}
        self.snapshots: dict[Key, dict[int, bytes]] = {}
        self.order: list[RelayEvent] = []
        self.marked: dict[str, int] = {}
        self.outboxes: dict[str, EventStoreOutbox] = {}

    def teardown(self) -> None:
        """Close the store."""
        self.store.close()

    # -- helpers -----------------------------------------------------------------------

    def _outbox(self, name: str, *, fresh: bool) -> EventStoreOutbox:
        store = self.store
        assert isinstance(store, HasOutbox), f"{type(store).__qualname__} has no outbox()"
        if fresh or name not in self.outboxes:
            self.outboxes[name] = store.outbox(name)
        return self.outboxes[name]

    @staticmethod
    def _expect(errors: tuple[type[Exception], ...], call: Callable[[], object], what: str) -> None:
        try:
            call()
        except errors:
            return
        names = " or ".join(e.__name__ for e in errors)
        raise AssertionError(f"{what}: want {names}, but it succeeded")

    # -- rules -------------------------------------------------------------------------

    @rule(stream=_streams, events=st.lists(_events, max_size=4))
    def add(self, stream: Stream, events: list[RawEvent]) -> None:
        """Add a stream: new ids succeed, existing ones raise, no events raise."""
        aggregate_type, aggregate_id = stream
        key = stream_key(*stream)
        what = f"add {aggregate_type} {aggregate_id!r} with {len(events)} events"
        call = partial(self.store.add_aggregate, aggregate_type, aggregate_id, events)
        if not events:
            errors: tuple[type[Exception], ...] = (AggregateRequiresEvents,)
            if key in self.streams:
                errors += (AggregateAlreadyExists,)
            self._expect(errors, call, what)
        elif key in self.streams:
            self._expect((AggregateAlreadyExists,), call, what)
        else:
            call()
            self.streams[key] = list(events)
            self.ids[key] = aggregate_id

    @rule(
        stream=_streams,
        offset=st.sampled_from((0, 0, 0, -1, -2, 1, 2)),
        events=st.lists(_events, min_size=1, max_size=4),
    )
    def append(self, stream: Stream, offset: int, events: list[RawEvent]) -> None:
        """Append at the current version (offset 0), a stale one or a future one."""
        aggregate_type, aggregate_id = stream
        key = stream_key(*stream)
        current = len(self.streams.get(key, []))
        version = max(0, current + offset)
        what = f"append {len(events)} to {aggregate_type} {aggregate_id!r} at {version}"
        call = partial(self.store.append_events, aggregate_type, aggregate_id, version, events)
        if key in self.streams and version == current:
            call()
            self.streams[key].extend(events)
        else:
            self._expect((OptimisticConcurrencyError,), call, f"{what} (stream at {current})")

    @precondition(lambda self: bool(self.streams))
    @rule(data=st.data(), kind=_malformed_kinds)
    def append_malformed(self, data: st.DataObject, kind: str) -> None:
        """Append a batch whose third event is malformed: nothing may be stored."""
        key = data.draw(st.sampled_from(sorted(self.streams)), label="stream")
        aggregate_type, aggregate_id = key[0], self.ids[key]
        version = len(self.streams[key])
        self._expect(
            (InvalidEventError,),
            lambda: self.store.append_events(
                aggregate_type, aggregate_id, version, malformed_events(kind)
            ),
            f"append a batch with a bad {kind} to {aggregate_type} {aggregate_id!r}",
        )

    @rule(stream=_streams, kind=_malformed_kinds)
    def add_malformed(self, stream: Stream, kind: str) -> None:
        """Add a stream whose third event is malformed: nothing may be created."""
        aggregate_type, aggregate_id = stream
        errors: tuple[type[Exception], ...] = (InvalidEventError,)
        if stream_key(*stream) in self.streams:
            errors += (AggregateAlreadyExists,)
        self._expect(
            errors,
            lambda: self.store.add_aggregate(aggregate_type, aggregate_id, malformed_events(kind)),
            f"add {aggregate_type} {aggregate_id!r} with a bad {kind}",
        )

    @rule(stream=_streams, from_version=st.integers(0, 6))
    def read(self, stream: Stream, from_version: int) -> None:
        """Read from a version: the events after it, or AggregateNotFound."""
        aggregate_type, aggregate_id = stream
        key = stream_key(*stream)
        what = f"read {aggregate_type} {aggregate_id!r} from {from_version}"
        if key not in self.streams:
            self._expect(
                (AggregateNotFound,),
                lambda: self.store.events(aggregate_type, aggregate_id, from_version),
                what,
            )
            return
        assert_events_equal(
            self.store.events(aggregate_type, aggregate_id, from_version),
            self.streams[key][from_version:],
            what=what,
        )

    @precondition(lambda self: self.snapshots_on)
    @rule(stream=_streams, version=st.integers(-1, 6), data=st.binary(max_size=6))
    def add_snapshot(self, stream: Stream, version: int, data: bytes) -> None:
        """Add a snapshot at a valid or invalid version."""
        aggregate_type, aggregate_id = stream
        key = stream_key(*stream)
        what = f"snapshot {aggregate_type} {aggregate_id!r} at {version}"
        call = partial(
            self.store.add_snapshot, aggregate_type, aggregate_id, RawSnapshot(version, data)
        )
        if key not in self.streams:
            self._expect((AggregateNotFound,), call, what)
        elif not 1 <= version <= len(self.streams[key]):
            self._expect((SnapshotVersionError,), call, what)
        else:
            call()
            self.snapshots.setdefault(key, {})[version] = data

    @precondition(lambda self: self.outbox_on)
    @rule(
        relay=st.sampled_from(RELAYS),
        limit=st.integers(1, 6),
        take=st.integers(0, 6),
        fresh=st.booleans(),
    )
    def relay_batch(self, relay: str, limit: int, take: int, fresh: bool) -> None:
        """Read a batch under a relay name and mark some leading part of it."""
        outbox = self._outbox(relay, fresh=fresh)
        batch = outbox.unpublished_events(limit)
        start = self.marked.get(relay, 0)
        want = [e.message_id for e in self.order[start : start + limit]]
        got = [e.message_id for e in batch]
        assert got == want, f"relay {relay!r} read {limit} after {start} marked"
        take = min(take, len(batch))
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

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def streams_match_the_model(self) -> None:
        """Every stream holds exactly the model's events; no other stream exists."""
        for aggregate_type in TYPES:
            for aggregate_id in IDS:
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
        """``latest_snapshot`` is the model's highest version, or None."""
        if not self.snapshots_on:
            return
        for key, aggregate_id in self.ids.items():
            got = self.store.latest_snapshot(key[0], aggregate_id)
            versions = self.snapshots.get(key)
            if not versions:
                assert got is None, f"latest snapshot of {key}: got {got!r}, want None"
                continue
            top = max(versions)
            assert got is not None, f"latest snapshot of {key}: got None, want version {top}"
            assert (got.version, got.data) == (top, versions[top]), f"latest snapshot of {key}"

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


def run_event_store_machine(
    store_factory: StoreFactory,
    capabilities: Iterable[str],
    *,
    settings: hypothesis.settings = DEFAULT_SETTINGS,
) -> None:
    """Run :class:`EventStoreMachine` on stores from ``store_factory``; raises (with
    hypothesis's shrunk example) when the store and the model disagree."""

    machine = type(
        "BoundEventStoreMachine",
        (EventStoreMachine,),
        {"store_factory": staticmethod(store_factory), "capabilities": frozenset(capabilities)},
    )
    run_state_machine_as_test(machine, settings=settings)


class StateMachineAcceptance(StoreSuite):
    """Runs :class:`EventStoreMachine` as ``test_state_machine``.

    Override :attr:`state_machine_settings` (a ``hypothesis.settings``) to run more or
    fewer examples.
    """

    state_machine_settings: ClassVar[hypothesis.settings] = DEFAULT_SETTINGS
    """The hypothesis settings of ``test_state_machine``."""

    def test_state_machine(self, store_factory: StoreFactory) -> None:
        """Random operations on the store and its outbox agree with a dict model."""
        run_event_store_machine(
            store_factory, self.capabilities, settings=self.state_machine_settings
        )
