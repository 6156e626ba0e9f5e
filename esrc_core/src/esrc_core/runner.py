"""The relay process: one named relay kept running against a store and a publisher.

:class:`RelayRunner` is what ``esrc relay`` runs, and what an application runs in a
thread of its own. Around :meth:`Relay.run_once <esrc_core.relay.Relay.run_once>` it
adds what a long-running process needs:

- **One active relay per name.** It takes the store's relay lock for its name
  (:class:`~esrc_core.locks.HasRelayLock`) before publishing; a second runner of the
  same name waits on standby, its publisher already open, and takes over when the
  first one dies. Before each batch it checks that the lock is still held, and stops
  publishing as soon as it is not (then takes it again). A store without relay locks
  runs unlocked, with a warning.
- **In order.** Batches are published one after the other, so the outbox order is the
  publish order. By default each batch is read, published and marked before the next
  is read. With ``read_ahead=True`` and an outbox that can read ahead
  (:class:`~esrc_core.relay.ReadAheadOutbox`, the ``read-ahead`` capability) a second
  thread of the runner's reads the next batch (from after this batch's last event)
  and marks this one while the runner publishes; a failed publish drops what was read
  ahead and waits for the marks in flight, and the next attempt reads from the
  checkpoint again, so nothing is skipped and nothing past the failure is marked.
- **Waking on new events** through the outbox's ``wait_for_events(timeout)`` when it
  has one (:class:`~esrc_core.relay.WaitingOutbox`; PostgreSQL with ``notify=True`` is woken by each
  commit), else by polling every ``poll_interval`` seconds.
- **Reconnecting.** A failure (broker or database away, a publish refused) is logged
  in one line per attempt and retried after an exponential, capped, jittered delay
  (:class:`~esrc_core.backoff.Backoff`); a publisher the runner opened is closed and
  opened again. Nothing is ever skipped: the next attempt starts at the outbox's
  checkpoint.
- **Failing fast** on what no retry can fix: a
  :class:`~esrc_core.errors.BackendConfigError` (a URL, an option or a broker/store
  setup that cannot work), a missing driver or backend, a missing capability. It is
  logged in one line and raised out of :meth:`RelayRunner.run` at once.
- **State as data.** :attr:`RelayRunner.status` is a
  :class:`~esrc_core.relay_status.RelayStatus` (state, lock, events relayed, last
  error...), also handed to an ``on_status`` callback on every change;
  ``esrc relay --status-file`` writes it as JSON.
- **Progress** logged every ``log_interval`` seconds: events relayed, the rate, and
  the lag in events and seconds where the store is
  :class:`~esrc_core.inspection.Inspectable`.
- **A clean stop.** :meth:`RelayRunner.stop` (thread-safe, callable from a signal
  handler) lets the batch in flight finish, publishing and marking, then the lock is
  released and what the runner opened is closed.

Logger: ``esrc.runner``; its records carry the relay name and their values as
fields (``extra=``; names listed in :mod:`esrc_core.logs`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from esrc_core import _telemetry as otel
from esrc_core._signals import STOP_SIGNALS, stop_on_signals
from esrc_core._telemetry import TELEMETRY, Instruments
from esrc_core.backoff import Backoff
from esrc_core.capabilities import Capability, offered, require
from esrc_core.errors import (
    CONFIGURATION_ERRORS,
    BrokerUnavailableError,
    EsrcError,
    PublishError,
    StoreUnavailableError,
)
from esrc_core.inspection import Inspectable, RelayProgress
from esrc_core.locks import HasRelayLock, RelayLock
from esrc_core.logs import log_to_stderr
from esrc_core.plugins import Plugins, plugins
from esrc_core.relay import (
    EventStoreOutbox,
    HasOutbox,
    Publisher,
    ReadAheadOutbox,
    Relay,
    RelayEvent,
    WaitingOutbox,
)
from esrc_core.relay_status import ERROR_KINDS, ErrorKind, RelayStatus, RunnerState
from esrc_core.store import EventStore
from esrc_core.urls import mask_url

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Backoff",
    "LockNotAcquiredError",
    "RelayRunner",
    "RelayStatus",
    "RunnerState",
    "log_to_stderr",
]

log = logging.getLogger("esrc.runner")

_TRANSIENT = (StoreUnavailableError, BrokerUnavailableError, PublishError, OSError)
"""Failures expected while a server is away: logged in one line, without a traceback."""


DEFAULT_BATCH_SIZE = 500
"""Events per batch unless told otherwise.

