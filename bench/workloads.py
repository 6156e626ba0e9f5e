"""The measured work: each figure does the same writes or reads through esrc and through
the raw driver, runs both sides ``--repeat`` times (rotating which goes first) and
records every run.

Every append and load figure is measured at two levels: the store (esrc's
:class:`~esrc_core.EventStore` called with prebuilt raw events; the raw side inserts
prebuilt rows) and the :class:`~esrc_core.Repository` (an application's path: build or
change the :class:`~bench.model.Basket`, encode, store; the raw side ``json.dumps`` an
equivalent dict per event and inserts). The raw side appends with one autocommitted
statement; appends also run a second raw side that commits an explicit transaction (the
raw side of earlier versions of the harness).

1. 1-event appends to new aggregates, on 1 thread and on ``--threads`` threads;
2. 10-event appends to existing aggregates, on 1 thread;
3. loading a 10-event and a 1,000-event aggregate, and a 10,000-event one from its
   snapshot at 9,900;
4. reading 100,000 events through the outbox (read and mark, in batches), and relaying
   them end to end to the in-memory publisher.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bench.backends import Backend
from bench.model import (
    AGGREGATE_TYPE,
    Basket,
    BasketOpened,
    ItemAdded,
    basket_history,
    default_metadata,
    raw_history,
    registry,
)
from bench.raw import RawConnection, RawDatabase, Row
from bench.results import Figure, Target
from bench.settings import (
    APPEND_BATCH,
    LARGE_AGGREGATE,
    SMALL_AGGREGATE,
    SNAPSHOT_AT,
    TINY_AGGREGATE,
    Settings,
)
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

__all__ = [
    "TARGETS",
    "Context",
    "append_figures",
    "load_figures",
    "outbox_figures",
    "target_for",
    "write_stream",
]

_PG = "postgresql"
TARGETS: dict[str, dict[str, Target]] = {
    "store_append_1_event_1_thread": {_PG: Target("min_ratio", 0.80)},
    "repository_append_1_event_1_thread": {
        _PG: Target("min_ratio", 0.70),
        "sqlite": Target("min_ratio", 0.80, backend="sqlite"),
        "mysql": Target("min_ratio", 0.60, backend="mysql"),
    },
    "repository_append_1_event_threads": {_PG: Target("min_ratio", 0.60)},
    "repository_append_10_events_1_thread": {_PG: Target("min_ratio", 0.70)},
    "repository_load_10_events": {
        _PG: Target("max_ratio", 1.5),
        "mysql": Target("max_ratio", 1.5, backend="mysql"),
    },
    "repository_load_1000_events": {
        _PG: Target("max_ratio", 1.3),
        "mysql": Target("max_ratio", 1.5, backend="mysql"),
    },
    "outbox_read": {_PG: Target("min_ratio", 0.60)},
    "repository_load_big_stream_memory": {
        kind: Target("max_value", 100.0, backend=kind) for kind in (_PG, "sqlite", "mysql")
    },
}
"""The goals, by figure key (the multi-thread appends by kind, whatever ``--threads``
is) and database kind: both PostgreSQL transports are held to the ``postgresql``
targets. A figure without a target for its backend shows PostgreSQL's in parentheses,
for information."""

_STREAM = 100
"""Events per aggregate in the outbox figures' data."""
_CHUNK = 500
"""Events per write when filling the stores (not timed)."""
_SEPARATORS = (",", ":")


@dataclass
class Context:
    """What every figure needs: the backend, the settings, and where progress goes."""

    backend: Backend
    settings: Settings
    say: Callable[[str], None]


def target_for(ctx: Context, key: str) -> Target | None:
    """The target of figure ``key`` on the context's backend: the one set for its kind
    (as a target of that backend), else PostgreSQL's (shown for information), else
    ``None``."""
    targets = TARGETS.get(key, {})
    own = targets.get(ctx.backend.kind)
    if own is not None:
        return dataclasses.replace(own, backend=ctx.backend.name)
    return targets.get(_PG)


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
            json.dumps(dict(event.metadata), separators=_SEPARATORS),
        )
        for index, event in enumerate(events)
    ]


