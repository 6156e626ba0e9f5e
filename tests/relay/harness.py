"""What the relay process tests share: ``esrc relay`` subprocesses, writer threads, a
TCP proxy whose connections the tests can drop, and the delivery checks. (What a
broker received is read back with the broker distribution's reader, see
``conftest.broker``.)"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from esrc_core.errors import AggregateAlreadyExists, OptimisticConcurrencyError
from esrc_core.events import RawEvent
from esrc_core.relay import HasOutbox, RelayEvent
from esrc_core.relay_status import RelayStatus, RunnerState
from esrc_core.store import EventStore

__all__ = [
    "RelayProcess",
    "TcpProxy",
    "Writers",
    "check_delivery",
    "outbox_order",
    "rabbitmq_close_connections",
    "wait_until",
]


def wait_until(done: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``done`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting until {what}")
        time.sleep(0.02)


STATUS_INTERVAL = 0.1
"""Seconds between the status files a relay process writes while relaying."""


class RelayProcess:
    """``python -m esrc_core.cli relay ...`` in a subprocess, its output in a file and
    its state in a status file beside it (``--status-file``), which the tests read."""

    def __init__(self, log_path: Path, arguments: Sequence[str]) -> None:
        self.log_path = log_path
        self.status_path = log_path.with_suffix(".status.json")
        self._log = log_path.open("wb")
        command = [sys.executable, "-m", "esrc_core.cli", "relay", *arguments]
        command += ["--status-file", str(self.status_path)]
        command += ["--status-interval", str(STATUS_INTERVAL)]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def text(self) -> str:
        """Everything the process has logged so far."""
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the log, for failure messages."""
        return "\n".join(self.text().splitlines()[-lines:])

    def status(self) -> RelayStatus | None:
        """The relay's latest status, ``None`` before it wrote the first."""
        try:
            status = RelayStatus.read(self.status_path)
        except FileNotFoundError:
            return None
        assert status.pid == self.pid, f"{self.status_path} was written by {status.pid}"
        return status

    def final_status(self) -> RelayStatus:
        """The status the process left when it exited (it must have exited)."""
        assert self.proc.poll() is not None, f"relay process {self.pid} is still running"
        status = self.status()
        assert status is not None, f"relay process {self.pid} wrote no status:\n{self.tail()}"
        assert status.state == "stopped", f"the last status is {status}:\n{self.tail()}"
        return status

    def wait_for_status(
        self, done: Callable[[RelayStatus], bool], what: str, timeout: float = 60.0
    ) -> RelayStatus:
        """Wait until the relay's status satisfies ``done``; return it. Fails naming
        ``what`` after ``timeout`` seconds, or if the process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status is not None and done(status):
                return status
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"relay process {self.pid} exited with {self.proc.returncode} before "
                    f"{what} (last status {status}):\n{self.tail()}"
                )
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"relay process {self.pid}: timed out after {timeout}s waiting until "
                    f"{what} (last status {status}):\n{self.tail()}"
                )
            time.sleep(0.02)

    def wait_for_state(self, *states: RunnerState, timeout: float = 60.0) -> RelayStatus:
        """Wait until the relay is in one of ``states``; return its status."""
        return self.wait_for_status(
            lambda s: s.state in states, f"it is {' or '.join(states)}", timeout
        )

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 30.0, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` (SIGTERM) and return the exit status; fails if the process does
        not exit within ``timeout`` seconds."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"relay process {self.pid} ignored {sig.name} for {timeout}s:\n{self.tail()}"
            ) from None

    def close(self) -> None:
        """Kill the process if it still runs, and close its log file."""
        self.kill()
        self._log.close()


@dataclass
class _Stream:
    key: int | str
    version: int = 0


@dataclass
class Writers:
    """Threads appending to ``store`` until stopped.

    Each writer appends to aggregates of its own, at the versions it knows, and all of
    them append to one shared aggregate at whatever version they read, retrying on
    :class:`OptimisticConcurrencyError`. Appends carry 1 to 3 events. :meth:`stop`
    raises the first unexpected error of any writer; :meth:`check_versions` compares
    every stream with what the writers appended.
    """

    store: EventStore
    writers: int = 3
    own: int = 3
    pause: float = 0.01
    seed: int = 0
    appended: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _errors: list[BaseException] = field(default_factory=list)
    _streams: dict[int | str, _Stream] = field(default_factory=dict)
    _count_lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Start the writer threads."""
        for w in range(self.writers):
            thread = threading.Thread(target=self._write, args=(w,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _events(self, rng: random.Random, writer: int, first: bool) -> list[RawEvent]:
        count = rng.randint(1, 3)
        names = ["Opened"] + ["Deposited"] * (count - 1) if first else ["Deposited"] * count
        data = json.dumps({"writer": writer, "r": rng.random()}).encode()
        return [RawEvent(name, data, {"writer": str(writer)}) for name in names]

    def _write(self, writer: int) -> None:
        rng = random.Random(self.seed * 1000 + writer)
        mine = [_Stream(writer * 100 + n) for n in range(self.own)]
        for stream in mine:
            self._streams[stream.key] = stream
        self._streams.setdefault("shared", _Stream("shared"))
        try:
            while not self._stop.is_set():
                if rng.random() < 0.25:
                    self._append_shared(rng, writer)
                else:
                    stream = rng.choice(mine)
                    events = self._events(rng, writer, stream.version == 0)
                    if stream.version == 0:
                        self.store.add_aggregate("Account", stream.key, events)
                    else:
                        self.store.append_events("Account", stream.key, stream.version, events)
                    stream.version += len(events)
                    self._count(len(events))
                time.sleep(self.pause)
        except BaseException as err:
            self._errors.append(err)

    def _append_shared(self, rng: random.Random, writer: int) -> None:
        shared = self._streams["shared"]
        for _ in range(50):
            try:
                if not self.store.contains_aggregate("Account", "shared"):
                    events = self._events(rng, writer, True)
                    self.store.add_aggregate("Account", "shared", events)
                else:
                    version = len(self.store.events("Account", "shared"))
                    events = self._events(rng, writer, False)
                    self.store.append_events("Account", "shared", version, events)
            except (OptimisticConcurrencyError, AggregateAlreadyExists):
                continue
            with self._count_lock:
                shared.version += len(events)
            self._count(len(events))
            return
        raise AssertionError("writer could not append to the shared aggregate in 50 tries")

    def _count(self, events: int) -> None:
        with self._count_lock:
            self.appended += events

    def stop(self) -> None:
        """Stop and join the writers; raise the first error one of them hit."""
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        if self._errors:
            raise self._errors[0]

    def check_versions(self) -> None:
        """Every stream holds exactly the events its writers appended, versions 1..n."""
        for stream in self._streams.values():
            if stream.version == 0:
                continue
            stored = self.store.events("Account", stream.key)
            assert len(stored) == stream.version, (
                f"Account {stream.key!r}: got {len(stored)} events, want {stream.version}"
            )


def outbox_order(store: EventStore, name: str) -> list[RelayEvent]:
    """Every committed event, in the outbox order (read through a fresh relay name)."""
    assert isinstance(store, HasOutbox)
    return store.outbox(name).unpublished_events(10_000_000)


def check_delivery(
    delivered: Sequence[RelayEvent], expected: Sequence[RelayEvent], *, duplicates: bool
) -> None:
    """What a consumer received is everything, in the outbox order.

    - Per aggregate, each message seen for the first time has the next version (so
      versions strictly increase, without gaps); a message seen before is an exact
      repeat of its first delivery (same id, same content).
    - The order of first deliveries is the outbox order, and nothing is missing.
    - With ``duplicates=False`` (JetStream), no message was received twice.
    """
    first: dict[str, RelayEvent] = {}
    order: list[str] = []
    last_version: dict[tuple[str, object], int] = {}
    repeats = 0
    for index, event in enumerate(delivered):
        mid = event.message_id
        if mid in first:
            repeats += 1
            assert event == first[mid], (
                f"message {index} repeats {mid} with other content:\n"
                f"got  {event}\nwant {first[mid]}"
            )
            continue
        key = (event.aggregate_type, event.aggregate_id)
        want = last_version.get(key, 0) + 1
        assert event.version == want, (
            f"message {index} ({mid}): got version {event.version} of {key}, want {want}"
        )
        last_version[key] = event.version
        first[mid] = event
        order.append(mid)
    wanted = [e.message_id for e in expected]
    missing = [mid for mid in wanted if mid not in first]
    assert not missing, f"{len(missing)} of {len(wanted)} events never arrived, e.g. {missing[:5]}"
    known = set(wanted)
    extra = [mid for mid in order if mid not in known]
    assert not extra, f"{len(extra)} messages the store does not have, e.g. {extra[:5]}"
    if order != wanted:
        at = next(i for i, (a, b) in enumerate(zip(order, wanted, strict=True)) if a != b)
        raise AssertionError(
            f"first deliveries leave the outbox order at {at}: got {order[at : at + 5]}, "
            f"want {wanted[at : at + 5]}"
        )
    for event, want_event in zip((first[m] for m in wanted), expected, strict=True):
        assert event == want_event, f"got {event}, want {want_event}"
    if not duplicates:
        assert repeats == 0, f"{repeats} messages were received twice"


class TcpProxy:
    """A TCP proxy on 127.0.0.1 to ``upstream``, whose connections :meth:`drop` cuts,
    as a network failure or a broker closing them would."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        self.drops = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, 5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def drop(self) -> int:
        """Cut every open connection; returns how many client connections were cut."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.drops += 1
        return len(sockets) // 2

    def connections(self) -> int:
        """Client connections currently open through the proxy."""
        with self._lock:
            return len(self._sockets) // 2

    def close(self) -> None:
        """Stop accepting and cut every connection."""
        with self._lock:
            self._closed = True
        self._server.close()
        self.drop()


def rabbitmq_close_connections(name: str) -> int:
    """Close, from the server side, RabbitMQ's connections whose client named itself
    ``name`` (``?name=`` in the AMQP URL); returns how many were closed. Only the
    relay's connections are touched, so nothing else using the broker is disturbed."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pids = [
        line.split("\t", 1)[0]
        for line in listing.splitlines()
        if f'{{"connection_name","{name}"}}' in line
    ]
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", pid, "esrc relay test: connection dropped"],
            capture_output=True,
            timeout=60,
            check=True,
        )
    return len(pids)
