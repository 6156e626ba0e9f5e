"""The measured work: each figure does the same writes or reads through esrc and through
the raw driver, runs both sides ``--repeat`` times (alternating which goes first) and
records every run.

1. 1-event appends to new aggregates, on 1 thread and on ``--threads`` threads;
2. 10-event appends to existing aggregates, on 1 thread;
3. loading a 1,000-event aggregate, and a 10,000-event one from its snapshot at 9,900,
   through the :class:`~esrc_core.Repository` (decoding included);
4. reading 100,000 events through the outbox (read and mark, in batches), and relaying
   them end to end to the in-memory publisher.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bench.backends import Backend
from bench.model import AGGREGATE_TYPE, Basket, basket_history, raw_history, registry
from bench.raw import RawConnection, Row
from bench.results import Figure, Target
from bench.settings import APPEND_BATCH, LARGE_AGGREGATE, SMALL_AGGREGATE, SNAPSHOT_AT, Settings
from bench.timing import Job, timed_threads
from esrc_core import (
    Capability,
    EventStore,
    HasOutbox,
    RawEvent,
    RawSnapshot,
    Relay,
    RelayEvent,
    Repository,
    encode_id,
    offered,
    open_publisher,
)

__all__ = ["TARGETS", "Context", "append_figures", "load_figures", "outbox_figures"]

TARGETS: dict[str, Target] = {
    "append_1_event_1_thread": Target("min_ratio", 0.60),
    "append_1_event_threads": Target("min_ratio", 0.60),
    "append_10_events_1_thread": Target("min_ratio", 0.50),
    "load_1000_events": Target("max_ratio", 2.0),
    "outbox_read": Target("min_value", 100_000),
}
"""The goals, by figure (the multi-thread append by kind, whatever ``--threads`` is).
They hold on PostgreSQL; on the other backends the same figures are reported."""

_STREAM = 100
"""Events per aggregate in the outbox figures' data."""
_CHUNK = 500
"""Events per write when filling the stores (not timed)."""


@dataclass
class Context:
    """What every figure needs: the backend, the settings, and where progress goes."""

    backend: Backend
    settings: Settings
    say: Callable[[str], None]


def _nothing() -> None:
    return None


def _raw_rows(aggregate_id: uuid.UUID, events: Sequence[RawEvent], first_version: int) -> list[Row]:
    encoded = encode_id(aggregate_id)
    return [
        (
            AGGREGATE_TYPE,
            encoded,
            first_version + index,
            event.name,
            event.data,
            json.dumps(dict(event.metadata), separators=(",", ":")),
        )
        for index, event in enumerate(events)
    ]


def _chunks(events: Sequence[RawEvent], size: int) -> Iterator[tuple[int, Sequence[RawEvent]]]:
    for start in range(0, len(events), size):
        yield start, events[start : start + size]


def _write_stream(
    store: EventStore,
    raw: RawConnection | None,
    aggregate_id: uuid.UUID,
    events: Sequence[RawEvent],
) -> None:
    """Write one aggregate's events to both sides in chunks (untimed set-up)."""
    for start, chunk in _chunks(events, _CHUNK):
        if start == 0:
            store.add_aggregate(AGGREGATE_TYPE, aggregate_id, chunk)
        else:
            store.append_events(AGGREGATE_TYPE, aggregate_id, start, chunk)
        if raw is not None:
            raw.insert(_raw_rows(aggregate_id, chunk, start + 1))


def _measure(
    ctx: Context,
    figure: Figure,
    esrc: Callable[[int], float],
    raw: Callable[[int], float] | None,
) -> None:
    """Run both sides ``repeat`` times, alternating which goes first, recording each
    run's value; an exception ends the figure with ``error`` set."""
    backend = ctx.backend
    if backend.raw is None:
        figure.raw_skipped = f"no raw driver to compare with for {backend.label}"
        raw = None
    repeat = ctx.settings.repeat
    try:
        for run in range(repeat):
            sides: list[tuple[str, Callable[[int], float] | None, list[float]]] = [
                ("esrc", esrc, figure.esrc_runs),
                ("raw", raw, figure.raw_runs),
            ]
            if run % 2:
                sides.reverse()
            for side, measure, runs in sides:
                if measure is None:
                    continue
                value = measure(run)
                runs.append(value)
                ctx.say(
                    f"{figure.title}: {side} run {run + 1}/{repeat}: {value:,.2f} {figure.unit}"
                )
    except Exception as err:
        figure.error = backend.scrub(f"{type(err).__name__}: {err}")
        ctx.say(f"{figure.title}: failed: {figure.error}")
        print(backend.scrub(traceback.format_exc()), file=sys.stderr, end="")


