"""Which asyncio driver for PostgreSQL: asyncpg against async psycopg, raw, on the same
statement (``python -m bench.pg_async_drivers``; asyncpg is not a dependency of esrc:
``uv run --with asyncpg python -m bench.pg_async_drivers``).

Each driver inserts 1-event rows shaped like esrc's events (uuid, version, name,
bytes, metadata text) into a table of its own run, autocommitted, one statement per
insert, its strongest way: asyncpg's prepared ``execute``, psycopg's ``execute`` with
``prepare=True``. One task on one connection, then 64 tasks sharing 16 connections
through a queue. The median of ``--repeat`` runs, drivers alternating.

The async SQL store runs on async psycopg; this measures what asyncpg would change at
the driver, before any of esrc's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench.backends import default_url

__all__ = ["main"]

_ROW = (b'{"amount": 1}', json.dumps({"trace": "t-1"}))


async def _rate(
    connect: Callable[[], Awaitable[Any]],
    insert: Callable[[Any, uuid.UUID], Awaitable[Any]],
    *,
    tasks: int,
    total: int,
) -> float:
    conns = [await connect() for _ in range(min(tasks, 16))]
    free: asyncio.Queue[Any] = asyncio.Queue()
    for conn in conns:
        free.put_nowait(conn)
    per_task = total // tasks

    async def worker() -> None:
        for _ in range(per_task):
            conn = await free.get()
            try:
                await insert(conn, uuid.uuid4())
            finally:
                free.put_nowait(conn)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    rate = per_task * tasks / (time.perf_counter() - started)
    for conn in conns:
        await conn.close()
    return rate


async def _measure(dsn: str, repeat: int, total: int) -> dict[tuple[str, int], float]:
    import psycopg

    asyncpg: Any = importlib.import_module("asyncpg")
    table = f"drivers_{secrets.token_hex(3)}"
    setup = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await setup.execute(
        f"CREATE TABLE {table} (id uuid, version int, name text, data bytea, meta text, "
        "PRIMARY KEY (id, version))"
    )
    apg_sql = f"INSERT INTO {table} VALUES ($1, 1, 'Opened', $2, $3)"
    pg_sql = f"INSERT INTO {table} VALUES (%s, 1, 'Opened', %s, %s)"

    async def apg_connect() -> Any:
        return await asyncpg.connect(dsn)

    async def apg_insert(conn: Any, row_id: uuid.UUID) -> Any:
        return await conn.execute(apg_sql, row_id, *_ROW)

    async def pg_connect() -> Any:
        return await psycopg.AsyncConnection.connect(dsn, autocommit=True)

    async def pg_insert(conn: Any, row_id: uuid.UUID) -> Any:
        return await conn.execute(pg_sql, (row_id, *_ROW), prepare=True)

    sides = {"asyncpg": (apg_connect, apg_insert), "psycopg": (pg_connect, pg_insert)}
    runs: dict[tuple[str, int], list[float]] = {}
    try:
        for run in range(repeat):
            order = sorted(sides, reverse=bool(run % 2))
            for tasks in (1, 64):
                for name in order:
                    connect, insert = sides[name]
                    rate = await _rate(connect, insert, tasks=tasks, total=total)
                    runs.setdefault((name, tasks), []).append(rate)
    finally:
        await setup.execute(f"DROP TABLE {table}")
        await setup.close()
    return {key: statistics.median(rates) for key, rates in runs.items()}


def main(argv: list[str] | None = None) -> int:
    """Measure both drivers and print their rates and asyncpg's ratio to psycopg."""
    parser = argparse.ArgumentParser(prog="python -m bench.pg_async_drivers")
    parser.add_argument("--url", default=None, help="a postgresql:// URL")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--inserts", type=int, default=3000)
    args = parser.parse_args(argv)
    try:
        importlib.import_module("asyncpg")
    except ImportError:
        print("asyncpg is not installed: uv run --with asyncpg python -m bench.pg_async_drivers")
        return 2
    url = args.url or default_url("postgresql") or "postgresql://postgres@127.0.0.1:5432/test"
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    rates = asyncio.run(_measure(dsn, args.repeat, args.inserts))
    print(f"{'tasks':>5}  {'asyncpg/s':>10}  {'psycopg/s':>10}  asyncpg/psycopg")
    for tasks in (1, 64):
        apg, pg = rates["asyncpg", tasks], rates["psycopg", tasks]
        print(f"{tasks:>5}  {apg:>10,.0f}  {pg:>10,.0f}  {apg / pg:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