def _chunks(events: Sequence[RawEvent], size: int) -> Iterator[tuple[int, Sequence[RawEvent]]]:
    for start in range(0, len(events), size):
        yield start, events[start : start + size]


def write_stream(
    store: EventStore,
    raw: RawConnection | None,
    aggregate_id: uuid.UUID,
    events: Sequence[RawEvent],
    *,
    first_version: int = 1,
    chunk: int = _CHUNK,
) -> None:
    """Write one aggregate's ``events`` (versions ``first_version`` on) to the store,
    and to the raw side unless ``raw`` is ``None``, in writes of ``chunk`` events
    (untimed set-up). A stream starts with ``first_version`` 1."""
    for start, part in _chunks(events, chunk):
        version = first_version + start
        if version == 1:
            store.add_aggregate(AGGREGATE_TYPE, aggregate_id, part)
        else:
            store.append_events(AGGREGATE_TYPE, aggregate_id, version - 1, part)
        if raw is not None:
            raw.insert(_raw_rows(aggregate_id, part, version))


Side = Callable[[int], float]
"""One side of a figure: given the run number, do the work once and return its value."""


def _measure(
    ctx: Context,
    figure: Figure,
    esrc: Side,
    raw: Side | None,
    raw_txn: Side | None = None,
) -> None:
    """Run every side ``repeat`` times, rotating which goes first, recording each
    run's value; an exception ends the figure with ``error`` set."""
    backend = ctx.backend
    if backend.raw is None:
        figure.raw_skipped = f"no raw driver to compare with for {backend.label}"
        raw = raw_txn = None
    repeat = ctx.settings.repeat
    all_sides: list[tuple[str, Side | None, list[float]]] = [
        ("esrc", esrc, figure.esrc_runs),
        ("raw", raw, figure.raw_runs),
        ("raw txn", raw_txn, figure.raw_txn_runs),
    ]
    sides = [side for side in all_sides if side[1] is not None]
    try:
        for run in range(repeat):
            first = run % len(sides)
            for side, measure, runs in sides[first:] + sides[:first]:
                assert measure is not None
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