def _guard(ctx: Context, figures: list[Figure], body: Callable[[], None]) -> list[Figure]:
    """Run a group's set-up and figures; a set-up failure marks every figure of the
    group that has no runs yet as failed, instead of ending the whole run."""
    try:
        body()
    except Exception as err:
        message = ctx.backend.scrub(f"{type(err).__name__}: {err}")
        ctx.say(f"set-up failed: {message}")
        print(ctx.backend.scrub(traceback.format_exc()), file=sys.stderr, end="")
        for figure in figures:
            if figure.error is None and not figure.esrc_runs:
                figure.error = f"set-up failed: {message}"
    return figures


# 1 and 2: appends ------------------------------------------------------------------


def _append_new_figure(ctx: Context, threads: int, *, notify: bool = False) -> Figure:
    sizes = ctx.settings.sizes
    per_thread = sizes.appends_one_thread if threads == 1 else sizes.appends_per_thread
    plural = "thread" if threads == 1 else "threads"
    key = "append_1_event_1_thread" if threads == 1 else f"append_1_event_{threads}_threads"
    return Figure(
        key=key + ("_notify" if notify else ""),
        title=f"1-event append, new aggregate, {threads} {plural}"
        + (", notify=True" if notify else ""),
        unit="events/s",
        higher_is_better=True,
        work={"threads": threads, "appends": threads * per_thread, "events": threads * per_thread},
        target=TARGETS["append_1_event_1_thread" if threads == 1 else "append_1_event_threads"],
    )


def _append_new(ctx: Context, store: EventStore, figure: Figure) -> None:
    threads = figure.work["threads"]
    per_thread = figure.work["appends"] // threads
    warmup = ctx.settings.sizes.warmup

    def streams(count: int) -> list[tuple[uuid.UUID, list[RawEvent]]]:
        return [(basket_id, raw_history(basket_id, 1)) for basket_id in _new_ids(count)]

    def esrc(_: int) -> float:
        def prepare(_: int) -> Job:
            data = streams(warmup + per_thread)
            for basket_id, events in data[:warmup]:
                store.add_aggregate(AGGREGATE_TYPE, basket_id, events)
            timed = data[warmup:]

            def work() -> None:
                for basket_id, events in timed:
                    store.add_aggregate(AGGREGATE_TYPE, basket_id, events)

            return work, _nothing

        return threads * per_thread / timed_threads(threads, prepare)

    def raw(_: int) -> float:
        database = ctx.backend.raw
        assert database is not None

        def prepare(_: int) -> Job:
            rows = [_raw_rows(i, events, 1) for i, events in streams(warmup + per_thread)]
            connection = database.connect()
            try:
                for row in rows[:warmup]:
                    connection.insert(row)
            except BaseException:
                connection.close()
                raise
            timed = rows[warmup:]

            def work() -> None:
                for row in timed:
                    connection.insert(row)

            return work, connection.close

        return threads * per_thread / timed_threads(threads, prepare)

    _measure(ctx, figure, esrc, raw)


def _append_batch_figure(ctx: Context) -> Figure:
    appends = ctx.settings.sizes.batch_appends
    return Figure(
        key="append_10_events_1_thread",
        title=f"{APPEND_BATCH}-event append, existing aggregate, 1 thread",
        unit="events/s",
        higher_is_better=True,
        work={"threads": 1, "appends": appends, "events": appends * APPEND_BATCH},
        target=TARGETS["append_10_events_1_thread"],
    )


