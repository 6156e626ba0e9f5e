"""The async API's figures, each against the raw asyncio driver measured in the same
run: ``python -m bench.async_figures`` (or ``nox -s bench-async``).

esrc is measured where an application stands: :class:`~esrc_core.AsyncRepository` on
``open_async_event_store(url)``. The raw side is the strongest the asyncio driver
allows: one autocommitted INSERT per append (a multi-row INSERT for 10 events), one
SELECT per load, keyset pages for the outbox, on connections of the same driver and
transport; the 64-task figure gives the raw side a pool of as many connections as the
store's engine keeps (its ``pool_size``), shared by the tasks through a queue.

Figures, per backend (a SQLite file, PostgreSQL over TCP and over its unix socket,
MariaDB):

- ``append1_task1``: 1-event appends to new aggregates, one task;
- ``append1_tasks64``: the same from 64 concurrent tasks, beside the sync store's
  8-thread rate (sync :class:`~esrc_core.Repository`, same run);
- ``append10``: 10-event appends to existing aggregates, one task;
- ``load1000``: loading a 1,000-event aggregate (raw: SELECT and ``json.loads`` per
  event);
- ``outbox``: reading 10,000 events through the outbox and marking them, in batches of
  500 (raw: keyset pages of 500, read only).

Targets (PostgreSQL): appends at 1 and 64 tasks at least 70% of the raw rate, the
64-task rate at least the sync 8-thread rate, loads at most 2x the raw time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from esrc_core.async_store import sync_face

from bench.backends import SQLITE_PRAGMAS, default_url
from bench.model import AGGREGATE_TYPE, Basket, basket_history, default_metadata, registry
from bench.raw import open_raw_database
from esrc_core import (
    AsyncEventStore,
    AsyncRepository,
    HasOutbox,
    Repository,
    open_async_event_store,
    open_event_store,
)

__all__ = ["AsyncSettings", "Result", "main", "measure_backend"]

_COLUMNS = "aggregate_type, aggregate_id, version, name, data, metadata"
BACKENDS = ("sqlite", "postgresql", "postgresql-unix", "mysql")
KINDS = {"postgresql-unix": "postgresql"}


@dataclass(frozen=True)
class AsyncSettings:
    """How much work each figure does."""

    appends: int = 300
    tasks: int = 64
    per_task: int = 8
    threads: int = 8
    batches: int = 100
    load_events: int = 1000
    loads: int = 20
    outbox_events: int = 10_000
    outbox_batch: int = 500
    repeat: int = 3


@dataclass
class Result:
    """One figure: esrc's and the raw side's medians (a rate in events or operations per
    second, or seconds per load), and what the target asks."""

    backend: str
    key: str
    unit: str
    esrc: float
    raw: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """esrc against raw: a share of the raw rate, or a multiple of the raw time."""
        return self.esrc / self.raw if self.raw else float("nan")


class _RawAsync:
    """The raw asyncio driver on the raw tables ``<prefix>events``."""

    def __init__(self, kind: str, url: str, prefix: str) -> None:
        self.kind = kind
        self.url = sa.make_url(url)
        self.events = f"{prefix}events"
        mark = "?" if kind == "sqlite" else "%s"
        self.mark = mark
        self._load = (
            f"SELECT version, name, data, metadata FROM {self.events} "
            f"WHERE aggregate_type = {mark} AND aggregate_id = {mark} ORDER BY version"
        )
        self._page = (
            f"SELECT position, {_COLUMNS} FROM {self.events} "
            f"WHERE position > {mark} ORDER BY position LIMIT {mark}"
        )

    async def connect(self) -> Any:
        if self.kind == "postgresql":
            import psycopg

            conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
            return await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        if self.kind == "sqlite":
            import aiosqlite

            conn = await aiosqlite.connect(str(self.url.database), isolation_level=None)
            for pragma in SQLITE_PRAGMAS:
                await conn.execute(pragma)
            return conn
        import aiomysql  # type: ignore[import-untyped]

        return await aiomysql.connect(
            host=self.url.host or "127.0.0.1",
            port=self.url.port or 3306,
            user=self.url.username or "root",
            password=self.url.password or "",
            db=self.url.database,
            autocommit=True,
        )

    def insert_sql(self, rows: int) -> str:
        group = "(" + ", ".join([self.mark] * 6) + ")"
        return f"INSERT INTO {self.events} ({_COLUMNS}) VALUES " + ", ".join([group] * rows)

    async def execute(self, conn: Any, sql: str, params: Sequence[Any]) -> list[Any]:
        if self.kind == "sqlite":
            cursor = await conn.execute(sql, params)
            rows = list(await cursor.fetchall())
            await cursor.close()
            return rows
        async with conn.cursor() as cursor:
            await cursor.execute(sql, params)
            if cursor.description is None:
                return []
            return list(await cursor.fetchall())

    async def close(self, conn: Any) -> None:
        result = conn.close()
        if asyncio.iscoroutine(result):
            await result


def _rows(basket_id: uuid.UUID, events: Sequence[object], first: int) -> list[Any]:
    meta = json.dumps(default_metadata())
    rows: list[Any] = []
    for offset, event in enumerate(events):
        raw = registry.to_raw(event, {})
        rows.extend((AGGREGATE_TYPE, str(basket_id), first + offset, raw.name, raw.data, meta))
    return rows


async def _timed(work: Callable[[], Awaitable[int]]) -> float:
    """Run ``work`` (returning how many operations it did); operations per second."""
    started = time.perf_counter()
    done = await work()
    return done / (time.perf_counter() - started)


def _median(values: list[float]) -> float:
    return statistics.median(values)


async def _append1(repo: AsyncRepository[Basket], count: int) -> int:
    for _ in range(count):
        await repo.add(Basket(uuid.uuid4(), "c"))
    return count


async def _raw_append1(raw: _RawAsync, conn: Any, count: int) -> int:
    sql = raw.insert_sql(1)
    for _ in range(count):
        basket_id = uuid.uuid4()
        await raw.execute(conn, sql, _rows(basket_id, basket_history(basket_id, 1), 1))
    return count


async def _concurrently(tasks: int, per_task: int, one: Callable[[], Awaitable[None]]) -> int:
    async def worker() -> None:
        for _ in range(per_task):
            await one()

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return tasks * per_task


async def measure_backend(name: str, url: str, settings: AsyncSettings) -> list[Result]:
    """Every figure on one backend; tables are dropped at the end."""
    kind = KINDS.get(name, name)
    prefix = f"ab{secrets.token_hex(3)}_"
    raw_db = open_raw_database(kind, url, prefix=f"{prefix}raw_", sqlite_pragmas=SQLITE_PRAGMAS)
    raw_db.create_tables()
    raw = _RawAsync(kind, url, f"{prefix}raw_")
    store = await open_async_event_store(url, table_prefix=f"{prefix}esrc_")
    sync_store = open_event_store(url, table_prefix=f"{prefix}esrc_")
    results: list[Result] = []
    try:
        repo = AsyncRepository(store, Basket, registry, snapshot_every=0)
        await repo.add(Basket(uuid.uuid4(), "warm-up"))
        pool_size = _pool_size(store)
        conns = [await raw.connect() for _ in range(pool_size)]
        try:
            results += await _appends(name, settings, repo, raw, conns=conns, sync_store=sync_store)
            results.append(await _append10(name, settings, repo, raw, conns[0]))
            results.append(await _load(name, settings, repo, raw, conns[0]))
            results.append(await _outbox(name, settings, store, raw, conns[0]))
        finally:
            for conn in conns:
                await raw.close(conn)
    finally:
        sync_store.close()
        await store.close()
        raw_db.drop_tables([prefix])
    return results


def _pool_size(store: AsyncEventStore) -> int:
    engine: Any = getattr(sync_face(store)[0], "engine", None)
    size = engine.pool.size() if engine is not None else 5
    return max(1, int(size))


async def _appends(
    name: str,
    settings: AsyncSettings,
    repo: AsyncRepository[Basket],
    raw: _RawAsync,
    *,
    conns: list[Any],
    sync_store: Any,
) -> list[Result]:
    one_esrc: list[float] = []
    one_raw: list[float] = []
    many_esrc: list[float] = []
    many_raw: list[float] = []
    sync_rates: list[float] = []
    free: asyncio.Queue[Any] = asyncio.Queue()
    for conn in conns:
        free.put_nowait(conn)
    sql = raw.insert_sql(1)

    async def raw_one() -> None:
        conn = await free.get()
        try:
            basket_id = uuid.uuid4()
            await raw.execute(conn, sql, _rows(basket_id, basket_history(basket_id, 1), 1))
        finally:
            free.put_nowait(conn)

    async def esrc_one() -> None:
        await repo.add(Basket(uuid.uuid4(), "c"))

    for run in range(settings.repeat):
        sides = [("esrc", 0), ("raw", 1)]
        if run % 2:
            sides.reverse()
        for side, _ in sides:
            if side == "esrc":
                one_esrc.append(await _timed(lambda: _append1(repo, settings.appends)))
                many_esrc.append(
                    await _timed(lambda: _concurrently(settings.tasks, settings.per_task, esrc_one))
                )
            else:
                one_raw.append(await _timed(lambda: _raw_append1(raw, conns[0], settings.appends)))
                many_raw.append(
                    await _timed(lambda: _concurrently(settings.tasks, settings.per_task, raw_one))
                )
        sync_rates.append(await asyncio.to_thread(_sync_threads, sync_store, settings))
    return [
        Result(name, "append1_task1", "appends/s", _median(one_esrc), _median(one_raw)),
        Result(
            name,
            "append1_tasks64",
            "appends/s",
            _median(many_esrc),
            _median(many_raw),
            {"sync_threads8": _median(sync_rates)},
        ),
    ]


def _sync_threads(store: Any, settings: AsyncSettings) -> float:
    """The sync Repository's rate of 1-event appends from ``settings.threads`` threads."""
    repo = Repository(store, Basket, registry, snapshot_every=0)
    per_thread = settings.tasks * settings.per_task // settings.threads

    def work(_: int) -> None:
        for _ in range(per_thread):
            repo.add(Basket(uuid.uuid4(), "c"))

    started = time.perf_counter()
    with ThreadPoolExecutor(settings.threads) as pool:
        list(pool.map(work, range(settings.threads)))
    return per_thread * settings.threads / (time.perf_counter() - started)


