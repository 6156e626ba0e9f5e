"""Concurrent histories of an event store: recorded from threads or tasks, checked
for linearizability against a sequential model (see "Linearizability" in
docs/plugins.md).

:func:`record_history` runs random operations from several threads against one store
(adds, appends at an expected version, reads, snapshots, relay-lock acquire, release
and held, outbox reads and marks) on a few streams whose ids collide on purpose
(``42``, ``"42"``, a UUID, and ``42`` of a second type), and records each call's
invocation and response times and result; :func:`record_history_async` does the same
from several tasks against an async store, with the same choices (one copy of them).
:func:`check_store_history` checks either history:

- **Exactly**, with :func:`~esrc_testkit.linearizability.check_linearizable` against
  :class:`StoreModel`: every stream (its events and latest snapshot) and every relay
  lock (its holder) must behave as one object changed atomically at one instant between
  each call and its return. Streams and locks are independent, so each is checked on
  its own.
- **Soundly but less strictly** for the outbox, whose order is the backend's and may
  lag behind commits: every event an outbox read returns was written by a write that
  had been called and did not fail, under the message id of the version it holds;
  every two reads of a relay that marks nothing agree on the order (one is a prefix of
  the other, and a later read never shows fewer events); the batches a marking relay
  reads, put together, are a prefix of that order with no repeats; and once the
  threads are done, the outbox lists every stored event exactly once, each stream in
  version order.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Callable, Generator, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from esrc_core.async_outbox import AsyncHasOutbox, AsyncHasRelayLock
from esrc_core.async_store import AsyncEventStore
from esrc_core.capabilities import Capability
from esrc_core.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    OptimisticConcurrencyError,
    SnapshotVersionError,
    StoreUnavailableError,
)
from esrc_core.events import RawEvent, RawSnapshot
from esrc_core.ids import AggregateId, encode_id
from esrc_core.locks import HasRelayLock
from esrc_core.relay import HasOutbox, RelayEvent, message_id
from esrc_core.store import EventStore

from esrc_testkit.capabilities import requires
from esrc_testkit.fixtures import EVERYTHING, StoreSuite
from esrc_testkit.linearizability import UNKNOWN, Operation, Verdict, check_linearizable
from esrc_testkit.races import run_in_threads
from esrc_testkit.samples import ORDER, SHIPMENT

__all__ = [
    "STREAMS",
    "LinearizabilityAcceptance",
    "StoreModel",
    "check_store_history",
    "record_history",
    "record_history_async",
]

STREAMS: tuple[tuple[str, AggregateId], ...] = (
    (ORDER, 42),
    (ORDER, "42"),
    (ORDER, uuid.UUID(int=42)),
    (SHIPMENT, 42),
)
"""The streams :func:`record_history` writes: ids that collide when a backend loses
their type, and one id under two aggregate types."""

OK = "ok"
"""The result recorded for a write that returned."""

_EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    AggregateAlreadyExists,
    AggregateNotFound,
    OptimisticConcurrencyError,
    SnapshotVersionError,
)
_WRITES = ("add", "append")
_OBSERVER = "observer"
_RELAY = "relay"

StreamState = tuple[tuple[str, ...], tuple[int, str] | None]
"""A stream in the model: its events' tokens, and its latest snapshot (version, token)."""


def _stream(aggregate_type: str, aggregate_id: AggregateId) -> tuple[str, str, str]:
    return ("stream", aggregate_type, encode_id(aggregate_id))


