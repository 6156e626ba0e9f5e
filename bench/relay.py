"""``python -m bench relay``: relaying from a PostgreSQL outbox to each broker.

For each broker (RabbitMQ, NATS JetStream, Redis Streams), in one run:

1. **throughput**: :class:`~esrc_core.runner.RelayRunner` (what ``esrc relay`` runs)
   relays a prepared outbox of events to the broker, events per second, beside the
   broker's own **raw confirmed publish rate**: the same messages published with the
   broker's client, pipelined the same way (256 unconfirmed at most), every confirm
   awaited;
2. **end-to-end latency**: writer threads append 1-event aggregates at a steady rate
   (1,000 events/s by default) while an ``esrc relay`` process relays them and a
   consumer on the broker receives them; the time from an append's commit (the call
   returning) to its message's arrival, p50 and p99, with the outbox polled and with
   ``LISTEN``/``NOTIFY`` (``notify=True``).

Targets, printed and never asserted: the throughput at least 50% of the raw publish
rate; p99 latency under 50 ms with ``LISTEN``/``NOTIFY``. Results go to
``bench/results/relay-<timestamp>.json`` in the harness's layout. A broker whose
server cannot be reached is reported as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from esrc_core.runner import RelayRunner, RelayStatus
from esrc_faststream.destination import destination, destination_class
from esrc_faststream.headers import relay_headers, route
from esrc_faststream.loop import LoopThread
from esrc_faststream.testing import BrokerReader

from bench.arguments import add_results_options, name_list, positive, progress
from bench.machine import machine, software
from bench.report import render_backend, render_summary
from bench.results import BackendResult, Figure, Target, save_results
from esrc_core import RawEvent, RelayEvent, mask_url, open_publisher

__all__ = ["BROKERS", "RelaySettings", "main"]

BROKERS = ("rabbitmq", "nats", "redis")
"""Brokers ``--brokers`` accepts."""

_ENV = {
    "rabbitmq": ("ESRC_BENCH_AMQP_URL", "ESRC_TEST_AMQP_URL"),
    "nats": ("ESRC_BENCH_NATS_URL", "ESRC_TEST_NATS_URL"),
    "redis": ("ESRC_BENCH_REDIS_URL", "ESRC_TEST_REDIS_URL"),
    "postgresql": ("ESRC_BENCH_POSTGRESQL_URL", "ESRC_TEST_POSTGRESQL_URL"),
}
_LOCAL = {
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
    "nats": "nats://127.0.0.1:4222",
    "redis": "redis://127.0.0.1:6379/0",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
}
_IN_FLIGHT = 256
"""Unconfirmed messages at most, on the raw side as in the esrc publishers."""
_PAYLOAD = b'{"basket": "b-0001", "sku": "sku-42", "quantity": 2, "price": "12.50"}'
_METADATA = {"correlation_id": "c-7f3a", "user": "bench"}


def default_url(name: str) -> str:
    """The URL of ``name`` (a broker or ``postgresql``) from ``ESRC_BENCH_*_URL``, then
    the tests' ``ESRC_TEST_*_URL``, else the local server's."""
    for variable in _ENV[name]:
        value = os.environ.get(variable)
        if value:
            return value
    return _LOCAL[name]


@dataclass(frozen=True)
class RelaySettings:
    """Everything that shapes a relay benchmark run; recorded with the results."""

    brokers: tuple[str, ...]
    repeat: int
    quick: bool
    events: int
    """Events per throughput run."""
    latency_seconds: float
    """How long the writers append in a latency run."""
    rate: int
    """Events per second the writers append in a latency run."""
    writers: int
    batch_size: int
    urls: dict[str, str]
    results_dir: Path | None

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON object, URLs masked."""
        return {
            "brokers": list(self.brokers),
            "repeat": self.repeat,
            "quick": self.quick,
            "events": self.events,
            "latency_seconds": self.latency_seconds,
            "rate": self.rate,
            "writers": self.writers,
            "batch_size": self.batch_size,
            "urls": {name: mask_url(url) for name, url in self.urls.items()},
        }


def _events(count: int) -> list[RelayEvent]:
    """``count`` events like the relay's, for the raw side (fresh ids on every call, so
    JetStream's duplicate window never drops them)."""
    run = secrets.token_hex(4)
    return [
        RelayEvent(
            "Basket",
            f"{run}-{n // 10}",
            n % 10 + 1,
            n + 1,
            RawEvent("ItemAdded", _PAYLOAD, _METADATA),
        )
        for n in range(count)
    ]