async def _append10(
    name: str,
    settings: AsyncSettings,
    repo: AsyncRepository[Basket],
    raw: _RawAsync,
    conn: Any,
) -> Result:
    sql = raw.insert_sql(10)
    esrc_rates: list[float] = []
    raw_rates: list[float] = []
    for run in range(settings.repeat):
        baskets = []
        for _ in range(settings.batches):
            basket = Basket(uuid.uuid4(), "c")
            await repo.add(basket)
            baskets.append(basket)
        raw_ids = [uuid.uuid4() for _ in range(settings.batches)]
        for basket_id in raw_ids:
            await raw.execute(
                conn, raw.insert_sql(1), _rows(basket_id, basket_history(basket_id, 1), 1)
            )

        async def esrc_side(baskets: list[Basket]) -> int:
            for basket in baskets:
                for event in basket_history(basket.id, 10, first=2):
                    basket.raise_event(event)
                await repo.update(basket)
            return len(baskets)

        async def raw_side(raw_ids: list[uuid.UUID]) -> int:
            for basket_id in raw_ids:
                history = basket_history(basket_id, 10, first=2)
                await raw.execute(conn, sql, _rows(basket_id, history, 2))
            return len(raw_ids)

        sides: list[tuple[list[float], Callable[[], Awaitable[int]]]] = [
            (esrc_rates, functools.partial(esrc_side, baskets)),
            (raw_rates, functools.partial(raw_side, raw_ids)),
        ]
        for rates, side in sides if run % 2 == 0 else sides[::-1]:
            rates.append(await _timed(side))
    return Result(name, "append10", "appends/s", _median(esrc_rates), _median(raw_rates))