def _append_batch(ctx: Context, store: EventStore, figure: Figure) -> None:
    appends, warmup = figure.work["appends"], ctx.settings.sizes.warmup

    def streams(count: int) -> list[tuple[uuid.UUID, list[RawEvent]]]:
        return [(i, raw_history(i, 1 + APPEND_BATCH)) for i in _new_ids(count)]

    def esrc(_: int) -> float:
        def prepare(_: int) -> Job:
            data = streams(warmup + appends)
            for basket_id, events in data:
                store.add_aggregate(AGGREGATE_TYPE, basket_id, events[:1])
            for basket_id, events in data[:warmup]:
                store.append_events(AGGREGATE_TYPE, basket_id, 1, events[1:])
            timed = [(basket_id, events[1:]) for basket_id, events in data[warmup:]]

            def work() -> None:
                for basket_id, events in timed:
                    store.append_events(AGGREGATE_TYPE, basket_id, 1, events)

            return work, _nothing

        return appends * APPEND_BATCH / timed_threads(1, prepare)

    def raw(_: int) -> float:
        database = ctx.backend.raw
        assert database is not None

        def prepare(_: int) -> Job:
            data = streams(warmup + appends)
            connection = database.connect()
            try:
                for basket_id, events in data:
                    connection.insert(_raw_rows(basket_id, events[:1], 1))
                for basket_id, events in data[:warmup]:
                    connection.insert(_raw_rows(basket_id, events[1:], 2))
            except BaseException:
                connection.close()
                raise
            timed = [_raw_rows(basket_id, events[1:], 2) for basket_id, events in data[warmup:]]

            def work() -> None:
                for rows in timed:
                    connection.insert(rows)

            return work, connection.close

        return appends * APPEND_BATCH / timed_threads(1, prepare)

    _measure(ctx, figure, esrc, raw)


