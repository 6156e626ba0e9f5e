"""``python -m bench.relay_pipelining BROKER``: the relay runner with and without
reading ahead, beside the broker's raw confirmed rate, interleaved in one run.

For each round: the broker's raw confirmed publish of ``--events`` messages (as
``python -m bench relay`` does it), then a :class:`~esrc_core.runner.RelayRunner`
relaying as many new events from a PostgreSQL outbox, once with ``read_ahead=True``
(reading the next batch and marking the last on its second thread while publishing)
and once with an outbox that does not offer ``read-ahead`` (read, publish, mark, one
after the other).
Prints events per second and the ratio to raw, per round and as medians.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from typing import Any

from esrc_core.relay import RelayEvent
from esrc_core.runner import RelayRunner
from esrc_faststream.loop import LoopThread

from bench.relay import _KINDS, _events, _fill, _run_runner, _Tables, default_url
from esrc_core import open_publisher


class _Plain:
    """An outbox with only the base protocol: the runner reads, publishes and marks in
    turn."""

    def __init__(self, outbox: Any) -> None:
        self._outbox = outbox
        self.name: str = outbox.name

    def unpublished_events(self, limit: int) -> list[RelayEvent]:
        return list(self._outbox.unpublished_events(limit))

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        self._outbox.mark_events_as_published(events)


class _PlainStore:
    """A store whose outboxes are :class:`_Plain`; relay locks pass through."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def outbox(self, name: str = "default") -> _Plain:
        return _Plain(self._store.outbox(name))

    def relay_lock(self, name: str) -> Any:
        return self._store.relay_lock(name)

    def close(self) -> None:
        """The bench closes the store it wraps."""


def _relay(publisher_url: str, store: Any, events: int, batch: int, name: str) -> float:
    publisher = open_publisher(publisher_url)
    runner = RelayRunner(
        store,
        publisher,
        name=name,
        batch_size=batch,
        poll_interval=0.01,
        log_interval=0,
        read_ahead=name == "read-ahead",
    )
    start = runner.relayed
    try:
        return events / _run_runner(runner, lambda: runner.relayed - start >= events, 600)
    finally:
        publisher.close()


def main() -> None:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser(prog="python -m bench.relay_pipelining", description=__doc__)
    parser.add_argument("broker", choices=sorted(_KINDS))
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    loop = LoopThread(name="bench-brokers")
    broker = _KINDS[args.broker](default_url(args.broker), loop)
    tables = _Tables(default_url("postgresql"))
    store = tables.store()
    rates: dict[str, list[float]] = {"raw": [], "sequential": [], "read-ahead": []}
    try:
        for round_ in range(args.rounds):
            for side, values in rates.items():
                broker.drain()
                if side == "raw":
                    rate = args.events / broker.raw_publish(_events(args.events))
                else:
                    _fill(store, args.events)
                    relayed = store if side == "read-ahead" else _PlainStore(store)
                    rate = _relay(broker.publisher_url(), relayed, args.events, args.batch, side)
                values.append(rate)
            print(
                f"round {round_ + 1}: "
                + "; ".join(f"{side} {values[-1]:,.0f} ev/s" for side, values in rates.items())
            )
        raw = statistics.median(rates["raw"])
        print(f"medians, {args.broker}, {args.events:,} events, batch {args.batch}:")
        for side, values in rates.items():
            rate = statistics.median(values)
            print(f"  {side}: {rate:,.0f} ev/s = {rate / raw:.0%} of raw")
    finally:
        store.close()
        broker.clean_up()
        tables.drop()
        loop.close()


if __name__ == "__main__":
    main()