Measured with ``python -m bench.relay_batches --read-ahead`` (a runner relaying
100,000 events to the ``memory://`` publisher, reading ahead, durable checkpoints;
medians of 3 interleaved rounds on a shared 2-core machine), events per second by
batch size:

=========== ======= ======= ======= ======= =======
store        100     250     500     1000    2000
=========== ======= ======= ======= ======= =======
PostgreSQL   54,245  92,415  117,075 71,794  71,123
SQLite file  66,787  93,236  105,627 115,050 113,392
=========== ======= ======= ======= ======= =======

A second run under four times the load kept the shape: PostgreSQL 18,146 / 31,479 /
40,631 / 26,859 / 25,518, SQLite 17,176 / 27,472 / 37,513 / 35,490 / 38,777.

Up to 500 each batch's fixed costs (a query, a checkpoint commit) still weigh; past it
PostgreSQL gets slower (more objects live at once, and the collector has more to
scan) while SQLite gains within the noise. A broker publisher
waits for its confirmations at the end of each batch, so much smaller batches cost it
too."""

_LOCK_ATTEMPT = 1.0
"""Longest single wait for the relay lock, so that a stop is noticed within it."""
_LOCK_POLL = 0.05
"""Seconds between tries of the relay lock when the runner waits with ``pause``."""
_STOP_POLL = 0.25
"""Longest single wait for new events, so that a stop is noticed within it."""


class LockNotAcquiredError(EsrcError):
    """A :class:`RelayRunner` with a ``lock_timeout`` did not get the relay lock in time:
    another relay of the same name kept it."""


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _error_kind(err: BaseException, *, opening_publisher: bool) -> ErrorKind:
    """Where the failure ``err`` came from (see :data:`~esrc_core.relay_status.ErrorKind`);
    ``opening_publisher`` when it was raised while the publisher was being opened."""
    if isinstance(err, CONFIGURATION_ERRORS) or (
        opening_publisher and not isinstance(err, BrokerUnavailableError | OSError)
    ):
        return "config"
    if isinstance(err, LockNotAcquiredError):
        return "lock"
    if isinstance(err, StoreUnavailableError):
        return "store"
    if opening_publisher or isinstance(err, BrokerUnavailableError | PublishError):
        return "publisher"
    return "other"


def _check_settings(
    *,
    batch_size: int,
    poll_interval: float,
    log_interval: float,
    lock_timeout: float | None,
    status_interval: float,
    read_ahead: bool,
    pause: Callable[[float], None] | None,
) -> None:
    """Raise ``ValueError`` for a :class:`RelayRunner` setting out of range."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not poll_interval > 0:
        raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
    if not log_interval >= 0:
        raise ValueError(f"log_interval must be 0 or more, got {log_interval!r}")
    if lock_timeout is not None and not lock_timeout >= 0:
        raise ValueError(f"lock_timeout must be 0 or more, got {lock_timeout!r}")
    if not status_interval > 0:
        raise ValueError(f"status_interval must be positive, got {status_interval!r}")
    if pause is not None and read_ahead:
        raise ValueError("read_ahead reads on a thread of its own; it cannot go with pause=")


