"""Which asyncio driver: asyncpg against async psycopg on PostgreSQL, asyncmy against
aiomysql on MariaDB, raw, on the same statement (``python -m bench.async_drivers``).
asyncpg and asyncmy are not dependencies of esrc: ``uv run --with asyncpg --with
asyncmy python -m bench.async_drivers``.

Each driver inserts 1-event rows shaped like esrc's events (id, version, name, bytes,
metadata text) into a table of its own run, autocommitted, one statement per insert,
its strongest way (asyncpg's prepared ``execute``, psycopg's ``execute`` with
``prepare=True``, a kept cursor for the MySQL drivers). One task on one connection,
then 64 tasks sharing 16 connections through a queue. The median of ``--repeat``
runs, drivers alternating.

The async SQL store runs on async psycopg and aiomysql; this measures what the other
driver would change at the driver, before any of esrc's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.engine import make_url

from bench.backends import default_url

__all__ = ["main"]

_DATA = b'{"amount": 1}'
_META = json.dumps({"trace": "t-1"})
_DDL = (
    "CREATE TABLE {table} (id CHAR(36), version INT, name VARCHAR(100), data {blob}, "
    "meta TEXT, PRIMARY KEY (id, version))"
)

Connect = Callable[[], Awaitable[Any]]
Insert = Callable[[Any, str], Awaitable[Any]]
Side = tuple[Connect, Insert, Callable[[Any], Awaitable[None]]]


async def _rate(side: Side, *, tasks: int, total: int) -> float:
    connect, insert, close = side
    conns = [await connect() for _ in range(min(tasks, 16))]
    free: asyncio.Queue[Any] = asyncio.Queue()
    for conn in conns:
        free.put_nowait(conn)
    per_task = total // tasks

    async def worker() -> None:
        for _ in range(per_task):
            conn = await free.get()
            try:
                await insert(conn, str(uuid.uuid4()))
            finally:
                free.put_nowait(conn)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    rate = per_task * tasks / (time.perf_counter() - started)
    for conn in conns:
        await close(conn)
    return rate


async def _closed(conn: Any) -> None:
    await conn.close()


def _postgresql(url: str, table: str) -> dict[str, Side]:
    import psycopg

    asyncpg: Any = importlib.import_module("asyncpg")
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    apg_sql = f"INSERT INTO {table} VALUES ($1, 1, 'Opened', $2, $3)"
    pg_sql = f"INSERT INTO {table} VALUES (%s, 1, 'Opened', %s, %s)"

    async def apg_connect() -> Any:
        return await asyncpg.connect(dsn)

    async def apg_insert(conn: Any, row_id: str) -> Any:
        return await conn.execute(apg_sql, row_id, _DATA, _META)

    async def pg_connect() -> Any:
        return await psycopg.AsyncConnection.connect(dsn, autocommit=True)

    async def pg_insert(conn: Any, row_id: str) -> Any:
        return await conn.execute(pg_sql, (row_id, _DATA, _META), prepare=True)

    return {
        "asyncpg": (apg_connect, apg_insert, _closed),
        "psycopg": (pg_connect, pg_insert, _closed),
    }


def _mysql(url: str, table: str) -> dict[str, Side]:
    parsed = make_url(url)
    options = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 3306,
        "user": parsed.username or "root",
        "password": parsed.password or "",
        "db": parsed.database,
        "autocommit": True,
    }
    sql = f"INSERT INTO {table} VALUES (%s, 1, 'Opened', %s, %s)"

    def side(module_name: str) -> Side:
        module: Any = importlib.import_module(module_name)

        async def connect() -> Any:
            conn = await module.connect(**options)
            cursor = conn.cursor()
            if inspect.isawaitable(cursor):  # aiomysql
                cursor = await cursor
            return conn, cursor

        async def insert(pair: Any, row_id: str) -> Any:
            return await pair[1].execute(sql, (row_id, _DATA, _META))

        async def close(pair: Any) -> None:
            conn, cursor = pair
            await cursor.close()
            await conn.ensure_closed()

        return connect, insert, close

    return {"asyncmy": side("asyncmy"), "aiomysql": side("aiomysql")}


_DATABASES: dict[str, tuple[Callable[[str, str], dict[str, Side]], str]] = {
    "postgresql": (_postgresql, "BYTEA"),
    "mysql": (_mysql, "BLOB"),
}


async def _execute(url: str, sql: str) -> None:
    from esrc_sqlalchemy.engines import normalize_url
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(normalize_url(url, asyncio=True))
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


async def _measure(
    database: str, url: str, repeat: int, total: int
) -> dict[tuple[str, int], float]:
    build, blob = _DATABASES[database]
    table = f"drivers_{secrets.token_hex(3)}"
    await _execute(url, _DDL.format(table=table, blob=blob))
    sides = build(url, table)
    runs: dict[tuple[str, int], list[float]] = {}
    try:
        for run in range(repeat):
            order = sorted(sides, reverse=bool(run % 2))
            for tasks in (1, 64):
                for name in order:
                    rate = await _rate(sides[name], tasks=tasks, total=total)
                    runs.setdefault((name, tasks), []).append(rate)
    finally:
        await _execute(url, f"DROP TABLE {table}")
    return {key: statistics.median(rates) for key, rates in runs.items()}


def main(argv: list[str] | None = None) -> int:
    """Measure both drivers of each database and print their rates and ratio."""
    parser = argparse.ArgumentParser(prog="python -m bench.async_drivers")
    parser.add_argument("--databases", default="postgresql,mysql")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--inserts", type=int, default=3000)
    args = parser.parse_args(argv)
    missing = []
    for module in ("asyncpg", "asyncmy"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        print(
            f"not installed: {', '.join(missing)}; run with: uv run --with asyncpg "
            "--with asyncmy python -m bench.async_drivers"
        )
        return 2
    driver = f"{'driver':<9} {'inserts/s':>10}"
    print(f"{'database':<11} {'tasks':>5}  {driver}  {driver}  ratio")
    for database in args.databases.split(","):
        url = default_url(database)
        if url is None:
            print(f"{database}: no URL (ESRC_TEST_{database.upper()}_URL)")
            continue
        rates = asyncio.run(_measure(database, url, args.repeat, args.inserts))
        first, second = sorted({name for name, _ in rates})
        for tasks in (1, 64):
            a, b = rates[first, tasks], rates[second, tasks]
            sides = f"{first:<9} {a:>10,.0f}  {second:<9} {b:>10,.0f}"
            print(f"{database:<11} {tasks:>5}  {sides}  {a / b:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