class StoreModel:
    """The sequential specification of a store's streams and relay locks, as a
    :class:`~esrc_testkit.linearizability.Model`.

    Partition ``("stream", type, encoded id)``: the state is the stream's event tokens
    (each event's data is a token naming the write) and its latest snapshot; ``add``,
    ``append``, ``read``, ``contains``, ``snapshot`` and ``latest_snapshot`` behave as
    :class:`~esrc_core.store.EventStore` says (a snapshot replaces the latest when its
    version is at least the latest's). Partition ``("lock", name)``: the state is the
    process holding the lock, or ``None``; ``acquire`` (timeout 0) gets ``True`` when
    the lock is free or already the caller's, ``release`` frees it when the caller
    holds it, ``held`` says whether the caller holds it.
    """

    def initial(self, key: Hashable) -> Any:
        """An empty stream, or a free lock."""
        if isinstance(key, tuple) and key and key[0] == "lock":
            return None
        return ((), None)

    def step(self, state: Any, operation: Operation) -> Iterable[Any]:
        """The states ``operation`` can lead to (see the class docstring)."""
        if operation.name in ("acquire", "release", "held"):
            return self._lock_step(state, operation)
        return self._stream_step(state, operation)

    @staticmethod
    def _lock_step(holder: str | None, op: Operation) -> list[str | None]:
        me, result = op.process, op.result
        if op.name == "acquire":
            free = holder in (None, me)
            if result is UNKNOWN:
                return [holder, me] if free else [holder]
            if result is True:
                return [me] if free else []
            return [holder] if result is False and not free else []
        if op.name == "release":
            return [None if holder == me else holder]
        return [holder] if result is UNKNOWN or result == (holder == me) else []

    @staticmethod
    def _stream_step(state: StreamState, op: Operation) -> list[StreamState]:
        events, snapshot = state
        exists = bool(events)
        name, args, result = op.name, op.args, op.result
        unknown = result is UNKNOWN
        if name == "add":
            if not exists and (unknown or result == OK):
                return [state, (args[0], None)] if unknown else [(args[0], None)]
            return [state] if unknown or (exists and result == "AggregateAlreadyExists") else []
        if name == "append":
            expected, tokens = args
            fits = exists and len(events) == expected
            if fits and (unknown or result == OK):
                grown = (events + tokens, snapshot)
                return [state, grown] if unknown else [grown]
            return (
                [state] if unknown or (not fits and result == "OptimisticConcurrencyError") else []
            )
        if name == "snapshot":
            version, token = args
            if exists and 1 <= version <= len(events) and (unknown or result == OK):
                kept = snapshot if snapshot is not None and snapshot[0] > version else None
                replaced = (events, kept or (version, token))
                return [state, replaced] if unknown else [replaced]
            if unknown:
                return [state]
            if not exists:
                return [state] if result == "AggregateNotFound" else []
            return [state] if result == "SnapshotVersionError" else []
        if unknown:
            return [state]
        if name == "read":
            if not exists:
                return [state] if result == "AggregateNotFound" else []
            return [state] if result == events[max(args[0], 0) :] else []
        if name == "contains":
            return [state] if result == exists else []
        if name == "latest_snapshot":
            return [state] if result == snapshot else []
        raise ValueError(f"the store model has no operation {name!r}")

    def self_contained(self, operations: Sequence[Operation]) -> bool:
        """Whether every token the operations observed was written by one of them,
        every operation that needs its stream to exist (or a lock to be held) has a
        write (an acquire) among them that can have made it so, and every append refused
        as a conflict has a write among them that can have beaten it."""
        written: set[str] = set()
        creators = False
        holders: set[str] = set()
        writes: list[Operation] = []
        for op in operations:
            if op.name in _WRITES and op.result in (OK, UNKNOWN):
                written.update(op.args[-1])
                writes.append(op)
                creators = creators or op.name == "add"
            elif op.name == "snapshot" and op.result in (OK, UNKNOWN):
                written.add(op.args[1])
            elif op.name == "acquire" and op.result in (True, UNKNOWN):
                holders.add(op.process)
        for op in operations:
            name, result = op.name, op.result
            if name == "read" and isinstance(result, tuple) and not set(result) <= written:
                return False
            if name == "latest_snapshot" and result is not None and result[1] not in written:
                return False
            needs_stream = (
                (name in ("append", "snapshot", "read") and result not in _ABSENT)
                or (name == "add" and result == "AggregateAlreadyExists")
                or (name == "contains" and result is True)
            )
            if needs_stream and not creators:
                return False
            reached = _version_needed(op)
            if (
                reached
                and sum(len(w.args[-1]) for w in writes if w is not op and w.invoke < op.returns)
                < reached
            ):
                return False
            refused = name == "append" and result == "OptimisticConcurrencyError"
            if refused and _conflict_without_cause(op, writes):
                return False
            if name == "acquire" and result is False and not holders - {op.process}:
                return False
            if name == "held" and result is True and op.process not in holders:
                return False
        return True