class RelayRunner:
    """Keeps relay ``name`` running from ``store`` to a publisher until :meth:`stop`.

    ``store`` is the caller's store; it needs an outbox (:class:`~esrc_core.relay.HasOutbox`)
    and is not closed by the runner (:meth:`from_urls` opens one and closes it).
    ``publisher`` is either a publisher, used as it is and never closed, or a function
    without arguments that opens one: the runner then opens it when it starts, closes it
    after a failed publish and opens a new one for the next attempt, and closes it at
    the end. Opening may raise :class:`~esrc_core.errors.BrokerUnavailableError` (or
    ``OSError``), which is retried; any other exception is taken as a configuration
    error and leaves :meth:`run`. So does any of
    :data:`~esrc_core.errors.CONFIGURATION_ERRORS` from the store or the publisher at
    any time: no retry fixes those. Everything else is retried, programming errors
    too: a ``TypeError`` or ``AttributeError`` from a driver whose connection went away
    cannot be told apart from a bug, and a bug is reported with its traceback on the
    first failed attempt.

    - ``batch_size``: events per batch (one ``publish_batch`` call); the default, 500,
      is :data:`DEFAULT_BATCH_SIZE`, chosen by measurement.
    - ``poll_interval``: seconds to wait for new events when the outbox is drained
      before looking again; with a :class:`~esrc_core.relay.WaitingOutbox` the wait ends early when
      events arrive. It also bounds how long :meth:`stop` takes while idle.
    - ``log_interval``: seconds between progress lines (``0`` logs none).
    - ``lock_timeout``: seconds to wait for the relay lock before :meth:`run` raises
      :class:`LockNotAcquiredError`; ``None`` (the default) waits as long as it takes.
    - ``backoff``: the delays between attempts after failures
      (:class:`~esrc_core.backoff.Backoff`; by default 0.1 s doubling up to 30 s, with
      jitter). With ``attempts`` set, :meth:`run` raises the failure after that many
      consecutive failed attempts; by default it retries for ever.
    - ``on_status``: called with a :class:`~esrc_core.relay_status.RelayStatus`, in the
      thread running :meth:`run`, on every change of state, lock, failures or last
      error, and while relaying every ``status_interval`` seconds (the relayed count
      and position then move on). It should be quick; an exception from it is logged
      and ignored. ``esrc relay --status-file`` writes each status to a file.
    - ``status_interval``: seconds between the statuses sent while relaying.
    - ``read_ahead`` (default ``False``): with an outbox that offers ``read-ahead``,
      read the next batch and mark the last one on a second thread while publishing
      (see the module docstring). It hides database round trips behind the broker's
      confirmations; on a small machine where the database, the broker and the relay
      share the processors it measured slower (``python -m bench.relay_pipelining``,
      ``python -m bench.relay_batches``), hence off by default. ``esrc relay
      --read-ahead`` turns it on.
    - ``pause``: how the runner waits (while idle, between attempts, between tries
      of the relay lock), called with the seconds to wait at most; it should return
      early once :meth:`stop` was called. By default the thread blocks on an event
      :meth:`stop` sets, and the lock's own ``acquire(timeout)`` waits for it.
      :class:`~esrc_core.async_relay.AsyncRelay` passes one that waits on the event
      loop, and the lock is then tried without waiting between pauses. Not with
      ``read_ahead``.

    One thread calls :meth:`run`; :meth:`stop`, :attr:`status` and the other read-only
    properties may be used from any thread.
    """

    def __init__(
        self,
        store: EventStore,
        publisher: Publisher | Callable[[], Publisher],
        *,
        name: str = "default",
        batch_size: int = DEFAULT_BATCH_SIZE,
        poll_interval: float = 0.5,
        log_interval: float = 10.0,
        lock_timeout: float | None = None,
        backoff: Backoff | None = None,
        on_status: Callable[[RelayStatus], None] | None = None,
        status_interval: float = 1.0,
        read_ahead: bool = False,
        pause: Callable[[float], None] | None = None,
    ) -> None:
        _check_settings(
            batch_size=batch_size,
            poll_interval=poll_interval,
            log_interval=log_interval,
            lock_timeout=lock_timeout,
            status_interval=status_interval,
            read_ahead=read_ahead,
            pause=pause,
        )
        has_outbox = require(store, Capability.OUTBOX, f"relay {name}", HasOutbox)
        self.name = name
        self.store = store
        self.batch_size = batch_size
        self.poll_interval = float(poll_interval)
        self.log_interval = float(log_interval)
        self.lock_timeout = lock_timeout
        self.backoff = backoff if backoff is not None else Backoff()
        self.status_interval = float(status_interval)
        self.read_ahead = bool(read_ahead)
        self._on_status = on_status
        self.outbox: EventStoreOutbox = has_outbox.outbox(name)
        if isinstance(publisher, Publisher):
            self._open_publisher: Callable[[], Publisher] | None = None
            self._publisher: Publisher | None = publisher
        elif callable(publisher):
            self._open_publisher = publisher
            self._publisher = None
        else:
            raise TypeError(f"expected a Publisher or a function opening one, got {publisher!r}")
        self._owns_store = False
        self._stop = threading.Event()
        self._lock: RelayLock | None = None
        self._unlocked_warned = False
        self._state: RunnerState = "starting"
        self._relayed = 0
        self._last_position: int | None = None
        self._took_over = False
        self._last_error: str | None = None
        self._failures = 0
        self._failed_attempts = 0
        self._locks_lost = 0
        self._batches = 0
        self._last_batch_at: dt.datetime | None = None
        self._errors: dict[ErrorKind, int] = dict.fromkeys(ERROR_KINDS, 0)
        self._last_error_kind: ErrorKind | None = None
        self._sent: tuple[object, ...] | None = None
        self._sent_at = 0.0
        self._started = time.monotonic()
        self._last_log = (self._started, 0)
        self._running = False
        self._reader: ThreadPoolExecutor | None = None
        """The thread that marks batches and reads the next one ahead."""
        self._pause_for = pause
        self._lag_measured = -float("inf")
        """When the relay lag was last asked of the store (``time.monotonic()``)."""

    @classmethod
    def from_urls(
        cls,
        store_url: str,
        publisher_url: str,
        *,
        store_options: Mapping[str, Any] | None = None,
        publisher_options: Mapping[str, Any] | None = None,
        plugin_set: Plugins | None = None,
        **settings: Any,
    ) -> RelayRunner:
        """A runner that opens the store and the publisher from URLs, and closes both
        when it stops.

        The store is opened now and the publisher backend resolved now, so an unknown
        scheme or a malformed URL raises here
        (:class:`~esrc_core.errors.UnknownBackendError`, the backend's configuration
        error); the publisher is opened by :meth:`run` and retried while its broker
        cannot be reached. ``settings`` are the constructor's keyword arguments;
        ``plugin_set`` defaults to the process-wide :func:`~esrc_core.plugins.plugins`.
        """
        found = plugin_set if plugin_set is not None else plugins()
        found.resolve(publisher_url, "publisher")
        popts = dict(publisher_options or {})
        store = found.open_event_store(store_url, **dict(store_options or {}))
        try:
            runner = cls(store, lambda: found.open_publisher(publisher_url, **popts), **settings)
        except BaseException:
            store.close()
            raise
        runner._owns_store = True
        log.debug(
            "relay %s: from %s to %s",
            runner.name,
            mask_url(store_url),
            mask_url(publisher_url),
            extra={"relay": runner.name},
        )
        return runner

    # --- what other threads may look at -------------------------------------------------

    @property
    def state(self) -> RunnerState:
        """What the runner is doing now (see :data:`RunnerState`)."""
        return self._state

    @property
    def relayed(self) -> int:
        """Events published and marked since :meth:`run` started, including those of
        batches that failed part of the way."""
        return self._relayed

    @property
    def status(self) -> RelayStatus:
        """The runner's state now, as a value (see
        :class:`~esrc_core.relay_status.RelayStatus`)."""
        return RelayStatus(
            name=self.name,
            state=self._state,
            holds_lock=self._lock is not None,
            took_over=self._took_over,
            relayed=self._relayed,
            last_position=self._last_position,
            consecutive_failures=self._failures,
            failed_attempts=self._failed_attempts,
            locks_lost=self._locks_lost,
            last_error=self._last_error,
            updated_at=dt.datetime.now(dt.UTC),
            pid=os.getpid(),
            batches=self._batches,
            last_batch_at=self._last_batch_at,
            errors=dict(self._errors),
            last_error_kind=self._last_error_kind,
        )

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask :meth:`run` to return: the batch in flight is finished (published and
        marked) first. Thread-safe, and safe to call from a signal handler."""
        self._stop.set()

    @contextlib.contextmanager
    def stop_on_signals(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[None]:
        """Within the block, the first of ``signals`` calls :meth:`stop`; the handlers
        in place before are then restored, so a second signal acts as it did before
        (SIGINT raises ``KeyboardInterrupt``, SIGTERM ends the process at once). The
        previous handlers are restored when the block ends, too. Main thread only:
        elsewhere it installs nothing."""

        def handle(sig: signal.Signals) -> None:
            log.info(
                "relay %s: %s received: stopping after the batch in flight",
                self.name,
                sig.name,
                extra={"relay": self.name, "signal": sig.name},
            )
            self.stop()

        with stop_on_signals(handle, signals):
            yield

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Relay until :meth:`stop` is called; return the number of events relayed.

        Failures are retried (see the class docstring). Raises
        :class:`LockNotAcquiredError` when ``lock_timeout`` runs out, any of
        :data:`~esrc_core.errors.CONFIGURATION_ERRORS` at once (a
        :class:`~esrc_core.errors.BackendConfigError` above all), the error of a
        publisher factory that failed for another reason than an unreachable broker,
        and the last failure once ``backoff.attempts`` consecutive attempts failed.
        Whatever happens, the lock is released and what the runner opened is closed
        before it returns or raises. A runner runs once.
        """
        if self._running:
            raise RuntimeError(f"relay {self.name}: a RelayRunner runs once")
        self._running = True
        self._started = time.monotonic()
        self._last_log = (self._started, 0)
        log.info(
            "relay %s: starting (batch size %d, poll interval %.2fs)",
            self.name,
            self.batch_size,
            self.poll_interval,
            extra={"relay": self.name, "state": self._state},
        )
        self._changed()
        try:
            while not self._stop.is_set():
                opening_publisher = True
                try:
                    # The publisher first: a relay on standby is then ready to publish
                    # the moment it takes the lock over.
                    publisher = self._ensure_publisher()
                    opening_publisher = False
                    if not self._take_lock():
                        break
                    self._set_state("relaying")
                    self._relay_batches(publisher)
                except LockNotAcquiredError as err:
                    self._record_error(err, opening_publisher=False)
                    raise
                except Exception as err:
                    kind = self._record_error(err, opening_publisher=opening_publisher)
                    if kind == "config":
                        log.error(
                            "relay %s: %s; stopping: no retry can fix this",
                            self.name,
                            self._last_error,
                            extra=self._fields(error=self._last_error, error_kind=kind),
                        )
                        raise
                    self._failed(err)
        finally:
            self._shut_down()
        return self._relayed

    def _record_error(self, err: BaseException, *, opening_publisher: bool) -> ErrorKind:
        """Keep ``err`` as the last error and count it by its kind; return the kind."""
        kind = _error_kind(err, opening_publisher=opening_publisher)
        self._last_error = _one_line(err)
        self._last_error_kind = kind
        self._errors[kind] += 1
        return kind

    def _fields(self, **values: object) -> dict[str, object]:
        """The ``extra=`` fields of a log record: the relay name and ``values``."""
        return {"relay": self.name, **values}

    def _relay_batches(self, publisher: Publisher) -> None:
        """Relay batch after batch until stopped or the lock is lost.

        When the outbox can read ahead, a second thread of the runner's (the worker)
        marks each published batch and reads the next one while this thread publishes:
        batch N+1 is read while N is published, and N is marked while N+1 is published.
        The worker runs its jobs in the order given, so marks never overtake each other.
        Before reading from the checkpoint (after a batch that was not full) and
        whenever the loop ends (a failure, a stop, a lost lock) the runner waits for the
        marks in flight and drops what was read ahead: the next read starts from a
        checkpoint that has every published event, and nothing is skipped.
        """
        ahead = (
            offered(self.outbox, Capability.READ_AHEAD, ReadAheadOutbox)
            if self.read_ahead
            else None
        )
        worker = self._worker() if ahead is not None else None
        counting = _CountingOutbox(self, worker)
        relay = Relay(counting, publisher, batch_size=self.batch_size)
        pending: Future[_Read] | None = None
        try:
            while not self._stop.is_set():
                counting.check()
                if not self._still_locked():
                    break
                read_ahead = pending is not None
                if pending is not None:
                    (events, read), pending = pending.result(), None
                else:
                    counting.settle()
                    events, read = _timed(self.outbox.unpublished_events, self.batch_size)
                if worker is not None and ahead is not None and len(events) == self.batch_size:
                    # A full batch: more may be waiting. Read them while this one is
                    # published; they follow its last event, whatever the checkpoint.
                    pending = worker.submit(
                        _timed, ahead.unpublished_events_after, events[-1], self.batch_size
                    )
                count = self._publish(relay, events, read, read_ahead)
                self._after_batch(count)
        except BaseException:
            _drop(pending)
            # The failure in hand is the one to report; a mark that failed as well only
            # leaves the checkpoint further back (duplicates, never a loss).
            with contextlib.suppress(Exception):
                counting.settle()
            raise
        _drop(pending)
        counting.settle()

    def _publish(
        self, relay: Relay, events: list[RelayEvent], read: tuple[int, int], read_ahead: bool
    ) -> int:
        """``relay.publish(events)``, in an ``esrc.relay.batch`` span when telemetry
        records (``read``: when the events were read, see :func:`_timed`)."""
        if events and TELEMETRY.on and (live := TELEMETRY.instruments()) is not None:
            with live.relay_batch(self.name, events, read, read_ahead=read_ahead):
                return relay.publish(events)
        return relay.publish(events)

    def _worker(self) -> ThreadPoolExecutor:
        """The runner's second thread, made when first needed."""
        if self._reader is None:
            self._reader = ThreadPoolExecutor(1, thread_name_prefix=f"esrc-relay-{self.name}")
        return self._reader

    def _still_locked(self) -> bool:
        """Whether the runner may publish: it holds the lock, or runs unlocked. A lost
        lock is released and counted."""
        if self._lock is None or self._lock.held():
            return True
        log.warning(
            "relay %s: lost the relay lock; stopped publishing, taking it again",
            self.name,
            extra=self._fields(),
        )
        lost, self._lock = self._lock, None
        self._took_over = False
        self._locks_lost += 1
        lost.release()
        self._changed()
        return False

    def _after_batch(self, count: int) -> None:
        """Report a batch of ``count`` events published; wait for events after a batch
        that was not full."""
        if not self._recovered() and self._on_status is not None:
            self._status_due()
        self._log_progress()
        if TELEMETRY.on and (live := TELEMETRY.instruments()) is not None:
            self._record_lag(live, count)
        if count < self.batch_size and not self._stop.is_set():
            self._wait_for_events()

    def _record_lag(self, live: Instruments, count: int) -> None:
        """Set the ``esrc.relay.lag`` gauge: 0 after a batch that was not full (the
        outbox was drained), else the store's count of pending events, asked at most
        every ``status_interval`` seconds when the store is
        :class:`~esrc_core.inspection.Inspectable`."""
        attributes = {otel.RELAY_NAME: self.name}
        if count < self.batch_size:
            live.relay_lag.set(0, attributes)
            return
        now = time.monotonic()
        if now - self._lag_measured < self.status_interval:
            return
        try:
            progress = self.progress()
        except Exception as err:
            log.debug("relay %s: could not measure the lag: %s", self.name, _one_line(err))
            return
        if progress is not None:  # None before the first mark lands (read ahead)
            self._lag_measured = now
            live.relay_lag.set(progress.pending, attributes)

    def _recovered(self) -> bool:
        """After an attempt that reached the store and the publisher: if attempts had
        failed before it, log the recovery, reset the count and return ``True``."""
        if not self._failures:
            return False
        log.info(
            "relay %s: recovered after %d failed attempt%s",
            self.name,
            self._failures,
            "" if self._failures == 1 else "s",
            extra=self._fields(attempt=self._failures),
        )
        self._failures = 0
        self._changed()
        return True

    def _wait_for_events(self) -> None:
        waiting = offered(self.outbox, Capability.WAIT, WaitingOutbox)
        if waiting is None:
            self._pause(self.poll_interval)
            return
        # In slices, so that a stop is noticed while the outbox waits.
        deadline = time.monotonic() + self.poll_interval
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or waiting.wait_for_events(min(_STOP_POLL, remaining)):
                return

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less once stopped."""
        if self._pause_for is None:
            self._stop.wait(seconds)
        elif not self._stop.is_set():
            self._pause_for(seconds)

    def _acquire(self, lock: RelayLock, timeout: float) -> bool:
        """``lock.acquire(timeout)``; with ``pause``, tries without waiting and pauses
        between them, so that the waits are the caller's."""
        if self._pause_for is None:
            return lock.acquire(timeout)
        deadline = time.monotonic() + timeout
        while True:
            if lock.acquire(0.0):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                return False
            self._pause(min(_LOCK_POLL, remaining))

    def _take_lock(self) -> bool:
        """Hold the relay lock (or run unlocked); ``False`` if stopped while waiting."""
        if self._lock is not None:
            return True
        store = self.store
        lockable = offered(store, Capability.RELAY_LOCK, HasRelayLock)
        if lockable is None:
            if not self._unlocked_warned:
                log.warning(
                    "relay %s: the store %r cannot lock relay names; running UNLOCKED: "
                    "make sure no other relay named %r runs against it",
                    self.name,
                    store,
                    self.name,
                    extra=self._fields(),
                )
                self._unlocked_warned = True
            return True
        lock = lockable.relay_lock(self.name)
        self._set_state("starting")
        started = time.monotonic()
        deadline = None if self.lock_timeout is None else started + self.lock_timeout
        next_note = started + (self.log_interval or 60.0)
        waited = False
        attempt = 0.0  # the first attempt does not wait, so standby is known at once
        while not self._stop.is_set():
            if self._acquire(lock, attempt):
                self._lock = lock
                self._took_over = waited
                if waited:
                    seconds = time.monotonic() - started
                    log.info(
                        "relay %s: took over the relay lock after %.1fs on standby",
                        self.name,
                        seconds,
                        extra=self._fields(seconds=seconds),
                    )
                else:
                    log.info("relay %s: holding the relay lock", self.name, extra=self._fields())
                return True
            if not waited:
                waited = True
                # The store answered: standing by is a success after failed attempts.
                self._recovered()
                self._set_state("standby")
                log.info(
                    "relay %s: on standby: another relay holds the lock; taking over when it stops",
                    self.name,
                    extra=self._fields(state="standby"),
                )
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise LockNotAcquiredError(
                    f"relay {self.name}: another relay kept the lock for the "
                    f"{self.lock_timeout}s of lock_timeout"
                )
            if now >= next_note:
                log.info(
                    "relay %s: still on standby after %.0fs",
                    self.name,
                    now - started,
                    extra=self._fields(state="standby", seconds=now - started),
                )
                next_note = now + (self.log_interval or 60.0)
            attempt = _LOCK_ATTEMPT if deadline is None else min(_LOCK_ATTEMPT, deadline - now)
        return False

    def _ensure_publisher(self) -> Publisher:
        if self._publisher is not None:
            return self._publisher
        assert self._open_publisher is not None
        # Failing, BrokerUnavailableError and OSError are retried; anything else is
        # taken as a configuration error (see _error_kind).
        self._publisher = self._open_publisher()
        return self._publisher

    def _failed(self, err: Exception) -> None:
        """Log a failed attempt in one line, drop a broken publisher, wait the backoff;
        raise ``err`` when the backoff allows no further attempt."""
        self._failures += 1
        self._failed_attempts += 1
        failure = self._fields(
            attempt=self._failures, error=self._last_error, error_kind=self._last_error_kind
        )
        if self.backoff.exhausted(self._failures):
            log.error(
                "relay %s: attempt %d failed: %s; giving up (the backoff allows %d attempts)",
                self.name,
                self._failures,
                self._last_error,
                self.backoff.attempts,
                extra=failure,
            )
            raise err
        delay = self.backoff.delay(self._failures)
        self._set_state("retrying")
        if isinstance(err, PublishError | BrokerUnavailableError):
            self._close_publisher()
        if isinstance(err, _TRANSIENT) or self._failures > 1:
            log.warning(
                "relay %s: attempt %d failed: %s; retrying in %.2fs",
                self.name,
                self._failures,
                _one_line(err),
                delay,
                extra={**failure, "delay": delay},
            )
        else:
            log.exception(
                "relay %s: attempt %d failed; retrying in %.2fs",
                self.name,
                self._failures,
                delay,
                extra={**failure, "delay": delay},
            )
        self._pause(delay)

    # --- status and progress -------------------------------------------------------------

    def _set_state(self, state: RunnerState) -> None:
        self._state = state
        self._changed()

    def _changed(self) -> None:
        """Send the status if something other than the counts changed since the last."""
        if self._on_status is None:
            return
        key = self._status_key()
        if key != self._sent:
            self._send_status(key)

    def _status_key(self) -> tuple[object, ...]:
        """What, when it changes, is sent at once (the counts only every interval)."""
        return (
            self._state,
            self._lock is not None,
            self._took_over,
            self._failures,
            self._locks_lost,
            self._last_error,
        )

    def _status_due(self) -> None:
        """While relaying: send the status when ``status_interval`` has passed."""
        if time.monotonic() - self._sent_at >= self.status_interval:
            key = self._status_key()
            self._send_status(key)

    def _send_status(self, key: tuple[object, ...]) -> None:
        assert self._on_status is not None
        self._sent = key
        self._sent_at = time.monotonic()
        try:
            self._on_status(self.status)
        except Exception as err:
            log.warning(
                "relay %s: the status callback failed: %s",
                self.name,
                _one_line(err),
                extra=self._fields(error=_one_line(err)),
            )

    def _log_progress(self) -> None:
        if not self.log_interval:
            return
        now = time.monotonic()
        last_at, last_count = self._last_log
        if now - last_at < self.log_interval:
            return
        self._last_log = (now, self._relayed)
        rate = (self._relayed - last_count) / (now - last_at)
        overall = self._relayed / max(now - self._started, 1e-9)
        fields = self._fields(events=self._relayed, position=self._last_position, rate=rate)
        log.info(
            "relay %s: %d events relayed (%.1f/s in the last %.1fs, %.1f/s overall); lag: %s",
            self.name,
            self._relayed,
            rate,
            now - last_at,
            overall,
            self._lag(fields),
            extra=fields,
        )

    def progress(self) -> RelayProgress | None:
        """This relay name's progress in the store (its lag), asked now: ``None`` when
        the store does not report relay progress
        (:class:`~esrc_core.inspection.Inspectable`) or nothing was marked yet under
        the name. Raises what the store raises. Callable from any thread when the
        store may be shared by threads (the ``threads`` capability); it queries the
        store, so it is for monitoring, not for every batch."""
        store = offered(self.store, Capability.INSPECT, Inspectable)
        if store is None:
            return None
        return next((p for p in store.relays() if p.name == self.name), None)

    def _lag(self, fields: dict[str, object]) -> str:
        """The lag as the progress line says it; adds ``lag_events`` and
        ``lag_seconds`` to ``fields`` when known."""
        if offered(self.store, Capability.INSPECT, Inspectable) is None:
            return "unknown (the store does not report relay progress)"
        try:
            progress = self.progress()
        except Exception as err:
            return f"unknown ({_one_line(err)})"
        if progress is None:
            return "unknown (nothing marked yet)"
        fields["lag_events"] = progress.pending
        behind = progress.lag_seconds()
        if behind is None:
            return f"{progress.pending} events"
        fields["lag_seconds"] = behind
        return f"{progress.pending} events, {behind:.2f}s"

    # --- the end -------------------------------------------------------------------------

    def _close_publisher(self) -> None:
        if self._open_publisher is None or self._publisher is None:
            return
        publisher, self._publisher = self._publisher, None
        try:
            publisher.close()
        except Exception as err:
            log.warning(
                "relay %s: closing the publisher failed: %s",
                self.name,
                _one_line(err),
                extra=self._fields(error=_one_line(err)),
            )

    def _shut_down(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=True, cancel_futures=True)
            self._reader = None
        self._close_publisher()
        if self._lock is not None:
            lock, self._lock = self._lock, None
            self._took_over = False
            try:
                lock.release()
            except Exception as err:
                log.warning(
                    "relay %s: releasing the relay lock failed: %s",
                    self.name,
                    _one_line(err),
                    extra=self._fields(error=_one_line(err)),
                )
        if self._owns_store:
            try:
                self.store.close()
            except Exception as err:
                log.warning(
                    "relay %s: closing the store failed: %s",
                    self.name,
                    _one_line(err),
                    extra=self._fields(error=_one_line(err)),
                )
        self._set_state("stopped")
        seconds = time.monotonic() - self._started
        log.info(
            "relay %s: stopped after relaying %d events in %.1fs",
            self.name,
            self._relayed,
            seconds,
            extra=self._fields(
                state="stopped", events=self._relayed, position=self._last_position, seconds=seconds
            ),
        )