def _new_ids(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


# 1 and 2: appends ------------------------------------------------------------------


@dataclass(frozen=True)
class _Append:
    """One append figure's shape: which level, how many events per append, threads."""

    level: str
    events: int
    threads: int
    notify: bool = False

    @property
    def new_aggregate(self) -> bool:
        return self.events == 1


def _append_figure(ctx: Context, shape: _Append) -> Figure:
    sizes = ctx.settings.sizes
    threads = shape.threads
    if not shape.new_aggregate:
        per_thread = sizes.batch_appends
    elif threads == 1:
        per_thread = sizes.appends_one_thread
    else:
        per_thread = sizes.appends_per_thread
    plural = "thread" if threads == 1 else "threads"
    count = "1_event" if shape.events == 1 else f"{shape.events}_events"
    key = f"{shape.level}_append_{count}_" + ("1_thread" if threads == 1 else f"{threads}_threads")
    target_key = f"{shape.level}_append_{count}_" + ("1_thread" if threads == 1 else "threads")
    what = "new aggregate" if shape.new_aggregate else "existing aggregate"
    return Figure(
        key=key + ("_notify" if shape.notify else ""),
        title=f"{shape.events}-event append, {what}, {threads} {plural}"
        + (", notify=True" if shape.notify else ""),
        unit="events/s",
        higher_is_better=True,
        work={
            "threads": threads,
            "appends": threads * per_thread,
            "events": threads * per_thread * shape.events,
        },
        target=None if shape.notify else target_for(ctx, target_key),
        level=shape.level,
    )


def _opened_dict(event: BasketOpened) -> dict[str, Any]:
    return {"basket_id": str(event.basket_id), "customer": event.customer}


def _item_dict(event: ItemAdded) -> dict[str, Any]:
    return {
        "sku": event.sku,
        "quantity": event.quantity,
        "unit_price_cents": event.unit_price_cents,
        "note": event.note,
    }


_OPENED = registry.name_of(BasketOpened(uuid.UUID(int=0), ""))
_ITEM = registry.name_of(ItemAdded("", 0, 0, ""))


def _store_side(
    store: EventStore, shape: _Append, per_thread: int, warmup: int
) -> Callable[[int], Job]:
    """A thread's esrc work at the store level: prebuilt raw events, one store call
    per append."""

    def prepare(_: int) -> Job:
        data = [
            (i, raw_history(i, 1 + (shape.events if not shape.new_aggregate else 0)))
            for i in _new_ids(warmup + per_thread)
        ]
        if shape.new_aggregate:
            for basket_id, events in data[:warmup]:
                store.add_aggregate(AGGREGATE_TYPE, basket_id, events)
            timed = data[warmup:]

            def work() -> None:
                for basket_id, events in timed:
                    store.add_aggregate(AGGREGATE_TYPE, basket_id, events)

            return work, _nothing
        for basket_id, events in data:
            store.add_aggregate(AGGREGATE_TYPE, basket_id, events[:1])
        for basket_id, events in data[:warmup]:
            store.append_events(AGGREGATE_TYPE, basket_id, 1, events[1:])
        later = [(basket_id, events[1:]) for basket_id, events in data[warmup:]]

        def append() -> None:
            for basket_id, events in later:
                store.append_events(AGGREGATE_TYPE, basket_id, 1, events)

        return append, _nothing

    return prepare


def _repository_side(
    repository: Repository[Basket], shape: _Append, per_thread: int, warmup: int
) -> Callable[[int], Job]:
    """A thread's esrc work at the repository level: build a basket and ``add`` it, or
    raise items on a basket loaded beforehand and ``update`` it."""

    def prepare(_: int) -> Job:
        ids = _new_ids(warmup + per_thread)
        if shape.new_aggregate:
            customers = [f"customer-{i.hex[:12]}" for i in ids]
            for basket_id, customer in zip(ids[:warmup], customers, strict=False):
                repository.add(Basket(basket_id, customer))
            timed = list(zip(ids[warmup:], customers[warmup:], strict=True))

            def work() -> None:
                for basket_id, customer in timed:
                    repository.add(Basket(basket_id, customer))

            return work, _nothing
        baskets = []
        for basket_id in ids:
            basket = Basket(basket_id, f"customer-{basket_id.hex[:12]}")
            repository.add(basket)
            baskets.append(basket)
        items = [basket_history(i, 1 + shape.events)[1:] for i in ids]
        for basket, added in zip(baskets[:warmup], items, strict=False):
            for item in added:
                basket.raise_event(item)
            repository.update(basket)
        later = list(zip(baskets[warmup:], items[warmup:], strict=True))

        def update() -> None:
            for basket, added in later:
                for item in added:
                    basket.raise_event(item)
                repository.update(basket)

        return update, _nothing

    return prepare


def _raw_side(
    database: RawDatabase,
    shape: _Append,
    per_thread: int,
    warmup: int,
    *,
    autocommit: bool,
    metadata: dict[str, str],
) -> Callable[[int], Job]:
    """A thread's raw work: at the store level prebuilt rows, at the repository level
    ``json.dumps`` of an equivalent dict per event (and of the metadata) first; one
    INSERT per append."""
    encode = shape.level == "repository"

    def rows_of(basket_id: uuid.UUID, events: Sequence[object], first: int) -> list[Row]:
        key = encode_id(basket_id)
        meta = json.dumps(metadata, separators=_SEPARATORS)
        rows: list[Row] = []
        for index, event in enumerate(events):
            if isinstance(event, BasketOpened):
                name, body = _OPENED, _opened_dict(event)
            else:
                assert isinstance(event, ItemAdded)
                name, body = _ITEM, _item_dict(event)
            data = json.dumps(body, separators=_SEPARATORS).encode()
            rows.append((AGGREGATE_TYPE, key, first + index, name, data, meta))
        return rows

    def prepare(_: int) -> Job:
        ids = _new_ids(warmup + per_thread)
        first = 1 if shape.new_aggregate else 2
        histories = [
            basket_history(i, 1 + (0 if shape.new_aggregate else shape.events)) for i in ids
        ]
        appended = [h if shape.new_aggregate else h[1:] for h in histories]
        connection = database.connect(autocommit=autocommit)
        try:
            if not shape.new_aggregate:
                for basket_id, history in zip(ids, histories, strict=True):
                    connection.insert(rows_of(basket_id, history[:1], 1))
            for basket_id, events in zip(ids[:warmup], appended, strict=False):
                connection.insert(rows_of(basket_id, events, first))
        except BaseException:
            connection.close()
            raise
        timed = list(zip(ids[warmup:], appended[warmup:], strict=True))
        if encode:

            def work() -> None:
                for basket_id, events in timed:
                    connection.insert(rows_of(basket_id, events, first))

            return work, connection.close
        prebuilt = [rows_of(basket_id, events, first) for basket_id, events in timed]

        def insert() -> None:
            for rows in prebuilt:
                connection.insert(rows)

        return insert, connection.close

    return prepare


def _append(ctx: Context, store: EventStore, shape: _Append, figure: Figure) -> None:
    threads = shape.threads
    per_thread = figure.work["appends"] // threads
    warmup = ctx.settings.sizes.warmup
    metadata = default_metadata()
    repository = Repository(
        store, Basket, registry, aggregate_type=AGGREGATE_TYPE, metadata=metadata
    )

    def timed(prepare: Callable[[int], Job]) -> Side:
        return lambda _: figure.work["events"] / timed_threads(threads, prepare)

    if shape.level == "repository":
        esrc = timed(_repository_side(repository, shape, per_thread, warmup))
    else:
        esrc = timed(_store_side(store, shape, per_thread, warmup))
    database = ctx.backend.raw
    raw = raw_txn = None
    if database is not None:
        raw = timed(
            _raw_side(database, shape, per_thread, warmup, autocommit=True, metadata=metadata)
        )
        raw_txn = timed(
            _raw_side(database, shape, per_thread, warmup, autocommit=False, metadata=metadata)
        )
    _measure(ctx, figure, esrc, raw, raw_txn)


_PRIME = 500
"""Untimed 1-event appends on each side before the first append figure."""


def _prime(ctx: Context, store: EventStore) -> None:
    """Write a first batch of aggregates on both sides, untimed, then gather the
    tables' statistics: the figures then do not depend on which one runs first on the
    fresh tables."""
    count = _PRIME if not ctx.settings.quick else 50
    raw = ctx.backend.raw.connect() if ctx.backend.raw is not None else None
    try:
        for basket_id in _new_ids(count):
            write_stream(store, raw, basket_id, raw_history(basket_id, 1))
    finally:
        if raw is not None:
            raw.close()
    ctx.backend.settle()


def append_figures(ctx: Context) -> list[Figure]:
    """Figures 1 and 2, at the store and at the repository level: 1-event appends to
    new aggregates on 1 and on ``--threads`` threads, and 10-event appends to existing
    aggregates. Where the store supports ``notify=True`` (PostgreSQL) also the store's
    ``--threads`` figure with it: LISTEN/NOTIFY must not serialize appends."""
    threads = ctx.settings.threads
    shapes = []
    for level in ("store", "repository"):
        shapes.extend(
            [_Append(level, 1, 1), _Append(level, 1, threads), _Append(level, APPEND_BATCH, 1)]
        )
        if level == "store" and ctx.backend.supports_notify:
            shapes.append(_Append(level, 1, threads, notify=True))
    planned = [(shape, _append_figure(ctx, shape)) for shape in shapes]

    def body() -> None:
        ctx.backend.reset()
        store = ctx.backend.open_store()
        try:
            _prime(ctx, store)
            for shape, figure in planned:
                if shape.notify:
                    with contextlib.closing(ctx.backend.open_store(notify=True)) as notifier:
                        _append(ctx, notifier, shape, figure)
                else:
                    _append(ctx, store, shape, figure)
        finally:
            store.close()

    return _guard(ctx, [figure for _, figure in planned], body)


# 3: loads --------------------------------------------------------------------------


def _load_figure(ctx: Context, level: str, loads: int, size: int, snapshot: int | None) -> Figure:
    key = f"{level}_load_{size}_events" + ("_snapshot" if snapshot else "")
    title = f"load {size:,} events, " + (f"snapshot at {snapshot:,}" if snapshot else "no snapshot")
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
        target=target_for(ctx, key),
        level=level,
    )