def _conflict_without_cause(op: Operation, writes: Sequence[Operation]) -> bool:
    """Whether ``op``, an append refused as a conflict, has no cause among ``writes``:
    every write called before it answered had answered, successfully, before it was
    called, one of them created the stream, and their events add up to exactly the
    version it expected. Such a refusal is right only when a write left out of the
    sub-history beat it, so a shrunk history holding it would show a false conflict in
    place of the failure that was found."""
    before = [w for w in writes if w.invoke < op.returns]
    return (
        any(w.name == "add" for w in before)
        and all(w.result == OK and w.returns < op.invoke for w in before)
        and sum(len(w.args[-1]) for w in before) == op.args[0]
    )


def _version_needed(op: Operation) -> int:
    """The version the stream must have reached for ``op`` to get its result."""
    if op.result == OK and op.name == "append":
        return int(op.args[0])
    if op.result == OK and op.name == "snapshot":
        return int(op.args[0])
    return 0


_ABSENT = ("AggregateNotFound", "OptimisticConcurrencyError", UNKNOWN)


# --- recording: one copy of the choices, run by threads or by tasks --------------------
#
# A worker's operations are generators (plans) that yield each call they want made as a
# _Call and get its recorded result back. They choose, build the arguments, and learn
# from results; they never call the store. Two small runners make the calls: _run from
# a thread on a sync store, _run_async from a task on an async store. The sync and async
# faces (EventStore and AsyncEventStore, their outboxes and relay locks) share their
# method names, so a _Call names the method and each runner calls or awaits it.


def _done(returned: object) -> str:
    """The result of a write that returned: :data:`OK`."""
    return OK


def _same(returned: Any) -> Any:
    """The returned value itself, as the result (``contains``, ``acquire``, ``held``)."""
    return returned


def _tokens(events: Iterable[RawEvent]) -> tuple[str, ...]:
    """A read's result: the tokens of the events it returned."""
    return tuple(e.data.decode() for e in events)


def _snapshot(found: RawSnapshot | None) -> tuple[int, str] | None:
    """A ``latest_snapshot``'s result: (version, token), or ``None``."""
    return None if found is None else (found.version, found.data.decode())


@dataclass(frozen=True)
class _Call:
    """One operation a plan asks its runner to make and record: the operation as the
    model knows it (``name``, ``args``, ``key``), and how to make it: ``target.method(
    *call_args)`` (awaited on an async face), its return value turned into the result
    by ``convert``."""

    name: str
    args: tuple[Any, ...]
    key: Hashable
    target: Any
    method: str
    call_args: tuple[Any, ...] = ()
    convert: Callable[[Any], Any] = _done


_Plan = Generator[_Call, Any, None]
"""A worker's operations: yields each call, gets its recorded result back."""