def _new_ids(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


def append_figures(ctx: Context) -> list[Figure]:
    """Figures 1 and 2: 1-event appends to new aggregates on 1 and on ``--threads``
    threads, and 10-event appends to existing aggregates. Where the store supports
    ``notify=True`` (PostgreSQL) also the ``--threads`` figure with it: LISTEN/NOTIFY
    must not serialize appends."""
    threads = ctx.settings.threads
    one, many = _append_new_figure(ctx, 1), _append_new_figure(ctx, threads)
    batch = _append_batch_figure(ctx)
    notifying = _append_new_figure(ctx, threads, notify=True)
    figures = [one, many, batch]
    if ctx.backend.supports_notify:
        figures.insert(2, notifying)

    def body() -> None:
        ctx.backend.reset()
        store = ctx.backend.open_store()
        try:
            _append_new(ctx, store, one)
            _append_new(ctx, store, many)
            if notifying in figures:
                with contextlib.closing(ctx.backend.open_store(notify=True)) as notifier:
                    _append_new(ctx, notifier, notifying)
            _append_batch(ctx, store, batch)
        finally:
            store.close()

    return _guard(ctx, figures, body)


# 3: loads --------------------------------------------------------------------------


def _load_figure(key: str, title: str, loads: int, size: int, snapshot: int | None) -> Figure:
    return Figure(
        key=key,
        title=title,
        unit="ms/load",
        higher_is_better=False,
        work={
            "loads": loads,
            "events": size,
            "snapshot_version": snapshot or 0,
            "events_replayed": size - (snapshot or 0),
        },
        target=TARGETS.get(key),
    )


def _load(
    ctx: Context, repository: Repository[Basket], aggregate_id: uuid.UUID, figure: Figure
) -> None:
    loads, size = figure.work["loads"], figure.work["events"]
    snapshot, replayed = figure.work["snapshot_version"], figure.work["events_replayed"]
    encoded = encode_id(aggregate_id)

    def esrc(_: int) -> float:
        basket = repository.find_by_id(aggregate_id)
        if basket.version != size or basket.items != size - 1:
            raise AssertionError(
                f"load {AGGREGATE_TYPE} {aggregate_id}: got version {basket.version} with "
                f"{basket.items} items, want version {size} with {size - 1}"
            )
        began = time.perf_counter()
        for _ in range(loads):
            repository.find_by_id(aggregate_id)
        return (time.perf_counter() - began) / loads * 1000

    def raw(_: int) -> float:
        database = ctx.backend.raw
        assert database is not None
        connection = database.connect()
        try:
            state, payloads = connection.load(AGGREGATE_TYPE, encoded)
            if len(payloads) != replayed or (state is None) != (snapshot == 0):
                raise AssertionError(
                    f"raw load {encoded}: got {len(payloads)} events and snapshot "
                    f"{state is not None}, want {replayed} and {snapshot != 0}"
                )
            began = time.perf_counter()
            for _ in range(loads):
                connection.load(AGGREGATE_TYPE, encoded)
            return (time.perf_counter() - began) / loads * 1000
        finally:
            connection.close()

    _measure(ctx, figure, esrc, raw)


def load_figures(ctx: Context) -> list[Figure]:
    """Figure 3: loading a 1,000-event aggregate, and a 10,000-event one from its
    snapshot at 9,900, through the repository (the raw side reads the same rows and
    ``json.loads`` each payload)."""
    sizes = ctx.settings.sizes
    small_figure = _load_figure(
        "load_1000_events",
        f"load {SMALL_AGGREGATE:,} events, no snapshot",
        sizes.small_loads,
        SMALL_AGGREGATE,
        None,
    )
    large_figure = _load_figure(
        "load_10000_events_snapshot",
        f"load {LARGE_AGGREGATE:,} events, snapshot at {SNAPSHOT_AT:,}",
        sizes.large_loads,
        LARGE_AGGREGATE,
        SNAPSHOT_AT,
    )

    def body() -> None:
        ctx.backend.reset()
        store = ctx.backend.open_store()
        try:
            small, large = uuid.uuid4(), uuid.uuid4()
            ctx.say(f"writing aggregates of {SMALL_AGGREGATE:,} and {LARGE_AGGREGATE:,} events")
            state = Basket.from_events(large, basket_history(large, SNAPSHOT_AT)).snapshot()
            raw = ctx.backend.raw.connect() if ctx.backend.raw is not None else None
            try:
                _write_stream(store, raw, small, raw_history(small, SMALL_AGGREGATE))
                _write_stream(store, raw, large, raw_history(large, LARGE_AGGREGATE))
                if raw is not None:
                    raw.insert_snapshot(AGGREGATE_TYPE, encode_id(large), SNAPSHOT_AT, state)
            finally:
                if raw is not None:
                    raw.close()
            store.add_snapshot(AGGREGATE_TYPE, large, RawSnapshot(SNAPSHOT_AT, state))
            repository = Repository(
                store, Basket, registry, aggregate_type=AGGREGATE_TYPE, snapshot_every=0
            )
            _load(ctx, repository, small, small_figure)
            _load(ctx, repository, large, large_figure)
        finally:
            store.close()

    return _guard(ctx, [small_figure, large_figure], body)


# 4: outbox and relay ---------------------------------------------------------------


@runtime_checkable
class _Subscribable(Protocol):
    def subscribe(self, subscriber: Callable[[RelayEvent], object]) -> Callable[[], None]: ...


def _drain(step: Callable[[], int], expected: int, stall_timeout: float) -> tuple[int, float]:
    """Call ``step`` (which returns how many events it handled) until ``expected``
    events are handled, or nothing new came for ``stall_timeout`` seconds; return the
    count and the seconds it took."""
    total = 0
    idle_since: float | None = None
    began = time.perf_counter()
    while total < expected:
        handled = step()
        if handled:
            total += handled
            idle_since = None
            continue
        now = time.perf_counter()
        if idle_since is None:
            idle_since = now
        elif now - idle_since > stall_timeout:
            break
        time.sleep(0.01)
    return total, time.perf_counter() - began


def _outbox_rate(
    ctx: Context, figure: Figure, run: int, *, count: int, seconds: float, expected: int
) -> float:
    if count != expected:
        figure.notes.append(
            f"run {run + 1}: handled {count:,} of {expected:,} events before stalling for "
            f"{ctx.settings.stall_timeout:g}s (a transaction in flight elsewhere on the "
            "server holds the outbox back); the stall is included in the time"
        )
    return count / seconds


def _raw_paging(ctx: Context, expected: int) -> Callable[[int], float]:
    batch = ctx.settings.batch_size

    def raw(run: int) -> float:
        database = ctx.backend.raw
        assert database is not None
        connection = database.connect()
        last = 0

        def step() -> int:
            nonlocal last
            rows = connection.page(last, batch)
            if rows:
                last = int(rows[-1][0])
            return len(rows)

        try:
            count, seconds = _drain(step, expected, 0.0)
        finally:
            connection.close()
        if count != expected:
            raise AssertionError(f"raw paging read {count:,} events, want {expected:,}")
        return count / seconds

    return raw


def outbox_figures(ctx: Context) -> list[Figure]:
    """Figure 4: reading ``outbox_events`` events through a fresh outbox (read, then mark,
    batch by batch), and relaying them to the in-memory publisher; the raw side pages
    through the same rows with ``SELECT ... WHERE position > ? ORDER BY position``."""
    settings = ctx.settings
    expected, batch = settings.sizes.outbox_events, settings.batch_size
    work = {"events": expected, "batch_size": batch}
    read = Figure(
        key="outbox_read",
        title=f"outbox read + mark, {expected:,} events",
        unit="events/s",
        higher_is_better=True,
        work=work,
        target=TARGETS["outbox_read"],
    )
    relay = Figure(
        key="relay_to_memory",
        title=f"relay to memory:// publisher, {expected:,} events",
        unit="events/s",
        higher_is_better=True,
        work=work,
    )
    figures = [read, relay]
    token = uuid.uuid4().hex[:8]

    def body() -> None:
        ctx.backend.reset()
        store = ctx.backend.open_store()
        try:
            outboxes = offered(store, Capability.OUTBOX, HasOutbox)
            if outboxes is None:
                for figure in figures:
                    figure.error = f"{ctx.backend.label} store has no outbox"
                return
            _fill(ctx, store, expected)

            def esrc_read(run: int) -> float:
                outbox = outboxes.outbox(f"bench-read-{token}-{run}")

                def step() -> int:
                    events = outbox.unpublished_events(batch)
                    outbox.mark_events_as_published(events)
                    return len(events)

                count, seconds = _drain(step, expected, settings.stall_timeout)
                return _outbox_rate(ctx, read, run, count=count, seconds=seconds, expected=expected)

            def esrc_relay(run: int) -> float:
                publisher = open_publisher("memory://")
                delivered = 0

                def consume(_: RelayEvent) -> None:
                    nonlocal delivered
                    delivered += 1

                subscribed = isinstance(publisher, _Subscribable)
                if isinstance(publisher, _Subscribable):
                    publisher.subscribe(consume)
                try:
                    runner = Relay(
                        outboxes.outbox(f"bench-relay-{token}-{run}"), publisher, batch_size=batch
                    )
                    count, seconds = _drain(runner.run_once, expected, settings.stall_timeout)
                finally:
                    publisher.close()
                if subscribed and delivered != count:
                    raise AssertionError(
                        f"relay {run + 1}: the subscriber got {delivered:,} events, "
                        f"the relay published {count:,}"
                    )
                return _outbox_rate(
                    ctx, relay, run, count=count, seconds=seconds, expected=expected
                )

            _measure(ctx, read, esrc_read, _raw_paging(ctx, expected))
            _measure(ctx, relay, esrc_relay, _raw_paging(ctx, expected))
        finally:
            store.close()

    return _guard(ctx, figures, body)


def _fill(ctx: Context, store: EventStore, total: int) -> None:
    """Write ``total`` events to both sides, in aggregates of 100 events (untimed)."""
    raw = ctx.backend.raw.connect() if ctx.backend.raw is not None else None
    try:
        written, next_report = 0, total // 4
        ctx.say(f"writing {total:,} events for the outbox figures")
        while written < total:
            count = min(_STREAM, total - written)
            basket_id = uuid.uuid4()
            _write_stream(store, raw, basket_id, raw_history(basket_id, count))
            written += count
            if written >= next_report and written < total:
                ctx.say(f"  {written:,} of {total:,} events written")
                next_report += total // 4
    finally:
        if raw is not None:
            raw.close()