async def _load(
    name: str,
    settings: AsyncSettings,
    repo: AsyncRepository[Basket],
    raw: _RawAsync,
    conn: Any,
) -> Result:
    size = settings.load_events
    basket = Basket(uuid.uuid4(), "c")
    await repo.add(basket)
    for first in range(2, size + 1, 100):
        for event in basket_history(basket.id, min(100, size + 1 - first), first=first):
            basket.raise_event(event)
        await repo.update(basket)
    raw_id = uuid.uuid4()
    for first in range(1, size + 1, 100):
        count = min(100, size + 1 - first)
        await raw.execute(
            conn,
            raw.insert_sql(count),
            _rows(raw_id, basket_history(raw_id, count, first=first), first),
        )

    async def esrc_side() -> int:
        for _ in range(settings.loads):
            loaded = await repo.find_by_id(basket.id)
            assert loaded.version == size
        return settings.loads

    async def raw_side() -> int:
        for _ in range(settings.loads):
            rows = await raw.execute(conn, raw._load, (AGGREGATE_TYPE, str(raw_id)))
            decoded = [json.loads(row[2]) for row in rows]
            assert len(decoded) == size
        return settings.loads

    esrc_times: list[float] = []
    raw_times: list[float] = []
    for run in range(settings.repeat):
        order = [esrc_side, raw_side] if run % 2 == 0 else [raw_side, esrc_side]
        for side in order:
            rate = await _timed(side)
            (esrc_times if side is esrc_side else raw_times).append(1.0 / rate)
    return Result(name, "load1000", "s/load", _median(esrc_times), _median(raw_times))