def _load(
    ctx: Context,
    store: EventStore,
    repository: Repository[Basket],
    aggregate_id: uuid.UUID,
    figure: Figure,
) -> None:
    loads, size = figure.work["loads"], figure.work["events"]
    snapshot, replayed = figure.work["snapshot_version"], figure.work["events_replayed"]
    encoded = encode_id(aggregate_id)
    at_repository = figure.level == "repository"

    def store_load() -> int:
        after = 0
        if snapshot:
            latest = store.latest_snapshot(AGGREGATE_TYPE, aggregate_id)
            after = latest.version if latest is not None else 0
        return len(store.events(AGGREGATE_TYPE, aggregate_id, after))

    def esrc(_: int) -> float:
        if at_repository:
            basket = repository.find_by_id(aggregate_id)
            if basket.version != size or basket.items != size - 1:
                raise AssertionError(
                    f"load {AGGREGATE_TYPE} {aggregate_id}: got version {basket.version} "
                    f"with {basket.items} items, want version {size} with {size - 1}"
                )
            began = time.perf_counter()
            for _ in range(loads):
                repository.find_by_id(aggregate_id)
        else:
            if (got := store_load()) != replayed:
                raise AssertionError(
                    f"store load {AGGREGATE_TYPE} {aggregate_id}: got {got} events, want {replayed}"
                )
            began = time.perf_counter()
            for _ in range(loads):
                store_load()
        return (time.perf_counter() - began) / loads * 1000

    def raw(_: int) -> float:
        database = ctx.backend.raw
        assert database is not None
        connection = database.connect()
        options = {"snapshot": bool(snapshot), "decode": at_repository}
        try:
            state, payloads = connection.load(AGGREGATE_TYPE, encoded, **options)
            if len(payloads) != replayed or (state is None) != (snapshot == 0):
                raise AssertionError(
                    f"raw load {encoded}: got {len(payloads)} events and snapshot "
                    f"{state is not None}, want {replayed} and {snapshot != 0}"
                )
            began = time.perf_counter()
            for _ in range(loads):
                connection.load(AGGREGATE_TYPE, encoded, **options)
            return (time.perf_counter() - began) / loads * 1000
        finally:
            connection.close()

    _measure(ctx, figure, esrc, raw)


