"""The linearizability checker on hand-written histories: ones that are linearizable,
ones that are not, the shrinker's small witnesses, the time bound, and the outbox
checks of a store history."""

from __future__ import annotations

import itertools
import time
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from esrc_testkit.histories import STREAMS, StoreModel, check_store_history
from esrc_testkit.linearizability import (
    UNKNOWN,
    Operation,
    check_linearizable,
    format_history,
    shrink,
)

STREAM = ("stream", "Order", "i:42")
LOCK = ("lock", "relay")
MS = 1_000_000


def op(
    process: str,
    name: str,
    args: tuple[Any, ...],
    result: Any,
    span: tuple[float, float | None],
    *,
    key: Hashable = STREAM,
) -> Operation:
    """An operation called and answered at ``span`` (milliseconds; ``None``: no answer)."""
    invoke, response = span
    return Operation(
        process,
        name,
        args,
        result,
        int(invoke * MS),
        None if response is None else int(response * MS),
        key,
    )


def check(history: Iterable[Operation]) -> bool | None:
    return check_linearizable(history, StoreModel()).linearizable


CREATED = op("t0", "add", (("a",),), "ok", (0, 1))


def test_sequential_history_following_the_model_is_linearizable() -> None:
    """Add, append at the right version, a stale append refused, reads of what is there."""
    history = [
        CREATED,
        op("t0", "append", (1, ("b",)), "ok", (2, 3)),
        op("t1", "append", (1, ("c",)), "OptimisticConcurrencyError", (4, 5)),
        op("t1", "read", (0,), ("a", "b"), (6, 7)),
        op("t1", "read", (1,), ("b",), (8, 9)),
        op("t0", "snapshot", (2, "s"), "ok", (10, 11)),
        op("t1", "latest_snapshot", (), (2, "s"), (12, 13)),
    ]
    assert check(history) is True


def test_overlapping_appends_at_one_version_that_both_succeed_are_not_linearizable() -> None:
    """Two writers both win at expected version 1: no order allows it."""
    history = [
        CREATED,
        op("t1", "append", (1, ("b",)), "ok", (2, 5)),
        op("t2", "append", (1, ("c",)), "ok", (3, 6)),
    ]
    verdict = check_linearizable(history, StoreModel())
    assert verdict.linearizable is False
    assert verdict.key == STREAM
    assert set(verdict.failing) == set(history)


def test_overlapping_appends_where_one_loses_are_linearizable_either_way() -> None:
    """Concurrent appends at one version: either may win, and a read overlapping both
    may see the state before, or after the winner."""
    for winner, loser in (("t1", "t2"), ("t2", "t1")):
        history = [
            CREATED,
            op(winner, "append", (1, (winner,)), "ok", (2, 6)),
            op(loser, "append", (1, (loser,)), "OptimisticConcurrencyError", (3, 7)),
            op("t3", "read", (0,), ("a",), (4, 8)),
            op("t4", "read", (0,), ("a", winner), (4, 8)),
        ]
        assert check(history) is True


def test_read_of_an_append_not_yet_invoked_is_not_linearizable() -> None:
    """A read that returned before the append was called cannot have seen it."""
    history = [
        CREATED,
        op("t1", "read", (0,), ("a", "b"), (2, 3)),
        op("t2", "append", (1, ("b",)), "ok", (4, 5)),
    ]
    assert check(history) is False


def test_stale_read_after_the_write_returned_is_not_linearizable() -> None:
    """The register example: once a write returned, a later read must see it."""
    history = [
        CREATED,
        op("t1", "append", (1, ("b",)), "ok", (2, 3)),
        op("t2", "read", (0,), ("a",), (4, 5)),
    ]
    assert check(history) is False
    # The same read overlapping the write may see either state.
    overlapping = [history[0], history[1], op("t2", "read", (0,), ("a",), (2.5, 5))]
    assert check(overlapping) is True


def test_ids_of_different_streams_are_checked_apart() -> None:
    """Each stream is its own partition: an add of 42 and an add of "42" both succeed."""
    other = ("stream", "Order", "s:42")
    history = [
        op("t1", "add", (("a",),), "ok", (0, 2)),
        op("t2", "add", (("b",),), "ok", (1, 3), key=other),
    ]
    verdict = check_linearizable(history, StoreModel())
    assert verdict.linearizable is True
    assert verdict.partitions == 2
    # The same two adds on one stream cannot both succeed.
    assert check([history[0], op("t2", "add", (("b",),), "ok", (1, 3))]) is False


