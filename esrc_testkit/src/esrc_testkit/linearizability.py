"""Linearizability checking of concurrent histories.

A history is a list of :class:`Operation` records: which process (thread or task) ran
what, with which arguments and result, invoked and answered when. The history is
*linearizable* against a sequential :class:`Model` when every operation can be given
one instant between its invocation and its response such that running the operations
one at a time in that order, on the model, gives every operation the result it got.

:func:`check_linearizable` decides this with Wing and Gong's search as Lowe improved
it (the method Porcupine and Knossos use):

- the calls and returns are kept in one time-ordered list; the search linearizes the
  earliest call it can, lifts it out of the list and starts again from the head, and
  backtracks when it meets a return whose call it could not linearize;
- Lowe's memoisation: a (set of linearized operations, model state) pair already
  explored is never explored again, which turns the exponential search into one that
  is fast on real histories;
- P-compositionality: operations carry a partition :attr:`Operation.key` (a stream, a
  lock name) and each partition is checked on its own, which is sound when the model is
  a product of independent models, one per key (:meth:`Model.initial` takes the key).

An operation whose outcome is unknown (it raised a transient error, or never answered)
has :data:`UNKNOWN` as its result: it may have taken effect at any instant after its
invocation, or never (Knossos's ``:info``).

When a partition is not linearizable, :func:`shrink` drops operations while the rest
still fails (coarse chunks first, then one at a time), keeping only sub-histories the
model calls :meth:`~Model.self_contained`, and :meth:`Verdict.explain` prints the
smallest failing sub-history found as a timeline.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Protocol, TypeVar

__all__ = [
    "UNKNOWN",
    "Model",
    "Operation",
    "Verdict",
    "check_linearizable",
    "format_history",
    "shrink",
]

S = TypeVar("S", bound=Hashable)


class _Unknown:
    """The type of :data:`UNKNOWN`."""

    def __repr__(self) -> str:
        return "unknown"


UNKNOWN: Final = _Unknown()
"""The result of an operation whose effect is unknown: it may or may not have happened."""

_NEVER: Final = float("inf")


@dataclass(frozen=True, slots=True)
class Operation:
    """One call in a concurrent history.

    ``invoke`` and ``response`` are times in nanoseconds on one monotonic clock (any
    origin); ``response`` is ``None`` when the operation never answered. ``result`` is
    what it returned, the name of the exception class it raised, or :data:`UNKNOWN`
    (which the checker treats as never answered). ``key`` names the partition the
    operation belongs to: operations with different keys never affect each other.
    """

    process: str
    """Who ran it (a thread or task name); one process runs one operation at a time."""
    name: str
    """The operation, as the model knows it (``"append"``, ``"acquire"``, ...)."""
    args: tuple[Any, ...]
    """Its arguments, as the model reads them."""
    result: Any
    """What it returned, the name of the error it raised, or :data:`UNKNOWN`."""
    invoke: int
    """When it was called."""
    response: int | None
    """When it returned or raised; ``None`` if it never did."""
    key: Hashable = None
    """The partition it belongs to."""

    @property
    def returns(self) -> float:
        """The response time the checker uses: infinity for an unknown outcome."""
        if self.response is None or self.result is UNKNOWN:
            return _NEVER
        return self.response

    def __str__(self) -> str:
        args = ", ".join(repr(a) for a in self.args)
        return f"{self.name}({args}) -> {self.result!r}"


class Model(Protocol[S]):
    """The sequential specification a history is checked against.

    States must be hashable and compared by value (tuples, frozensets, ``None``), since
    the checker remembers the (linearized set, state) pairs it has explored.
    """

    def initial(self, key: Hashable) -> S:
        """The state of partition ``key`` before any operation."""
        ...

    def step(self, state: S, operation: Operation) -> Iterable[S]:
        """Every state ``operation`` can lead to when it runs alone in ``state`` and
        gets the result it got; nothing when that result is impossible there. More than
        one for a non-deterministic operation (one with an :data:`UNKNOWN` result
        either happened or did not)."""
        ...

    def self_contained(self, operations: Sequence[Operation]) -> bool:
        """Whether ``operations`` make sense shown on their own: :func:`shrink` keeps
        only such sub-histories, so that a failure is not blamed on a value written by
        an operation that was dropped from the report."""
        ...


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`check_linearizable`."""

    linearizable: bool | None
    """``True``, ``False``, or ``None`` when the time limit ran out first."""
    key: Hashable = None
    """The partition that failed or could not be decided (``None`` when linearizable)."""
    operations: tuple[Operation, ...] = ()
    """All operations of that partition."""
    failing: tuple[Operation, ...] = ()
    """The smallest failing sub-history of that partition the shrinker found."""
    partitions: int = 0
    """How many partitions were checked."""
    seconds: float = 0.0
    """How long checking (and shrinking) took."""
    origin: int = 0
    """The time the timeline of :meth:`explain` counts from (the history's first call)."""
    notes: tuple[str, ...] = field(default=())
    """Anything the checker wants to add to the explanation."""

    def __bool__(self) -> bool:
        return self.linearizable is True

    def explain(self) -> str:
        """A readable account: what was checked and, for a failure, the smallest
        failing sub-history as a timeline (process, operation, arguments, result,
        [invoke, response] in milliseconds)."""
        if self.linearizable:
            return f"linearizable: {self.partitions} partitions in {self.seconds:.2f}s"
        if self.linearizable is None:
            head = (
                f"undecided: partition {self.key!r} ({len(self.operations)} operations) "
                f"was not decided within the time limit"
            )
            return "\n".join([head, *self.notes])
        lines = [
            f"not linearizable: partition {self.key!r}; {len(self.failing)} of its "
            f"{len(self.operations)} operations cannot be put in any order that their "
            "times allow and the sequential model accepts:",
            format_history(self.failing, origin=self.origin),
            *self.notes,
        ]
        return "\n".join(lines)