def load_figures(ctx: Context) -> list[Figure]:
    """Figure 3, at the store and at the repository level: loading a 10-event and a
    1,000-event aggregate, and a 10,000-event one from its snapshot at 9,900.

    The store level reads ``events()`` (after ``latest_snapshot()`` for the snapshotted
    one); the repository level calls ``find_by_id`` on a repository with the default
    snapshot policy. The raw side reads the same rows, in one SELECT when there is no
    snapshot, and ``json.loads`` each payload (and the snapshot) at the repository
    level only."""
    sizes = ctx.settings.sizes
    shapes = [
        (sizes.tiny_loads, TINY_AGGREGATE, None),
        (sizes.small_loads, SMALL_AGGREGATE, None),
        (sizes.large_loads, LARGE_AGGREGATE, SNAPSHOT_AT),
    ]
    figures = [
        [_load_figure(ctx, level, loads, size, snapshot) for level in ("store", "repository")]
        for loads, size, snapshot in shapes
    ]

    def body() -> None:
        ctx.backend.reset()
        store = ctx.backend.open_store()
        try:
            tiny, small, large = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            ctx.say(
                f"writing aggregates of {TINY_AGGREGATE:,}, {SMALL_AGGREGATE:,} and "
                f"{LARGE_AGGREGATE:,} events"
            )
            state = Basket.from_events(large, basket_history(large, SNAPSHOT_AT)).snapshot()
            raw = ctx.backend.raw.connect() if ctx.backend.raw is not None else None
            try:
                write_stream(store, raw, tiny, raw_history(tiny, TINY_AGGREGATE))
                write_stream(store, raw, small, raw_history(small, SMALL_AGGREGATE))
                write_stream(store, raw, large, raw_history(large, LARGE_AGGREGATE))
                if raw is not None:
                    raw.insert_snapshot(AGGREGATE_TYPE, encode_id(large), SNAPSHOT_AT, state)
            finally:
                if raw is not None:
                    raw.close()
            store.add_snapshot(AGGREGATE_TYPE, large, RawSnapshot(SNAPSHOT_AT, state))
            ctx.backend.settle()
            repository = Repository(store, Basket, registry, aggregate_type=AGGREGATE_TYPE)
            for aggregate_id, pair in zip((tiny, small, large), figures, strict=True):
                for figure in pair:
                    _load(ctx, store, repository, aggregate_id, figure)
        finally:
            store.close()

    return _guard(ctx, [figure for pair in figures for figure in pair], body)


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