def test_an_operation_with_unknown_outcome_may_or_may_not_have_happened() -> None:
    """An append that raised a transient error: reads may see it or not, but not both
    orders at once (once seen, it stays)."""
    lost = op("t1", "append", (1, ("b",)), UNKNOWN, (2, 3))
    assert check([CREATED, lost, op("t2", "read", (0,), ("a",), (4, 5))]) is True
    assert check([CREATED, lost, op("t2", "read", (0,), ("a", "b"), (4, 5))]) is True
    flicker = [
        CREATED,
        lost,
        op("t2", "read", (0,), ("a", "b"), (4, 5)),
        op("t2", "read", (0,), ("a",), (6, 7)),
    ]
    assert check(flicker) is False


def test_relay_lock_has_one_holder_at_a_time() -> None:
    """Two holders at once, or a refusal while nobody holds the lock, are violations;
    a refusal while another holds it and a take-over after release are not."""
    good = [
        op("t1", "acquire", (), True, (0, 1), key=LOCK),
        op("t2", "acquire", (), False, (2, 3), key=LOCK),
        op("t1", "release", (), "ok", (4, 5), key=LOCK),
        op("t2", "acquire", (), True, (6, 7), key=LOCK),
        op("t2", "held", (), True, (8, 9), key=LOCK),
        op("t1", "held", (), False, (8, 9), key=LOCK),
    ]
    assert check(good) is True
    both = [
        op("t1", "acquire", (), True, (0, 1), key=LOCK),
        op("t2", "acquire", (), True, (2, 3), key=LOCK),
    ]
    assert check(both) is False
    assert check([op("t2", "acquire", (), False, (2, 3), key=LOCK)]) is False


def _noise(count: int) -> list[Operation]:
    """Reads and refused appends of a stream holding "a" that change nothing."""
    ops = []
    for n in range(count):
        start = 10 + 2 * n
        ops.append(op(f"t{3 + n % 3}", "read", (0,), ("a",), (start, start + 1)))
        ops.append(
            op(
                f"t{3 + n % 3}",
                "append",
                (5, (f"x{n}",)),
                "OptimisticConcurrencyError",
                (start, start + 1),
            )
        )
    return ops


def test_shrink_returns_a_small_failing_history() -> None:
    """A violation buried in 60 harmless operations shrinks to the three that show it,
    and the explanation prints them as a timeline."""
    core = [
        CREATED,
        op("t1", "append", (1, ("b",)), "ok", (200, 205)),
        op("t2", "append", (1, ("c",)), "ok", (201, 206)),
    ]
    history = [core[0], *_noise(30), *core[1:]]
    verdict = check_linearizable(history, StoreModel())
    assert verdict.linearizable is False
    assert len(verdict.operations) == len(history)
    assert set(verdict.failing) == set(core)
    text = verdict.explain()
    assert "3 of its 63 operations" in text
    assert "append(1, ('b',)) -> 'ok'" in text
    assert "[ 200.000,  205.000] ms" in text


def test_shrink_keeps_what_the_failure_depends_on() -> None:
    """The shrinker does not drop the writes a kept read observed: the witness of a
    lost update keeps the add and the append the read needs."""
    history = [
        CREATED,
        op("t1", "append", (1, ("b",)), "ok", (2, 3)),
        op("t2", "append", (2, ("c",)), "ok", (4, 5)),
        op("t3", "read", (0,), ("a", "b"), (6, 7)),
        *_noise(5),
    ]
    failing = shrink(StoreModel(), STREAM, history)
    assert StoreModel().self_contained(failing)
    assert check(failing) is False
    assert {o.args for o in failing if o.name != "read"} >= {(("a",),), (1, ("b",))}


def test_shrink_does_not_blame_a_conflict_on_a_dropped_winner() -> None:
    """A refused append whose winner a shrink step dropped looks like a false conflict
    on its own; the shrinker keeps the real failure (a lower snapshot replacing a higher
    one) instead of such a sub-history."""
    history = [
        op("t0", "add", (("a", "b"),), "ok", (0, 1)),
        op("t1", "append", (2, ("c",)), "ok", (2, 3)),
        op("t1", "snapshot", (2, "s"), "ok", (4, 5)),
        op("t2", "snapshot", (1, "r"), "ok", (6, 7)),
        op("t3", "latest_snapshot", (), (1, "r"), (8, 9)),
        op("t2", "append", (2, ("d",)), "OptimisticConcurrencyError", (10, 11)),
    ]
    failing = shrink(StoreModel(), STREAM, history)
    assert check(failing) is False
    assert {"snapshot", "latest_snapshot"} <= {o.name for o in failing}
    assert not StoreModel().self_contained([history[0], history[-1]])


class _Orders:
    """A model whose states remember the order of every operation, so memoisation
    never helps, and whose last operation is impossible: the search must try every
    order."""

    def initial(self, key: Hashable) -> tuple[int, ...]:
        return ()

    def step(self, state: tuple[int, ...], operation: Operation) -> Iterable[tuple[int, ...]]:
        if operation.name == "never":
            return []
        return [(*state, int(operation.args[0]))]

    def self_contained(self, operations: Sequence[Operation]) -> bool:
        return True