def format_history(operations: Iterable[Operation], *, origin: int | None = None) -> str:
    """``operations`` as a timeline, one per line by invocation time: process,
    operation with arguments and result, and [invoke, response] in milliseconds since
    ``origin`` (the first invocation by default); ``...`` for no response."""
    ops = sorted(operations, key=lambda o: (o.invoke, o.returns))
    if not ops:
        return "  (no operations)"
    start = min(o.invoke for o in ops) if origin is None else origin
    width = max(len(o.process) for o in ops)
    lines = []
    for op in ops:
        begin = (op.invoke - start) / 1e6
        end = "     ..." if op.returns == _NEVER else f"{(op.returns - start) / 1e6:8.3f}"
        lines.append(f"  {op.process:<{width}}  [{begin:8.3f}, {end}] ms  {op}")
    return "\n".join(lines)


class _Timeout(Exception):
    """The time limit ran out during a search."""


class _Search(Generic[S]):
    """One Wing-Gong-Lowe search over one partition.

    Node ``2i`` is the call of operation ``i`` and node ``2i + 1`` its return; they
    form a doubly linked list in time order (calls before returns at equal times, so
    operations whose times touch count as concurrent), headed by node ``2n``.
    Linearizing an operation lifts both its nodes out; undoing it puts them back.
    """

    def __init__(
        self, model: Model[S], key: Hashable, ops: Sequence[Operation], deadline: float
    ) -> None:
        self.model, self.ops, self.deadline = model, ops, deadline
        n = len(ops)
        self.head = 2 * n
        self.nxt = [-1] * (2 * n + 1)
        self.prv = [-1] * (2 * n + 1)
        order = sorted(
            range(2 * n),
            key=lambda node: (
                ops[node // 2].invoke if node % 2 == 0 else ops[node // 2].returns,
                node % 2,
            ),
        )
        last = self.head
        for node in order:
            self.nxt[last], self.prv[node], last = node, last, node
        self.state: S = model.initial(key)
        self.linearized = 0
        self.cache: set[tuple[int, S]] = set()
        self.stack: list[tuple[int, S, list[S]]] = []

    def _lift(self, index: int) -> None:
        nxt, prv = self.nxt, self.prv
        for node in (2 * index, 2 * index + 1):
            nxt[prv[node]] = nxt[node]
            if nxt[node] != -1:
                prv[nxt[node]] = prv[node]

    def _unlift(self, index: int) -> None:
        nxt, prv = self.nxt, self.prv
        for node in (2 * index + 1, 2 * index):
            nxt[prv[node]] = node
            if nxt[node] != -1:
                prv[nxt[node]] = node

    def _take(self, index: int, before: S, candidates: Iterable[S]) -> bool:
        """Linearize operation ``index`` from state ``before`` into the first candidate
        state not explored yet; whether there was one."""
        bits = self.linearized | (1 << index)
        fresh = [s for s in dict.fromkeys(candidates) if (bits, s) not in self.cache]
        if not fresh:
            return False
        self.cache.add((bits, fresh[0]))
        self.stack.append((index, before, fresh[1:]))
        self.state, self.linearized = fresh[0], bits
        self._lift(index)
        return True

    def run(self) -> bool:
        """Whether the operations are linearizable; raises :class:`_Timeout`."""
        nxt, head = self.nxt, self.head
        entry = nxt[head]
        steps = 0
        while nxt[head] != -1:
            steps += 1
            if steps % 512 == 0 and time.monotonic() > self.deadline:
                raise _Timeout
            index = entry // 2
            if entry % 2 == 0:
                step = self.model.step(self.state, self.ops[index])
                entry = nxt[head] if self._take(index, self.state, step) else nxt[entry]
                continue
            # A return whose call is not linearized: undo the last choice.
            if not self.stack:
                return False
            index, before, rest = self.stack.pop()
            self.linearized &= ~(1 << index)
            self.state = before
            self._unlift(index)
            entry = nxt[head] if self._take(index, before, rest) else nxt[2 * index]
        return True


def _linearizable(
    model: Model[S], key: Hashable, ops: Sequence[Operation], deadline: float
) -> bool:
    return _Search(model, key, ops, deadline).run()


def shrink(
    model: Model[S],
    key: Hashable,
    operations: Sequence[Operation],
    *,
    seconds: float = 5.0,
) -> tuple[Operation, ...]:
    """A small sub-history of ``operations`` (one partition, not linearizable) that is
    still not linearizable and that ``model`` calls self-contained.

    Drops halves, quarters, ... and finally single operations while what is left still
    fails, until nothing more can be dropped or ``seconds`` have passed (then the
    smallest failing history found so far is returned).
    """
    deadline = time.monotonic() + seconds
    current = list(operations)

    def fails(candidate: list[Operation]) -> bool:
        if not model.self_contained(candidate):
            return False
        try:
            return not _linearizable(model, key, candidate, deadline)
        except _Timeout:
            return False

    size = max(1, len(current) // 2)
    while time.monotonic() < deadline:
        changed = False
        start = 0
        while start < len(current) and time.monotonic() < deadline:
            candidate = current[:start] + current[start + size :]
            if candidate and fails(candidate):
                current = candidate
                changed = True
            else:
                start += size
        if size == 1 and not changed:
            break
        size = max(1, size // 2)
    return tuple(current)


def check_linearizable(
    operations: Iterable[Operation],
    model: Model[S],
    *,
    seconds: float = 10.0,
    shrink_seconds: float = 5.0,
) -> Verdict:
    """Whether ``operations`` are linearizable against ``model``, partition by
    partition (by :attr:`Operation.key`).

    Stops at the first partition that fails and shrinks it (for up to
    ``shrink_seconds``); a search still running after ``seconds`` in all gives a
    verdict of ``None`` (undecided) rather than a wrong answer.
    """
    started = time.monotonic()
    deadline = started + seconds
    ops = list(operations)
    origin = min((o.invoke for o in ops), default=0)
    parts: dict[Hashable, list[Operation]] = defaultdict(list)
    for op in ops:
        parts[op.key].append(op)
    # Smaller partitions first: a failure in one of them is found and shrunk sooner.
    for checked, (key, part) in enumerate(sorted(parts.items(), key=lambda kv: len(kv[1])), 1):
        try:
            ok = _linearizable(model, key, part, deadline)
        except _Timeout:
            return Verdict(
                None,
                key,
                tuple(part),
                partitions=checked,
                seconds=time.monotonic() - started,
                origin=origin,
            )
        if not ok:
            failing = shrink(model, key, part, seconds=shrink_seconds)
            return Verdict(
                False,
                key,
                tuple(part),
                failing,
                partitions=checked,
                seconds=time.monotonic() - started,
                origin=origin,
            )
    return Verdict(True, partitions=len(parts), seconds=time.monotonic() - started)