def _rate_figure(key: str, title: str, work: dict[str, Any], target: Target | None) -> Figure:
    """A figure in events per second (higher is better)."""
    return Figure(
        key=key, title=title, unit="events/s", higher_is_better=True, work=work, target=target
    )


def _read_and_mark(
    ctx: Context, outboxes: HasOutbox, figure: Figure, token: str, **options: bool
) -> Callable[[int], float]:
    """The esrc side of an outbox figure: drain a fresh outbox (made with ``options``)
    batch by batch, reading then marking each."""
    settings = ctx.settings
    expected, batch = settings.sizes.outbox_events, settings.batch_size

    def esrc_read(run: int) -> float:
        outbox = outboxes.outbox(f"bench-{figure.key}-{token}-{run}", **options)

        def step() -> int:
            events = outbox.unpublished_events(batch)
            outbox.mark_events_as_published(events)
            return len(events)

        count, seconds = _drain(step, expected, settings.stall_timeout)
        return _outbox_rate(ctx, figure, run, count=count, seconds=seconds, expected=expected)

    return esrc_read


def outbox_figures(ctx: Context) -> list[Figure]:
    """Figure 4: reading ``outbox_events`` events through a fresh outbox (read, then mark,
    batch by batch), and relaying them to the in-memory publisher; the raw side pages
    through the same rows with ``SELECT ... WHERE position > ? ORDER BY position``."""
    settings = ctx.settings
    expected, batch = settings.sizes.outbox_events, settings.batch_size
    work = {"events": expected, "batch_size": batch}
    target = target_for(ctx, "outbox_read")
    read = _rate_figure("outbox_read", f"outbox read + mark, {expected:,} events", work, target)
    lazy = _rate_figure(
        "outbox_read_lazy_checkpoint",
        f"outbox read + mark, non-durable checkpoint, {expected:,} events",
        work,
        target,
    )
    relay = _rate_figure(
        "relay_to_memory", f"relay to memory:// publisher, {expected:,} events", work, None
    )
    figures = [read, lazy, relay]
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
            ctx.backend.settle()

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

            _measure(
                ctx, read, _read_and_mark(ctx, outboxes, read, token), _raw_paging(ctx, expected)
            )
            if "durable_checkpoint" in inspect.signature(outboxes.outbox).parameters:
                _measure(
                    ctx,
                    lazy,
                    _read_and_mark(ctx, outboxes, lazy, token, durable_checkpoint=False),
                    _raw_paging(ctx, expected),
                )
            else:
                figures.remove(lazy)
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
            write_stream(store, raw, basket_id, raw_history(basket_id, count))
            written += count
            if written >= next_report and written < total:
                ctx.say(f"  {written:,} of {total:,} events written")
                next_report += total // 4
    finally:
        if raw is not None:
            raw.close()