async def _outbox(
    name: str, settings: AsyncSettings, store: AsyncEventStore, raw: _RawAsync, conn: Any
) -> Result:
    total, batch = settings.outbox_events, settings.outbox_batch
    sync_store, bridge = sync_face(store)
    has_outbox: Any = sync_store
    assert isinstance(has_outbox, HasOutbox)
    before = await bridge.run(lambda: len(has_outbox.outbox("count").unpublished_events(10**7)))
    for _ in range(0, total, 500):
        raws = [registry.to_raw(e, default_metadata()) for e in basket_history(uuid.uuid4(), 500)]
        await store.add_aggregate(AGGREGATE_TYPE, uuid.uuid4(), raws)
    expected = before + total
    max_position = (await raw.execute(conn, f"SELECT count(*) FROM {raw.events}", ()))[0][0]
    raw_total = int(max_position)

    def read_and_mark(relay: str) -> int:
        outbox = has_outbox.outbox(relay)
        done = 0
        while True:
            events = outbox.unpublished_events(batch)
            if not events:
                return done
            outbox.mark_events_as_published(events)
            done += len(events)

    async def raw_pages() -> int:
        after, done = 0, 0
        while True:
            rows = await raw.execute(conn, raw._page, (after, batch))
            if not rows:
                return done
            after = rows[-1][0]
            done += len(rows)

    esrc_rates: list[float] = []
    raw_rates: list[float] = []
    for run in range(settings.repeat):
        relay = f"bench-{run}"

        async def esrc_side(relay: str = relay) -> int:
            done: int = await bridge.run(read_and_mark, relay)
            assert done == expected, (done, expected)
            return done

        order = [esrc_side, raw_pages] if run % 2 == 0 else [raw_pages, esrc_side]
        for side in order:
            rate = await _timed(side)
            (esrc_rates if side is esrc_side else raw_rates).append(rate)
    del raw_total
    return Result(name, "outbox", "events/s", _median(esrc_rates), _median(raw_rates))


_TARGETS = {
    "append1_task1": ">= 0.70",
    "append1_tasks64": ">= 0.70",
    "load1000": "<= 2.0",
}


def _shown(value: float, unit: str) -> str:
    return f"{value * 1000:.2f} ms" if unit == "s/load" else f"{value:,.0f}"


def report(results: Sequence[Result]) -> list[str]:
    """The results as a table: esrc, raw, the ratio and the target (PostgreSQL)."""
    header = f"{'backend':<16} {'figure':<16} {'esrc':>12} {'raw':>12} {'ratio':>7}"
    lines = [header + "  target (PostgreSQL)"]
    for r in results:
        target = _TARGETS.get(r.key, "")
        esrc, raw = _shown(r.esrc, r.unit), _shown(r.raw, r.unit)
        line = f"{r.backend:<16} {r.key:<16} {esrc:>12} {raw:>12} {r.ratio:>7.2f}  {target}"
        if "sync_threads8" in r.extra:
            sync = r.extra["sync_threads8"]
            line += (
                f"; sync 8 threads {sync:,.0f}/s (64 tasks / 8 threads {r.esrc / sync:.2f}, >= 1)"
            )
        lines.append(line)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the chosen backends and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.async_figures", description=__doc__)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the tests' run)")
    args = parser.parse_args(argv)
    settings = AsyncSettings(repeat=args.repeat)
    if args.quick:
        settings = AsyncSettings(
            appends=5,
            tasks=4,
            per_task=2,
            threads=2,
            batches=3,
            load_events=30,
            loads=2,
            outbox_events=1000,
            outbox_batch=100,
            repeat=1,
        )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="esrc-async-bench-") as temp:
        for name in args.backends.split(","):
            url = default_url(name) or f"sqlite:///{Path(temp) / 'bench.db'}"
            results += asyncio.run(measure_backend(name, url, settings))
    for line in report(results):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