class Broker:
    """One broker's side of the benchmark: a destination of its own (the publisher URL,
    a reader that notes when each message arrives, clean-up) from the broker's
    distribution, and a raw confirmed publish with the broker's own client (the one
    broker-specific part, in a subclass). Asynchronous clients run on ``loop``."""

    name = "broker"

    def __init__(self, url: str, loop: LoopThread) -> None:
        self.url = url
        self.loop = loop
        self.destination = destination(url, f"esrc-bench-{secrets.token_hex(3)}")
        self._reader: BrokerReader | None = None

    @property
    def label(self) -> str:
        """The broker's name in the report."""
        return self.destination.label

    def publisher_url(self) -> str:
        """The URL the esrc publisher is opened with."""
        return self.destination.publisher_url()

    def probe(self) -> None:
        """Connect once; raise if the broker cannot be reached."""
        parts = urlsplit(self.url)
        host, port = parts.hostname or "127.0.0.1", parts.port
        import socket

        with socket.create_connection((host, port or 0), 5):
            pass

    @property
    def reader(self) -> BrokerReader:
        """The destination's reader, opened on first use (before anything is
        published, so it sees every message)."""
        if self._reader is None:
            self._reader = self.destination.reader(self.loop)
        return self._reader

    def raw_publish(self, events: Sequence[RelayEvent]) -> float:
        """Publish ``events`` with the broker's own client, confirmed; return the
        seconds it took (connecting is not timed)."""
        raise NotImplementedError

    def consume(self, arrived: Callable[[str, float], None]) -> Callable[[], None]:
        """Start a consumer that calls ``arrived(message_id, perf_counter())`` for each
        message; return a function that stops it."""
        return self.reader.listen(lambda message: arrived(message.message_id, time.perf_counter()))

    def drain(self) -> None:
        """Drop what earlier runs left in the broker (between runs, not timed)."""
        self.reader.purge()

    def clean_up(self) -> None:
        """Delete everything the benchmark declared on the broker."""
        try:
            if self._reader is not None:
                self._reader.close()
        finally:
            self.destination.delete(loop=self.loop, timeout=60)


async def _pipelined(
    send: Callable[[RelayEvent], Awaitable[Awaitable[Any]]], events: Sequence[RelayEvent]
) -> None:
    """Send in order with at most ``_IN_FLIGHT`` unconfirmed, awaiting confirms in order."""
    pending: deque[Awaitable[Any]] = deque()
    for event in events:
        while len(pending) >= _IN_FLIGHT:
            await pending.popleft()
        pending.append(await send(event))
    while pending:
        await pending.popleft()


class RabbitMQ(Broker):
    """Raw: aio-pika on a channel with publisher confirms, to the destination's exchange."""

    name = "rabbitmq"

    def raw_publish(self, events: Sequence[RelayEvent]) -> float:
        from esrc_rabbitmq.destination import RabbitDestination

        assert isinstance(self.destination, RabbitDestination)
        exchange_name = self.destination.exchange

        async def run() -> float:
            import aio_pika

            connection = await aio_pika.connect(self.url)
            async with connection:
                channel = await connection.channel(publisher_confirms=True)
                exchange = await channel.declare_exchange(
                    exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                )
                messages = [
                    aio_pika.Message(
                        e.event.data,
                        headers=dict(relay_headers(e)),
                        content_type="application/octet-stream",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=e.message_id,
                        correlation_id=e.message_id,
                        type=e.event.name,
                    )
                    for e in events
                ]
                keys = {e.message_id: route("{aggregate_type}.{event_name}", e) for e in events}
                by_id = dict(zip((e.message_id for e in events), messages, strict=True))

                async def send(event: RelayEvent) -> Awaitable[Any]:
                    future: Awaitable[Any] = asyncio.ensure_future(
                        exchange.publish(
                            by_id[event.message_id],
                            routing_key=keys[event.message_id],
                            mandatory=False,
                        )
                    )
                    return future

                started = time.perf_counter()
                await _pipelined(send, events)
                return time.perf_counter() - started

        return self.loop.run(run(), 600)


