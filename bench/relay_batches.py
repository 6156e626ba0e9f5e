"""``python -m bench.relay_batches``: relay throughput by batch size, to choose the default.

Fills a fresh set of tables with ``--events`` events (100 per stream), then, in
interleaved rounds, runs a :class:`~esrc_core.runner.RelayRunner` of a fresh relay
name to the ``memory://`` publisher (one subscriber counting) at each batch size until
it relayed everything, and prints events per second per size and their medians. The
runner reads ahead with ``--read-ahead`` and marks with durable checkpoints unless
``--non-durable``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid

from esrc_core.plugins import open_publisher
from esrc_core.relay import RelayEvent
from esrc_core.runner import RelayRunner
from esrc_sqlalchemy.store import SqlEventStore
from esrc_sqlalchemy.testing import drop_store_tables

from bench.outbox_cost import _fill


def _relay(store: SqlEventStore, batch: int, events: int, read_ahead: bool = False) -> float:
    publisher = open_publisher("memory://")
    seen = 0
    done = threading.Event()

    def count(_: RelayEvent) -> None:
        nonlocal seen
        seen += 1
        if seen == events:
            done.set()

    publisher.subscribe(count)  # type: ignore[attr-defined]
    runner = RelayRunner(
        store,
        publisher,
        name=f"b-{uuid.uuid4().hex[:12]}",
        batch_size=batch,
        log_interval=0,
        read_ahead=read_ahead,
    )
    thread = threading.Thread(target=runner.run)
    began = time.perf_counter()
    thread.start()
    if not done.wait(600):
        raise AssertionError(f"relayed {seen} of {events} events in 600s")
    seconds = time.perf_counter() - began
    runner.stop()
    thread.join()
    return events / seconds


def main() -> None:
    """Run the comparison and print it; drop its tables at the end."""
    parser = argparse.ArgumentParser(prog="python -m bench.relay_batches", description=__doc__)
    parser.add_argument("--url", default=os.environ.get("ESRC_TEST_POSTGRESQL_URL"))
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--sizes", default="100,250,500,1000,2000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--non-durable", action="store_true")
    parser.add_argument("--read-ahead", action="store_true")
    args = parser.parse_args()
    url: str = args.url or "sqlite:///" + os.path.join(tempfile.mkdtemp(), "batches.db")
    sizes = [int(s) for s in args.sizes.split(",")]
    prefix = f"rb{uuid.uuid4().hex[:8]}_"
    store = SqlEventStore(url, table_prefix=prefix, durable_checkpoints=not args.non_durable)
    try:
        store.migrate()
        _fill(store, args.events)
        rates: dict[int, list[float]] = {size: [] for size in sizes}
        for round_ in range(args.rounds):
            line = []
            for size in sizes:
                rate = _relay(store, size, args.events, args.read_ahead)
                rates[size].append(rate)
                line.append(f"{size}: {rate:,.0f}")
            print(f"round {round_ + 1} (events/s by batch size): " + "; ".join(line))
        print(f"medians, {args.events:,} events, {store.url}:")
        for size in sizes:
            print(f"  batch {size}: {statistics.median(rates[size]):,.0f} events/s")
    finally:
        store.close()
        drop_store_tables(url, prefix)


if __name__ == "__main__":
    main()