@dataclass
class _Recorder:
    """What the workers of one run share: the store (an
    :class:`~esrc_core.store.EventStore` or an
    :class:`~esrc_core.async_store.AsyncEventStore`), the settings and the records."""

    store: Any
    snapshots_on: bool
    outbox_on: bool
    locks_on: bool
    deadline: float
    per_worker: int
    seed: int
    lock_names: tuple[str, ...] = ()
    operations: list[Operation] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(
        cls,
        store: Any,
        have: Iterable[str],
        *,
        outbox: type[Any],
        relay_lock: type[Any],
        workers: int,
        operations: int,
        seconds: float,
        seed: int | None,
    ) -> _Recorder:
        """A recorder for ``workers`` workers on ``store``; ``outbox`` and
        ``relay_lock`` are the protocols (sync or async) ``store`` must implement when
        ``have`` names those capabilities."""
        have = set(have)
        recorder = cls(
            store,
            snapshots_on=Capability.SNAPSHOTS in have,
            outbox_on=Capability.OUTBOX in have,
            locks_on=Capability.RELAY_LOCK in have,
            deadline=time.monotonic() + seconds,
            per_worker=max(1, operations // workers),
            seed=random.randrange(2**32) if seed is None else seed,
        )
        if recorder.outbox_on:
            assert isinstance(store, outbox), f"{store!r} declares outbox but has none"
        if recorder.locks_on:
            assert isinstance(store, relay_lock), f"{store!r} declares relay-lock but has none"
            tag = uuid.uuid4().hex[:8]
            recorder.lock_names = (f"lin-{tag}-a", f"lin-{tag}-b")
        return recorder

    def failed(self, process: str, call: _Call, err: Exception) -> Any:
        """The result of ``call`` that raised ``err``: the name of an error the contract
        names, :data:`~esrc_testkit.linearizability.UNKNOWN` for a transient one; any
        other error is raised again, with a note naming the operation."""
        if isinstance(err, _EXPECTED_ERRORS):
            return type(err).__name__
        if isinstance(err, StoreUnavailableError):
            return UNKNOWN
        err.add_note(f"in {process}: {call.name}{call.args!r} on {call.key!r}")
        raise err

    def record(self, process: str, call: _Call, result: Any, invoke: int) -> None:
        """Keep ``call``, invoked at ``invoke``, as an operation that returned now."""
        response = time.perf_counter_ns()
        op = Operation(process, call.name, call.args, result, invoke, response, call.key)
        with self.lock:
            self.operations.append(op)

    def history(self) -> list[Operation]:
        """The operations recorded, by invocation time."""
        return sorted(self.operations, key=lambda op: op.invoke)


def _run(recorder: _Recorder, process: str, plan: _Plan) -> None:
    """Make and record ``plan``'s calls from this thread, on a sync store."""
    result: Any = None
    while True:
        try:
            call = plan.send(result)
        except StopIteration:
            return
        invoke = time.perf_counter_ns()
        try:
            result = call.convert(getattr(call.target, call.method)(*call.call_args))
        except Exception as err:
            result = recorder.failed(process, call, err)
        recorder.record(process, call, result, invoke)
        time.sleep(0)  # let the other threads in between any two operations


async def _run_async(recorder: _Recorder, process: str, plan: _Plan) -> None:
    """Make and record ``plan``'s calls from this task, on an async store."""
    result: Any = None
    while True:
        try:
            call = plan.send(result)
        except StopIteration:
            return
        invoke = time.perf_counter_ns()
        try:
            result = call.convert(await getattr(call.target, call.method)(*call.call_args))
        except Exception as err:
            result = recorder.failed(process, call, err)
        recorder.record(process, call, result, invoke)
        await asyncio.sleep(0)  # let the other tasks in between any two operations


class _Worker:
    """One thread's or task's random operations, as plans."""

    def __init__(self, recorder: _Recorder, index: int, process: str, *, relay: bool) -> None:
        self.r = recorder
        self.index = index
        self.process = process
        self.rng = random.Random(recorder.seed * 1_000 + index)
        self.known = dict.fromkeys(range(len(STREAMS)), 1)
        self.count = 0
        store = recorder.store
        self.locks: dict[str, Any] = {}
        if recorder.locks_on:
            self.locks = {name: store.relay_lock(name) for name in recorder.lock_names}
        self.outboxes: dict[str, Any] = {}
        if recorder.outbox_on:
            names = (_OBSERVER, _RELAY) if relay else (_OBSERVER,)
            self.outboxes = {name: store.outbox(name) for name in names}

    def tokens(self, count: int) -> tuple[str, ...]:
        self.count += 1
        return tuple(f"{self.index}.{self.count}{'abc'[n]}" for n in range(count))

    def plan(self) -> _Plan:
        """Random operations until the run's share or its time is used up, then a
        release of every relay lock."""
        kinds = ["add", "append", "append", "append", "read", "read", "contains"]
        if self.r.snapshots_on:
            kinds += ["snapshot", "latest_snapshot"]
        if self.locks:
            kinds += ["acquire", "acquire", "release", "held"]
        if self.outboxes:
            kinds += ["observe"] + (["relay", "relay"] if _RELAY in self.outboxes else [])
        for _ in range(self.r.per_worker):
            if time.monotonic() > self.r.deadline:
                break
            yield from getattr(self, f"_{self.rng.choice(kinds)}")()
        for name in self.locks:
            yield from self._release(name)

    def final_plan(self) -> _Plan:
        """Once every worker is done: read every stream and snapshot, read the whole
        outbox, and drain it as a relay."""
        for index in range(len(STREAMS)):
            yield from self.read(index, 0)
            if self.r.snapshots_on:
                yield from self.latest_snapshot(index)
        if self.outboxes:
            yield from self._read_outbox(self.outboxes[_OBSERVER], EVERYTHING)
            while (yield from self._relay_batch(self.outboxes[_RELAY], 50)):
                pass

    def _pick(self) -> tuple[int, str, AggregateId, Hashable]:
        index = self.rng.randrange(len(STREAMS))
        aggregate_type, aggregate_id = STREAMS[index]
        return index, aggregate_type, aggregate_id, _stream(aggregate_type, aggregate_id)

    def _raw(self, tokens: tuple[str, ...]) -> list[RawEvent]:
        return [RawEvent("Happened", t.encode(), {"by": self.process}) for t in tokens]

    def _store(
        self,
        name: str,
        args: tuple[Any, ...],
        key: Hashable,
        method: str,
        call_args: tuple[Any, ...],
        *,
        convert: Callable[[Any], Any] = _done,
    ) -> _Call:
        return _Call(name, args, key, self.r.store, method, call_args, convert)

    def _add(self) -> _Plan:
        _, kind, ident, key = self._pick()
        tokens = self.tokens(self.rng.randint(1, 2))
        yield self._store("add", (tokens,), key, "add_aggregate", (kind, ident, self._raw(tokens)))

    def _append(self) -> _Plan:
        index, kind, ident, key = self._pick()
        expected = max(self.known[index] + self.rng.choice((0, 0, 0, 0, -1, 1)), 0)
        tokens = self.tokens(self.rng.randint(1, 2))
        events = self._raw(tokens)
        args = (kind, ident, expected, events)
        result = yield self._store("append", (expected, tokens), key, "append_events", args)
        if result == OK:
            self.known[index] = expected + len(tokens)

    def _read(self) -> _Plan:
        yield from self.read(self._pick()[0], self.rng.choice((0, 0, 1)))

    def read(self, index: int, start: int) -> _Plan:
        """Read stream ``index`` from ``start``."""
        kind, ident = STREAMS[index]
        key = _stream(kind, ident)
        result = yield self._store(
            "read", (start,), key, "events", (kind, ident, start), convert=_tokens
        )
        if isinstance(result, tuple):
            self.known[index] = start + len(result)

    def _contains(self) -> _Plan:
        _, kind, ident, key = self._pick()
        yield self._store("contains", (), key, "contains_aggregate", (kind, ident), convert=_same)

    def _snapshot(self) -> _Plan:
        index, kind, ident, key = self._pick()
        version = self.rng.randint(1, self.known[index] + 1)
        (token,) = self.tokens(1)
        snap = RawSnapshot(version, token.encode())
        yield self._store("snapshot", (version, token), key, "add_snapshot", (kind, ident, snap))

    def _latest_snapshot(self) -> _Plan:
        yield from self.latest_snapshot(self._pick()[0])

    def latest_snapshot(self, index: int) -> _Plan:
        """Read stream ``index``'s latest snapshot."""
        kind, ident = STREAMS[index]
        key = _stream(kind, ident)
        yield self._store(
            "latest_snapshot", (), key, "latest_snapshot", (kind, ident), convert=_snapshot
        )

    def _lock_call(self, name: str, operation: str, *call_args: Any) -> _Call:
        convert = _done if operation == "release" else _same
        return _Call(operation, (), ("lock", name), self.locks[name], operation, call_args, convert)

    def _acquire(self) -> _Plan:
        yield self._lock_call(self.rng.choice(sorted(self.locks)), "acquire", 0.0)

    def _release(self, name: str | None = None) -> _Plan:
        yield self._lock_call(name or self.rng.choice(sorted(self.locks)), "release")

    def _held(self) -> _Plan:
        yield self._lock_call(self.rng.choice(sorted(self.locks)), "held")

    def _observe(self) -> _Plan:
        yield from self._read_outbox(self.outboxes[_OBSERVER], EVERYTHING)

    def _relay(self) -> _Plan:
        yield from self._relay_batch(self.outboxes[_RELAY], self.rng.randint(1, 4))

    def _read_outbox(self, outbox: Any, limit: int) -> Generator[_Call, Any, list[RelayEvent]]:
        """Read ``outbox``, recorded with (message id, token) pairs; the events read."""
        events: list[RelayEvent] = []

        def keep(found: list[RelayEvent]) -> tuple[tuple[str, str], ...]:
            events.extend(found)
            return tuple((e.message_id, e.event.data.decode()) for e in found)

        key = ("outbox", outbox.name)
        yield _Call("outbox_read", (limit,), key, outbox, "unpublished_events", (limit,), keep)
        return events

    def _relay_batch(self, outbox: Any, limit: int) -> Generator[_Call, Any, int]:
        """Read a batch of ``outbox`` and mark it, as a relay does; the batch's size."""
        batch = yield from self._read_outbox(outbox, limit)
        if batch:
            ids = tuple(e.message_id for e in batch)
            key = ("outbox", outbox.name)
            yield _Call("outbox_mark", (ids,), key, outbox, "mark_events_as_published", (batch,))
        return len(batch)


def record_history(
    store: EventStore,
    *,
    capabilities: Iterable[str] = (),
    threads: int = 6,
    operations: int = 600,
    seconds: float = 2.0,
    seed: int | None = None,
) -> list[Operation]:
    """Run random operations on ``store`` from ``threads`` threads and return the
    history: up to ``operations`` calls in all, for at most about ``seconds``, then,
    once every thread is done, a final read of every stream and snapshot (process
    ``"final"``), a full outbox read and a relay that drains the outbox.

    ``store`` must be new and empty. ``capabilities`` (names) switch on the snapshot,
    outbox and relay-lock operations. ``seed`` makes each thread's choices repeatable
    (the interleaving is the threads' own). Errors the contract names are results; a
    :class:`~esrc_core.errors.StoreUnavailableError` makes the result
    :data:`~esrc_testkit.linearizability.UNKNOWN`; any other error is raised, with a
    note naming the operation.
    """
    recorder = _Recorder.start(
        store,
        capabilities,
        outbox=HasOutbox,
        relay_lock=HasRelayLock,
        workers=threads,
        operations=operations,
        seconds=seconds,
        seed=seed,
    )
    barrier = threading.Barrier(threads, timeout=120)

    def work(index: int) -> None:
        worker = _Worker(recorder, index, f"t{index}", relay=index == 0)
        barrier.wait()
        _run(recorder, worker.process, worker.plan())

    run_in_threads(threads, work, barrier=barrier)
    final = _Worker(recorder, threads, "final", relay=True)
    _run(recorder, final.process, final.final_plan())
    return recorder.history()


async def record_history_async(
    store: AsyncEventStore,
    *,
    capabilities: Iterable[str] = (),
    tasks: int = 16,
    operations: int = 600,
    seconds: float = 2.0,
    seed: int | None = None,
) -> list[Operation]:
    """:func:`record_history` on an async store: the same operations, from ``tasks``
    tasks on the running event loop (processes ``task0``, ``task1``, ...), each call's
    invocation and response taken around its ``await``; the outbox and relay locks are
    the store's async ones (:class:`~esrc_core.async_outbox.AsyncHasOutbox`,
    :class:`~esrc_core.async_outbox.AsyncHasRelayLock`). Check the history with
    :func:`check_store_history`. ``store`` must be new and empty; it is left open.

    An error the contract does not name cancels the other tasks and is raised, with a
    note naming the operation.
    """
    recorder = _Recorder.start(
        store,
        capabilities,
        outbox=AsyncHasOutbox,
        relay_lock=AsyncHasRelayLock,
        workers=tasks,
        operations=operations,
        seconds=seconds,
        seed=seed,
    )
    workers = [_Worker(recorder, i, f"task{i}", relay=i == 0) for i in range(tasks)]
    try:
        async with asyncio.TaskGroup() as group:
            for worker in workers:
                group.create_task(_run_async(recorder, worker.process, worker.plan()))
    except ExceptionGroup as errors:
        first, *others = errors.exceptions
        for other in others:
            first.add_note(f"also: {type(other).__name__}: {other}")
        raise first from None
    final = _Worker(recorder, tasks, "final", relay=True)
    await _run_async(recorder, final.process, final.final_plan())
    return recorder.history()


def check_store_history(
    history: Sequence[Operation], *, seconds: float = 10.0, shrink_seconds: float = 5.0
) -> Verdict:
    """Check a history :func:`record_history` recorded (see the module docstring):
    streams and relay locks for linearizability against :class:`StoreModel`, within
    ``seconds`` (a failure shrunk for up to ``shrink_seconds``), then the outbox."""
    started = time.monotonic()
    outbox = [op for op in history if op.name.startswith("outbox_")]
    verdict = check_linearizable(
        [op for op in history if not op.name.startswith("outbox_")],
        StoreModel(),
        seconds=seconds,
        shrink_seconds=shrink_seconds,
    )
    if not verdict.linearizable or not outbox:
        return verdict
    problem = _OutboxCheck(history).problem()
    if problem is None:
        return verdict
    key, why, ops = problem
    return Verdict(
        False,
        key,
        tuple(op for op in history if op.key == key),
        tuple(ops),
        partitions=verdict.partitions + 1,
        seconds=time.monotonic() - started,
        origin=min(op.invoke for op in history),
        notes=(why,),
    )


class _OutboxCheck:
    """The outbox checks of :func:`check_store_history`."""

    def __init__(self, history: Sequence[Operation]) -> None:
        self.history = history
        self.writers: dict[str, Operation] = {}
        """Each written token's write."""
        self.stream_of: dict[Hashable, tuple[str, AggregateId]] = {
            _stream(t, i): (t, i) for t, i in STREAMS
        }
        for op in history:
            if op.name in _WRITES:
                for token in op.args[-1]:
                    self.writers[token] = op
        self.final: dict[Hashable, Operation] = {
            op.key: op for op in history if op.process == "final" and op.name == "read"
        }

    def problem(self) -> tuple[Hashable, str, list[Operation]] | None:
        """The first problem found: the outbox's key, what is wrong, and the operations
        that show it; ``None`` when there is none."""
        reads = [op for op in self.history if op.name == "outbox_read"]
        for read in reads:
            found = self._foreign_event(read)
            if found is not None:
                return read.key, *found
        observed = [r for r in reads if r.key == ("outbox", _OBSERVER)]
        found = self._disagreement(observed)
        if found is not None:
            return ("outbox", _OBSERVER), *found
        final = [r for r in observed if r.process == "final"]
        if not final or not isinstance(final[-1].result, tuple):
            return None  # the final read failed transiently: nothing more to compare
        order = [m for m, _ in final[-1].result]
        found = self._incomplete(final[-1], order)
        if found is not None:
            return ("outbox", _OBSERVER), *found
        return self._relay_mismatch(order)

    def _foreign_event(self, read: Operation) -> tuple[str, list[Operation]] | None:
        if not isinstance(read.result, tuple):
            return None
        for mid, token in read.result:
            write = self.writers.get(token)
            if write is None:
                return f"the outbox returned {mid} ({token!r}), which nobody wrote", [read]
            if write.result not in (OK, UNKNOWN):
                return f"the outbox returned {mid} ({token!r}) of a write that failed", [
                    write,
                    read,
                ]
            if write.invoke > (read.response or 0):
                return f"the outbox returned {mid} ({token!r}) before it was written", [
                    read,
                    write,
                ]
            final = self.final.get(write.key)
            kind, ident = self.stream_of[write.key]
            stored = final.result if final is not None else ()
            if not isinstance(stored, tuple):
                continue
            if token not in stored:
                return f"the outbox returned {mid} ({token!r}), which is not in its stream", [
                    write,
                    read,
                    *([final] if final else []),
                ]
            want = message_id(kind, ident, stored.index(token) + 1)
            if mid != want:
                return (
                    f"the outbox returned {token!r} as {mid}, but the stream holds it at {want}",
                    [write, read, *([final] if final else [])],
                )
        return None

    @staticmethod
    def _disagreement(observed: list[Operation]) -> tuple[str, list[Operation]] | None:
        done = [r for r in observed if isinstance(r.result, tuple)]
        for i, first in enumerate(done):
            for second in done[i + 1 :]:
                shorter, longer = sorted((first.result, second.result), key=len)
                if longer[: len(shorter)] != shorter:
                    return (
                        "two reads of a relay that marks nothing disagree on the order",
                        [first, second],
                    )
                before, after = (
                    (first, second) if first.invoke <= second.invoke else (second, first)
                )
                if (before.response or 0) < after.invoke and len(after.result) < len(before.result):
                    return (
                        "a read of a relay that marks nothing lists fewer events than one "
                        "that returned before it was called",
                        [before, after],
                    )
        return None

    def _incomplete(self, final: Operation, order: list[str]) -> tuple[str, list[Operation]] | None:
        want: list[str] = []
        for key, read in self.final.items():
            if isinstance(read.result, tuple):
                kind, ident = self.stream_of[key]
                want += [message_id(kind, ident, v) for v in range(1, len(read.result) + 1)]
        if sorted(order) != sorted(want) or len(set(order)) != len(order):
            missing = sorted(set(want) - set(order))
            extra = sorted({m for m in order if order.count(m) > 1} | (set(order) - set(want)))
            return (
                f"after the writers finished the outbox lists {len(order)} events, want "
                f"every stored event once ({len(want)}); missing {missing}, extra or "
                f"repeated {extra}",
                [final, *self.final.values()],
            )
        position = {m: i for i, m in enumerate(order)}
        for key, read in self.final.items():
            if isinstance(read.result, tuple):
                kind, ident = self.stream_of[key]
                ids = [message_id(kind, ident, v) for v in range(1, len(read.result) + 1)]
                if sorted(ids, key=position.__getitem__) != ids:
                    return f"the outbox lists {key!r} out of version order", [final, read]
        return None

    def _relay_mismatch(self, order: list[str]) -> tuple[Hashable, str, list[Operation]] | None:
        key = ("outbox", _RELAY)
        batches = [op for op in self.history if op.key == key and op.name == "outbox_read"]
        relayed: list[str] = []
        for batch in batches:
            if not isinstance(batch.result, tuple):
                continue
            relayed += [m for m, _ in batch.result]
            if relayed != order[: len(relayed)]:
                return (
                    key,
                    "the batches the relay read and marked, one after another, are not a "
                    "prefix of the outbox's order (an event skipped, repeated or moved)",
                    [op for op in self.history if op.key == key][-6:],
                )
        if relayed and relayed != order:
            return (
                key,
                f"the relay drained {len(relayed)} events, want the {len(order)} of the order",
                [op for op in self.history if op.key == key][-4:],
            )
        return None


class LinearizabilityAcceptance(StoreSuite):
    """A concurrent history, checked for linearizability (capability ``"threads"``).

    Threads run random operations on a few streams (and the snapshots, outbox and relay
    locks when the backend declares them) for a couple of seconds; the recorded history
    is checked by :func:`check_store_history`. A failure prints the smallest failing
    sub-history found, as a timeline.
    """

    linearizability_threads: ClassVar[int] = 6
    """How many threads run operations at once."""
    linearizability_operations: ClassVar[int] = 600
    """How many operations they run in all (at most)."""
    linearizability_seconds: ClassVar[float] = 2.0
    """How long they run (at most)."""

    @requires(Capability.THREADS)
    def test_concurrent_history_is_linearizable(self, store: EventStore) -> None:
        """Every stream and relay lock behaves as if each operation took effect at one
        instant between its call and its return; the outbox never shows an event
        nobody wrote, never changes its order, and in the end lists every event once."""
        history = record_history(
            store,
            capabilities=self.capabilities,
            threads=self.linearizability_threads,
            operations=self.linearizability_operations,
            seconds=self.linearizability_seconds,
        )
        verdict = check_store_history(history)
        if not verdict:
            pytest.fail(verdict.explain(), pytrace=False)