def test_the_search_stops_at_its_time_limit_and_says_so() -> None:
    """A history whose search would take 12! steps is left undecided after the limit."""
    history = [op(f"t{n}", "w", (n,), "ok", (0, 100)) for n in range(12)]
    history.append(op("t99", "never", (), "ok", (200, 201)))
    started = time.monotonic()
    verdict = check_linearizable(history, _Orders(), seconds=0.3)
    assert time.monotonic() - started < 3
    assert verdict.linearizable is None
    assert "not decided within the time limit" in verdict.explain()


def test_the_search_is_fast_on_many_concurrent_operations() -> None:
    """Memoisation: 14 fully concurrent refused appends and reads are decided quickly
    (the plain search would try 14! orders)."""
    history = [CREATED]
    for n in range(7):
        history.append(op(f"t{n}", "append", (3, (f"x{n}",)), "OptimisticConcurrencyError", (2, 9)))
        history.append(op(f"r{n}", "read", (0,), ("a",), (2, 9)))
    history.append(op("z", "read", (0,), ("a", "zz"), (10, 11)))
    # Decided (False), not left undecided (None) by the time limit.
    assert check_linearizable(history, StoreModel(), seconds=5.0).linearizable is False


def test_format_history_orders_by_invocation_and_marks_no_response() -> None:
    """One line per operation, by invocation time, with '...' for no response."""
    text = format_history(
        [
            op("t2", "read", (0,), ("a",), (5, 6)),
            op("t1", "append", (1, ("b",)), UNKNOWN, (1, None)),
        ]
    )
    first, second = text.splitlines()
    assert "t1" in first
    assert "..." in first
    assert "append(1, ('b',)) -> unknown" in first
    assert "read(0) -> ('a',)" in second


def _store_history(observed: list[tuple[str, ...]]) -> list[Operation]:
    """A history of one stream 42 holding "a", "b" and observer outbox reads that
    return ``observed`` (tokens), one after another, then the final reads."""
    order = ("outbox", "observer")
    kind, ident = STREAMS[0]
    history = [
        op("t0", "add", (("a", "b"),), "ok", (0, 1)),
    ]
    clock = 2
    for tokens in observed:
        result = tuple((f"{kind}/i:{ident}/{tokens.index(t) + 1}", t) for t in tokens)
        history.append(op("t1", "outbox_read", (1000,), result, (clock, clock + 1), key=order))
        clock += 2
    history.append(op("final", "read", (0,), ("a", "b"), (clock, clock + 1)))
    full = tuple((f"{kind}/i:{ident}/{v}", t) for v, t in ((1, "a"), (2, "b")))
    history.append(op("final", "outbox_read", (1000,), full, (clock + 2, clock + 3), key=order))
    return history


def test_store_history_outbox_reads_that_keep_their_order_pass() -> None:
    """Observer reads that grow by extension, and a complete final read, pass."""
    verdict = check_store_history(_store_history([("a",), ("a", "b")]))
    assert verdict.linearizable is True, verdict.explain()


def test_store_history_outbox_reads_that_change_the_order_fail() -> None:
    """A read listing b before a, after one listing a first, is an order change."""
    history = _store_history([("a", "b")])
    kind, ident = STREAMS[0]
    swapped = ((f"{kind}/i:{ident}/2", "b"), (f"{kind}/i:{ident}/1", "a"))
    history.insert(2, op("t2", "outbox_read", (1000,), swapped, (4, 5), key=("outbox", "observer")))
    verdict = check_store_history(history)
    assert verdict.linearizable is False
    assert "disagree on the order" in verdict.explain()


def test_store_history_outbox_event_nobody_wrote_fails() -> None:
    """An outbox event whose data no write carried is reported with its message id."""
    history = _store_history([])
    kind, ident = STREAMS[0]
    ghost = ((f"{kind}/i:{ident}/1", "ghost"),)
    history.insert(1, op("t2", "outbox_read", (1000,), ghost, (2, 3), key=("outbox", "observer")))
    verdict = check_store_history(history)
    assert verdict.linearizable is False
    assert "'ghost'), which nobody wrote" in verdict.explain()


def test_permutations_of_concurrent_operations_are_all_accepted() -> None:
    """Whatever order fully concurrent appends at successive versions are listed in,
    the history where they all succeed is linearizable (one order fits)."""
    appends = [op(f"t{v}", "append", (v, (f"e{v}",)), "ok", (2, 9)) for v in range(1, 5)]
    final = op("r", "read", (0,), ("a", "e1", "e2", "e3", "e4"), (10, 11))
    for listed in itertools.permutations(appends):
        assert check([CREATED, *listed, final]) is True
