"""``python -m bench.outbox_cost``: the SQL outbox's read + mark beside a raw keyset read.

Fills a fresh set of tables with ``--events`` events (100 per stream, a metadata entry
each), then in interleaved rounds:

- **esrc**: a fresh outbox name reads and marks every event, ``--batch`` at a time
  (``unpublished_events`` then ``mark_events_as_published``), with a durable checkpoint
  and, on PostgreSQL, also with ``durable_checkpoint=False``;
- **raw** (PostgreSQL): psycopg pages through the same rows in binary format with the
  outbox's keyset, ``WHERE (tx_id, position) > (...) AND tx_id < xmin ORDER BY tx_id,
  position LIMIT n``, building one tuple per row and nothing else;
- **raw** (SQLite): ``sqlite3`` pages with ``WHERE position > ? ORDER BY position LIMIT n``.

Prints events per second, the CPU seconds of this process, and the ratio esrc / raw per
round, then the medians. The raw side marks nothing: the ratio includes the checkpoint.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable

from esrc_core.events import RawEvent
from esrc_sqlalchemy.store import SqlEventStore
from esrc_sqlalchemy.testing import drop_store_tables

_PER_STREAM = 100


def _fill(store: SqlEventStore, events: int) -> None:
    batch = [RawEvent("Happened", b'{"n": 1, "text": "something"}', {"by": "bench"})] * _PER_STREAM
    for _ in range(events // _PER_STREAM):
        store.add_aggregate("Bench", uuid.uuid4(), batch)


def _timed(work: Callable[[], int]) -> tuple[int, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    count = work()
    return count, time.perf_counter() - wall, time.process_time() - cpu


def _esrc(store: SqlEventStore, batch: int, durable: bool) -> Callable[[], int]:
    def work() -> int:
        name = f"cost-{uuid.uuid4().hex[:12]}"
        outbox = store.outbox(name) if durable else store.outbox(name, durable_checkpoint=False)
        total = 0
        while True:
            events = outbox.unpublished_events(batch)
            if not events:
                return total
            outbox.mark_events_as_published(events)
            total += len(events)

    return work


def _raw_pg(dsn: str, table: str, batch: int) -> Callable[[], int]:
    import psycopg

    sql = (
        "SELECT tx_id, position, aggregate_type, aggregate_id, version, name, data, metadata "
        f"FROM {table} WHERE (tx_id, position) > (%s, %s) "
        "AND tx_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint "
        "ORDER BY tx_id, position LIMIT %s"
    )

    def work() -> int:
        with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor(binary=True) as cur:
            tx, pos, total = 0, 0, 0
            while True:
                cur.execute(sql, (tx, pos, batch))
                rows = cur.fetchall()
                if not rows:
                    return total
                tx, pos = rows[-1][0], rows[-1][1]
                total += len(rows)

    return work


def _raw_sqlite(path: str, table: str, batch: int) -> Callable[[], int]:
    import sqlite3

    sql = (
        "SELECT position, aggregate_type, aggregate_id, version, name, data, metadata "
        f"FROM {table} WHERE position > ? ORDER BY position LIMIT ?"
    )

    def work() -> int:
        conn = sqlite3.connect(path)
        try:
            pos, total = 0, 0
            while True:
                rows = conn.execute(sql, (pos, batch)).fetchall()
                if not rows:
                    return total
                pos = rows[-1][0]
                total += len(rows)
        finally:
            conn.close()

    return work


def main() -> None:
    """Run the comparison and print it; drop its tables at the end."""
    parser = argparse.ArgumentParser(prog="python -m bench.outbox_cost", description=__doc__)
    parser.add_argument("--url", default=os.environ.get("ESRC_TEST_POSTGRESQL_URL"))
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--no-non-durable",
        dest="non_durable",
        action="store_false",
        help="leave out the durable_checkpoint=False side",
    )
    args = parser.parse_args()
    url: str = args.url or "sqlite:///" + os.path.join(tempfile.mkdtemp(), "cost.db")
    prefix = f"oc{uuid.uuid4().hex[:8]}_"
    store = SqlEventStore(url, table_prefix=prefix)
    try:
        store.migrate()
        _fill(store, args.events)
        table = f"{prefix}events"
        sides: dict[str, Callable[[], int]] = {"esrc": _esrc(store, args.batch, True)}
        if store.family == "postgresql":
            dsn = store.engine.url.set(drivername="postgresql").render_as_string(
                hide_password=False
            )
            if args.non_durable:
                sides["esrc non-durable"] = _esrc(store, args.batch, False)
            sides["raw"] = _raw_pg(dsn, table, args.batch)
        elif store.family == "sqlite":
            if args.non_durable:
                sides["esrc non-durable"] = _esrc(store, args.batch, False)
            sides["raw"] = _raw_sqlite(str(store.engine.url.database), table, args.batch)
        rates: dict[str, list[float]] = {side: [] for side in sides}
        cpus: dict[str, list[float]] = {side: [] for side in sides}
        for round_ in range(args.rounds):
            line = []
            for side, work in sides.items():
                count, wall, cpu = _timed(work)
                if count != args.events:
                    raise AssertionError(f"{side} read {count} events, want {args.events}")
                rates[side].append(count / wall)
                cpus[side].append(cpu / count * 1e6)
                line.append(f"{side} {count / wall:,.0f} ev/s ({cpu / count * 1e6:.2f} µs CPU/ev)")
            print(f"round {round_ + 1}: " + "; ".join(line))
        print(f"medians, {args.events:,} events, batch {args.batch}, {store.url}:")
        raw = statistics.median(rates["raw"]) if "raw" in rates else None
        for side in sides:
            rate = statistics.median(rates[side])
            ratio = f" = {rate / raw:.0%} of raw" if raw else ""
            cpu = statistics.median(cpus[side])
            print(f"  {side}: {rate:,.0f} ev/s, {cpu:.2f} µs CPU/ev{ratio}")
    finally:
        store.close()
        drop_store_tables(url, prefix)


if __name__ == "__main__":
    main()