class Nats(Broker):
    """Raw: nats-py's ``publish_async`` to the destination's stream (created as the esrc
    publisher creates it)."""

    name = "nats"

    def raw_publish(self, events: Sequence[RelayEvent]) -> float:
        from esrc_nats.destination import NatsDestination

        assert isinstance(self.destination, NatsDestination)
        stream, subjects = self.destination.stream, self.destination.subjects
        rule = self.destination.subject_rule

        async def run() -> float:
            import nats
            from nats.js.api import StreamConfig

            nc = await nats.connect(self.url)
            try:
                js = nc.jetstream(publish_async_max_pending=_IN_FLIGHT)
                try:
                    await js.stream_info(stream)
                except Exception:
                    await js.add_stream(StreamConfig(name=stream, subjects=[subjects]))
                headers = {e.message_id: dict(relay_headers(e)) for e in events}
                for e in events:
                    headers[e.message_id]["Nats-Msg-Id"] = e.message_id

                async def send(event: RelayEvent) -> Awaitable[Any]:
                    future: Awaitable[Any] = await js.publish_async(
                        route(rule, event),
                        event.event.data,
                        stream=stream,
                        headers=headers[event.message_id],
                    )
                    return future

                started = time.perf_counter()
                await _pipelined(send, events)
                return time.perf_counter() - started
            finally:
                await nc.close()

        return self.loop.run(run(), 600)


class Redis(Broker):
    """Raw: redis-py pipelines of ``XADD`` to the destination's stream."""

    name = "redis"

    def raw_publish(self, events: Sequence[RelayEvent]) -> float:
        from esrc_redis.destination import RedisDestination

        assert isinstance(self.destination, RedisDestination)
        stream = self.destination.stream

        async def run() -> float:
            import redis.asyncio

            client = redis.asyncio.from_url(self.url)
            try:
                entries = [{**relay_headers(e), "data": e.event.data} for e in events]
                started = time.perf_counter()
                for start in range(0, len(entries), _IN_FLIGHT):
                    async with client.pipeline(transaction=False) as pipe:
                        for fields in entries[start : start + _IN_FLIGHT]:
                            pipe.xadd(stream, fields)  # type: ignore[arg-type]
                        await pipe.execute()
                return time.perf_counter() - started
            finally:
                await client.aclose()

        return self.loop.run(run(), 600)


_KINDS: dict[str, type[Broker]] = {"rabbitmq": RabbitMQ, "nats": Nats, "redis": Redis}


@dataclass
class _Tables:
    """The bench's SQL stores on PostgreSQL, each on a prefix of its own, dropped at the end."""

    url: str
    prefixes: list[str] = field(default_factory=list)

    def store(self, *, notify: bool = False) -> Any:
        from esrc_sqlalchemy.store import SqlEventStore

        prefix = f"bench_relay_{secrets.token_hex(3)}_"
        self.prefixes.append(prefix)
        return SqlEventStore(self.url, table_prefix=prefix, notify=notify)

    def drop(self) -> None:
        from esrc_sqlalchemy.testing import drop_store_tables

        for prefix in self.prefixes:
            drop_store_tables(self.url, prefix)