_Read = tuple[list[RelayEvent], tuple[int, int]]
"""Events read from the outbox, and when the read began and ended (``time.time_ns()``)."""


def _timed(read: Callable[..., list[RelayEvent]], *args: Any) -> _Read:
    """``read(*args)`` and when it began and ended, for the relay's spans."""
    started = time.time_ns()
    events = read(*args)
    return events, (started, time.time_ns())


def _drop(pending: Future[_Read] | None) -> None:
    """Drop a batch read ahead: let the read finish (its connection goes back to the
    pool), ignoring its result and its error."""
    if pending is not None and not pending.cancel():
        pending.exception()


class _CountingOutbox:
    """The runner's outbox, counting the events marked published into the runner.

    With a ``worker`` it marks there, in the order asked, and returns at once;
    :meth:`check` raises the first failed mark, :meth:`settle` waits for all of them.
    """

    def __init__(self, runner: RelayRunner, worker: ThreadPoolExecutor | None = None) -> None:
        self._runner = runner
        self._outbox = runner.outbox
        self._worker = worker
        self._marks: deque[Future[None]] = deque()

    @property
    def name(self) -> str:
        return self._outbox.name

    def unpublished_events(self, limit: int) -> list[RelayEvent]:
        return self._outbox.unpublished_events(limit)

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        if self._worker is None:
            self._mark(events)
        else:
            self._marks.append(self._worker.submit(self._mark, events))

    def _mark(self, events: Sequence[RelayEvent]) -> None:
        self._outbox.mark_events_as_published(events)
        runner = self._runner
        runner._relayed += len(events)
        runner._last_position = events[-1].position
        runner._batches += 1
        runner._last_batch_at = dt.datetime.now(dt.UTC)

    def check(self) -> None:
        """Forget the marks done; raise the error of the first one that failed."""
        marks = self._marks
        while marks and marks[0].done():
            marks.popleft().result()

    def settle(self) -> None:
        """Wait for every mark in flight; raise the error of the first one that failed
        (after waiting for the others)."""
        failure: BaseException | None = None
        marks = self._marks
        while marks:
            error = marks.popleft().exception()
            if failure is None:
                failure = error
        if failure is not None:
            raise failure