def _fill(store: Any, count: int) -> None:
    """Append ``count`` events, 10 per new aggregate (not timed)."""
    batch = [RawEvent("ItemAdded", _PAYLOAD, _METADATA)] * 10
    for _ in range(count // 10):
        store.add_aggregate("Basket", uuid.uuid4(), batch)
    if count % 10:
        store.add_aggregate("Basket", uuid.uuid4(), batch[: count % 10])


_CHECK_EVERY = 0.01
"""Seconds between two looks at whether the relay is done: the time is at most this
much too long, and looking more often takes measurable CPU from the relay itself."""


def _run_runner(runner: RelayRunner, until: Callable[[], bool], timeout: float) -> float:
    """Run ``runner`` in a thread until ``until()`` (checked every :data:`_CHECK_EVERY`
    seconds); return the seconds it took."""
    thread = threading.Thread(target=runner.run, name="bench-relay", daemon=True)
    started = time.perf_counter()
    thread.start()
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline or not thread.is_alive():
            runner.stop()
            thread.join(30)
            raise TimeoutError(f"the relay did not finish within {timeout:.0f}s")
        time.sleep(_CHECK_EVERY)
    elapsed = time.perf_counter() - started
    runner.stop()
    thread.join(30)
    return elapsed


def _throughput(
    broker: Broker, tables: _Tables, settings: RelaySettings, say: Callable[[str], None]
) -> Figure:
    figure = Figure(
        key="relay_throughput",
        title="relay PostgreSQL outbox -> broker",
        unit="events/s",
        higher_is_better=True,
        work={"events": settings.events, "batch_size": settings.batch_size},
        target=Target("min_ratio", 0.50, backend=broker.name),
    )
    figure.notes.append(
        "raw: the same messages with the broker's client, confirmed, "
        f"{_IN_FLIGHT} in flight at most"
    )
    store = tables.store()
    try:
        for run in range(settings.repeat):
            for side in ("raw", "esrc") if run % 2 == 0 else ("esrc", "raw"):
                broker.drain()
                if side == "raw":
                    seconds = broker.raw_publish(_events(settings.events))
                    figure.raw_runs.append(settings.events / seconds)
                else:
                    seconds = _relay_once(broker, store, settings)
                    figure.esrc_runs.append(settings.events / seconds)
                say(f"throughput run {run + 1} {side}: {settings.events / seconds:,.0f} events/s")
    finally:
        store.close()
    return figure


def _relay_once(broker: Broker, store: Any, settings: RelaySettings) -> float:
    """Fill the outbox with ``settings.events`` new events and time a runner relaying
    them to ``broker``."""
    _fill(store, settings.events)
    publisher = open_publisher(broker.publisher_url())
    runner = RelayRunner(
        store,
        publisher,
        name="throughput",
        batch_size=settings.batch_size,
        poll_interval=0.01,
        log_interval=0,
    )
    try:
        return _run_runner(runner, lambda: runner.relayed >= settings.events, 600)
    finally:
        publisher.close()


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def _latency(
    broker: Broker,
    tables: _Tables,
    settings: RelaySettings,
    *,
    notify: bool,
    say: Callable[[str], None],
) -> list[Figure]:
    mode = "LISTEN/NOTIFY" if notify else "polling"
    key = "notify" if notify else "poll"
    work = {
        "rate": settings.rate,
        "seconds": int(settings.latency_seconds),
        "writers": settings.writers,
    }
    p50 = Figure(f"latency_p50_{key}", f"latency p50, {mode}", "ms", False, dict(work))
    p99 = Figure(f"latency_p99_{key}", f"latency p99, {mode}", "ms", False, dict(work))
    if notify:
        p99.target = Target("max_value", 50.0, backend=broker.name)
    for figure in (p50, p99):
        figure.raw_skipped = "no raw counterpart: append committed -> consumer received"
    for _ in range(settings.repeat):
        latencies, note = _latency_once(broker, tables, settings, notify=notify)
        p50.esrc_runs.append(_percentile(latencies, 0.50))
        p99.esrc_runs.append(_percentile(latencies, 0.99))
        p50.notes.append(note)
        say(f"latency {mode}: p50 {p50.esrc_runs[-1]:.1f} ms, p99 {p99.esrc_runs[-1]:.1f} ms")
        say(f"latency {mode}: {note}")
    return [p50, p99]


class _RelayProcess:
    """``esrc relay`` in a process of its own, as it is deployed, so that the writers
    and the consumer in this process do not share an interpreter (and its lock) with
    the relay. Its state is read from its status file (``--status-file``)."""

    def __init__(
        self, url: str, prefix: str, broker: Broker, settings: RelaySettings, *, notify: bool
    ) -> None:
        command = [sys.executable, "-m", "esrc_core.cli", "relay", "--store", url]
        command += ["-o", f"table_prefix={prefix}", "-o", f"notify={str(notify).lower()}"]
        command += ["--publisher", broker.publisher_url(), "--name", "latency"]
        command += ["--batch-size", str(settings.batch_size), "--log-interval", "0"]
        self._directory = tempfile.TemporaryDirectory(prefix="esrc-bench-relay-")
        self.status_path = Path(self._directory.name) / "status.json"
        command += ["--status-file", str(self.status_path)]
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def _status(self) -> RelayStatus | None:
        try:
            return RelayStatus.read(self.status_path)
        except FileNotFoundError:
            return None

    def wait_until_relaying(self, timeout: float = 60.0) -> None:
        """Wait until the process is relaying, holding the relay lock (its publisher is
        open by then)."""
        deadline = time.monotonic() + timeout
        while (status := self._status()) is None or not (
            status.state == "relaying" and status.holds_lock
        ):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the relay process did not start (status {status}): " + " | ".join(self.lines)
                )
            time.sleep(0.01)

    def stop(self) -> None:
        """SIGTERM the process, wait for it to end and remove its status file."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._directory.cleanup()


def _latency_once(
    broker: Broker, tables: _Tables, settings: RelaySettings, *, notify: bool
) -> tuple[list[float], str]:
    """One latency run on a fresh store; returns the latencies in ms and a note."""
    store = tables.store(notify=notify)
    committed: dict[str, float] = {}
    received: dict[str, float] = {}
    lock = threading.Lock()

    def arrived(mid: str, at: float) -> None:
        with lock:
            received.setdefault(mid, at)

    store.migrate()
    broker.drain()  # what the throughput runs left would hold the consumer up
    stop_consumer = broker.consume(arrived)
    relay = _RelayProcess(tables.url, store.table_prefix, broker, settings, notify=notify)
    try:
        relay.wait_until_relaying()
        achieved = _write_steadily(store, settings, committed)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if all(mid in received for mid in committed):
                    break
            time.sleep(0.01)
    finally:
        relay.stop()
        stop_consumer()
        store.close()
    with lock:
        latencies = [(received[m] - t) * 1000 for m, t in committed.items() if m in received]
    if not latencies:
        raise RuntimeError("no message arrived in the latency run")
    note = f"{len(committed)} appends at {achieved:,.0f}/s achieved"
    missing = len(committed) - len(latencies)
    if missing:
        note += f"; {missing} never arrived within 30 s"
    return latencies, note


def _write_steadily(store: Any, settings: RelaySettings, committed: dict[str, float]) -> float:
    """Append 1-event aggregates at ``settings.rate`` per second from
    ``settings.writers`` threads for ``settings.latency_seconds``; note each append's
    commit time by message id. Returns the rate achieved."""
    from esrc_core import message_id

    total = int(settings.rate * settings.latency_seconds)
    started = time.perf_counter() + 0.05
    lock = threading.Lock()

    def write(offset: int) -> None:
        for n in range(offset, total, settings.writers):
            wait = started + n / settings.rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            aggregate_id = uuid.uuid4()
            store.add_aggregate(
                "Basket", aggregate_id, [RawEvent("ItemAdded", _PAYLOAD, _METADATA)]
            )
            at = time.perf_counter()
            with lock:
                committed[message_id("Basket", aggregate_id, 1)] = at

    threads = [
        threading.Thread(target=write, args=(w,), daemon=True) for w in range(settings.writers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return total / max(time.perf_counter() - started, 1e-9)


def _measure(
    name: str, settings: RelaySettings, loop: LoopThread, tables: _Tables
) -> BackendResult:
    """Probe one broker and measure it, then delete what it declared."""
    url = settings.urls[name]
    broker = _KINDS[name](url, loop)
    result = BackendResult(name, broker.label, mask_url(url))
    say = progress(name)
    try:
        broker.probe()
    except Exception as err:
        result.status, result.reason = "skipped", f"cannot reach {mask_url(url)}: {err}"
        return result
    result.settings = {"publisher_url": mask_url(broker.publisher_url())}
    try:
        groups: list[Callable[[], list[Figure]]] = [
            lambda: [_throughput(broker, tables, settings, say)],
            lambda: _latency(broker, tables, settings, notify=False, say=say),
            lambda: _latency(broker, tables, settings, notify=True, say=say),
        ]
        for group in groups:
            try:
                result.figures.extend(group())
            except Exception as err:
                traceback.print_exc()
                failed = Figure("error", "a figure group failed", "-", True, {})
                failed.error = f"{type(err).__name__}: {err}"
                result.figures.append(failed)
    finally:
        try:
            broker.clean_up()
        except Exception as err:
            say(f"clean-up failed: {err}")
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench relay",
        description=(
            "Measure relaying from a PostgreSQL outbox to each broker beside the broker's "
            "raw confirmed publish rate, and end-to-end latency with polling and with "
            "LISTEN/NOTIFY."
        ),
    )
    parser.add_argument(
        "--brokers",
        type=name_list(BROKERS, "broker(s)"),
        default=BROKERS,
        help=f"comma-separated, from {', '.join(BROKERS)} (default: all)",
    )
    parser.add_argument(
        "--repeat", type=positive, help="runs per figure (default 3, 1 with --quick)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: little work, figures not meaningful"
    )
    parser.add_argument(
        "--events",
        type=positive,
        help="events per throughput run (default 20,000; 2,000 with --quick)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        help="seconds of appends per latency run (default 10; 1 with --quick)",
    )
    parser.add_argument(
        "--rate", type=positive, default=1000, help="appends per second in latency runs"
    )
    parser.add_argument(
        "--writers", type=positive, default=4, help="appending threads in latency runs"
    )
    parser.add_argument(
        "--batch-size", type=positive, default=500, help="events per relay batch (default 500)"
    )
    for name, what in (
        ("postgresql", "PostgreSQL (the relay's store)"),
        ("amqp", "RabbitMQ"),
        ("nats", "NATS"),
        ("redis", "Redis"),
    ):
        parser.add_argument(
            f"--{name}-url",
            metavar="URL",
            help=f"{what} URL (default: $ESRC_BENCH_{name.upper()}_URL, then "
            f"$ESRC_TEST_{name.upper()}_URL, then the local server)",
        )
    add_results_options(parser)
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> RelaySettings:
    """Build the run's :class:`RelaySettings` from command-line arguments; exits with
    status 2 and a usage message on bad arguments."""
    args = _parser().parse_args(argv)
    given = {
        "postgresql": args.postgresql_url,
        "rabbitmq": args.amqp_url,
        "nats": args.nats_url,
        "redis": args.redis_url,
    }
    urls = {name: url or default_url(name) for name, url in given.items()}
    return RelaySettings(
        brokers=args.brokers,
        repeat=args.repeat or (1 if args.quick else 3),
        quick=args.quick,
        events=args.events or (2_000 if args.quick else 20_000),
        latency_seconds=args.seconds or (1.0 if args.quick else 10.0),
        rate=args.rate,
        writers=args.writers,
        batch_size=args.batch_size,
        urls=urls,
        results_dir=None if args.no_save else args.results_dir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the relay benchmark; 0 unless a figure failed (1) or the arguments are wrong
    (2). Targets are printed, never asserted."""
    settings = parse_settings(argv)
    started = dt.datetime.now(dt.UTC)
    document: dict[str, Any] = {
        "benchmark": "relay",
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "software": software(),
        "settings": settings.to_json(),
        "backends": [],
    }
    mode = "quick (smoke run, figures not meaningful)" if settings.quick else "full"
    print(
        f"esrc relay benchmark: {mode}; {settings.repeat} run(s) per figure, "
        f"{settings.events:,} events per throughput run, latency at {settings.rate:,} "
        f"events/s for {settings.latency_seconds:g}s; store {mask_url(settings.urls['postgresql'])}"
    )
    results: list[BackendResult] = []
    loop = LoopThread(name="bench-brokers")
    tables = _Tables(settings.urls["postgresql"])
    try:
        try:
            tables.store().close()
            _probe_store(settings.urls["postgresql"])
        except Exception as err:
            reason = (
                f"cannot use the PostgreSQL store at {mask_url(settings.urls['postgresql'])}: {err}"
            )
            for name in settings.brokers:
                results.append(
                    BackendResult(
                        name,
                        destination_class(name).label,
                        mask_url(settings.urls[name]),
                        "skipped",
                        reason,
                    )
                )
        else:
            for name in settings.brokers:
                result = _measure(name, settings, loop, tables)
                results.append(result)
                print()
                print(render_backend(result), flush=True)
    except KeyboardInterrupt:
        document["interrupted"] = True
        print("\ninterrupted; writing what was measured", file=sys.stderr)
    finally:
        try:
            tables.drop()
        except Exception as err:
            print(f"dropping the bench tables failed: {err}", file=sys.stderr)
        loop.close()
        document["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        document["backends"] = [r.to_json() for r in results]
        if settings.results_dir is not None:
            save_results(settings.results_dir, started, document, prefix="relay-")
    for result in results:
        if result.status == "skipped":
            print()
            print(render_backend(result))
    print()
    print(render_summary(results))
    failed = any(f.error for r in results for f in r.figures)
    return 1 if failed or document.get("interrupted") else 0


def _probe_store(url: str) -> None:
    from esrc_sqlalchemy.store import SqlEventStore

    store = SqlEventStore(url, table_prefix="bench_relay_probe_", create_schema=False)
    try:
        store.contains_aggregate("Basket", "probe")
    except Exception as err:
        if "do not exist" not in str(err):
            raise
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
