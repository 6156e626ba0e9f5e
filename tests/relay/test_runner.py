"""RelayRunner in one process, on the in-memory store: the order, the lock (standby,
take-over, a lost lock, a store without locks), reconnecting after failures, progress
logs and a clean stop. The process and fault tests against real servers are in
test_relay_process.py and test_relay_faults.py."""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
from esrc_core.backoff import Backoff
from esrc_core.errors import (
    BackendConfigError,
    BrokerUnavailableError,
    PublishError,
    StoreUnavailableError,
)
from esrc_core.events import RawEvent
from esrc_core.relay import EventStoreOutbox, Publisher, RelayEvent
from esrc_core.runner import LockNotAcquiredError, RelayRunner, RelayStatus, RunnerState
from esrc_memory.publisher import MemoryPublisher
from esrc_memory.store import MemoryEventStore, MemoryOutbox, MemoryRelayLock
from esrc_testkit.outbox import ListPublisher

FAST = Backoff(base_delay=0.01, max_delay=0.05, rng=random.Random(7))


def _append(store: MemoryEventStore, count: int, *, aggregates: int = 3) -> None:
    """Append ``count`` events spread over ``aggregates`` streams of type Account."""
    for n in range(count):
        key = n % aggregates
        if store.contains_aggregate("Account", key):
            version = len(store.events("Account", key))
            store.append_events("Account", key, version, [RawEvent("Deposited", b"1")])
        else:
            store.add_aggregate("Account", key, [RawEvent("Opened", b"")])


def _wait_until(done: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


class Running:
    """A runner driven by a thread of its own."""

    def __init__(self, runner: RelayRunner) -> None:
        self.runner = runner
        self.result: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            self.result = self.runner.run()
        except BaseException as err:
            self.error = err

    def wait_state(self, state: RunnerState) -> None:
        _wait_until(lambda: self.runner.state == state, f"the runner is {state}")

    def stop(self) -> int:
        self.runner.stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the runner did not stop within 10s"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@pytest.fixture
def store() -> Iterator[MemoryEventStore]:
    made = MemoryEventStore()
    yield made
    made.close()


def _outbox_order(store: MemoryEventStore) -> list[str]:
    return [e.message_id for e in store.outbox("check-order").unpublished_events(100_000)]


def _runner(
    store: object, publisher: Publisher | Callable[[], Publisher], **settings: object
) -> RelayRunner:
    options: dict[str, object] = {"poll_interval": 0.01, "log_interval": 0, "backoff": FAST}
    options.update(settings)
    return RelayRunner(store, publisher, **options)  # type: ignore[arg-type]


def test_relays_everything_in_outbox_order_and_stops_cleanly(store: MemoryEventStore) -> None:
    """Events appended before and while the runner runs are published once each, in
    the outbox order; stop() returns the count, and the lock is free afterwards."""
    publisher = MemoryPublisher()
    got: list[RelayEvent] = []
    publisher.subscribe(got.append)
    _append(store, 250)
    running = Running(_runner(store, publisher, batch_size=16))
    _append(store, 250)
    _wait_until(lambda: len(got) == 500, "500 events are published")
    assert running.stop() == 500
    assert running.runner.state == "stopped"
    assert [e.message_id for e in got] == _outbox_order(store)
    assert store.outbox().unpublished_events(10) == []
    assert store.relay_lock("default").acquire() is True, "the runner kept the lock"


def test_second_runner_waits_on_standby_and_takes_over(store: MemoryEventStore) -> None:
    """A second runner of the same name publishes nothing while the first one holds
    the lock, and continues where it stopped once it is gone."""
    first_seen: list[RelayEvent] = []
    second_seen: list[RelayEvent] = []
    first_pub, second_pub = MemoryPublisher(), MemoryPublisher()
    first_pub.subscribe(first_seen.append)
    second_pub.subscribe(second_seen.append)
    _append(store, 30)
    first = Running(_runner(store, first_pub, name="orders"))
    first.wait_state("relaying")
    second = Running(_runner(store, second_pub, name="orders"))
    second.wait_state("standby")
    _append(store, 30)
    _wait_until(lambda: len(first_seen) == 60, "the first runner published all 60")
    assert second_seen == [], "the standby runner published while the first held the lock"
    assert first.stop() == 60
    second.wait_state("relaying")
    _append(store, 30)
    _wait_until(lambda: len(second_seen) == 30, "the second runner published the new 30")
    assert second.stop() == 30
    combined = [e.message_id for e in first_seen + second_seen]
    assert combined == _outbox_order(store)


def test_lock_timeout_gives_up(store: MemoryEventStore) -> None:
    """With lock_timeout, a runner that cannot get the lock raises LockNotAcquiredError
    naming the relay, having published nothing."""
    holder = store.relay_lock("orders")
    assert holder.acquire()
    _append(store, 5)
    publisher = MemoryPublisher()
    got: list[RelayEvent] = []
    publisher.subscribe(got.append)
    runner = _runner(store, publisher, name="orders", lock_timeout=0.2)
    with pytest.raises(LockNotAcquiredError, match="relay orders"):
        runner.run()
    assert got == []
    assert runner.state == "stopped"
    holder.release()


class _LosableLock:
    """A memory relay lock whose loss (its session dying) the test can cause."""

    def __init__(self, inner: MemoryRelayLock) -> None:
        self.inner = inner
        self.lost = False
        self.taken_by: MemoryRelayLock | None = None
        """Takes the lock the moment it is lost, as another relay would."""

    @property
    def name(self) -> str:
        return self.inner.name

    def acquire(self, timeout: float = 0.0) -> bool:
        return self.inner.acquire(timeout)

    def held(self) -> bool:
        if self.lost:
            self.inner.release()
            if self.taken_by is not None:
                self.taken_by.acquire()
            return False
        return self.inner.held()

    def release(self) -> None:
        self.inner.release()


class _LockingStore:
    """The memory store, handing out locks the test can make the runner lose."""

    def __init__(self, store: MemoryEventStore) -> None:
        self.store = store
        self.locks: list[_LosableLock] = []

    def outbox(self, name: str = "default") -> EventStoreOutbox:
        return self.store.outbox(name)

    def relay_lock(self, name: str) -> _LosableLock:
        lock = _LosableLock(self.store.relay_lock(name))
        self.locks.append(lock)
        return lock

    def close(self) -> None:
        self.store.close()


def test_a_lost_lock_stops_publishing_until_taken_again(store: MemoryEventStore) -> None:
    """When held() turns false the runner publishes nothing more with that lock, takes
    a new one, and goes on from the checkpoint without skipping."""
    wrapped = _LockingStore(store)
    publisher = MemoryPublisher()
    got: list[RelayEvent] = []
    publisher.subscribe(got.append)
    _append(store, 20)
    running = Running(_runner(wrapped, publisher))
    _wait_until(lambda: len(got) == 20, "the first 20 events are published")
    thief = store.relay_lock("default")
    wrapped.locks[0].taken_by = thief
    wrapped.locks[0].lost = True  # the runner's session died; someone else takes over
    _wait_until(thief.held, "the lost lock is taken by another holder")
    _append(store, 20)
    time.sleep(0.2)
    assert len(got) == 20, "the runner published after it lost the lock"
    assert running.runner.state == "standby"
    assert running.runner.status.locks_lost == 1
    thief.release()
    _wait_until(lambda: len(got) == 40, "the runner takes the lock again and catches up")
    assert running.stop() == 40
    assert [e.message_id for e in got] == _outbox_order(store)
    assert len(wrapped.locks) == 2, "the runner should ask the store for a new lock"


class _UnlockedStore:
    """A store with an outbox but no relay locks."""

    def __init__(self, store: MemoryEventStore) -> None:
        self.store = store

    def outbox(self, name: str = "default") -> EventStoreOutbox:
        return self.store.outbox(name)

    def close(self) -> None:
        self.store.close()


def test_a_store_without_locks_runs_unlocked_with_a_warning(
    store: MemoryEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    """No relay-lock capability: one clear warning, then the relay runs anyway."""
    publisher = MemoryPublisher()
    got: list[RelayEvent] = []
    publisher.subscribe(got.append)
    _append(store, 10)
    with caplog.at_level(logging.INFO, logger="esrc.runner"):
        running = Running(_runner(_UnlockedStore(store), publisher))
        _wait_until(lambda: len(got) == 10, "10 events are published")
        running.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "cannot lock relay names; running UNLOCKED" in warnings[0]


class _Flaky:
    """A publisher factory: the first ``refuse`` opens fail as an unreachable broker;
    each publisher it opens accepts ``accept`` events, then fails mid-batch."""

    def __init__(self, refuse: int, accept: int) -> None:
        self.refuse = refuse
        self.accept = accept
        self.opened = 0
        self.closed = 0
        self.delivered: list[RelayEvent] = []

    def __call__(self) -> Publisher:
        self.opened += 1
        if self.opened <= self.refuse:
            raise BrokerUnavailableError(f"open flaky broker: attempt {self.opened} refused")
        return _FlakyPublisher(self)


class _FlakyPublisher:
    def __init__(self, factory: _Flaky) -> None:
        self.factory = factory
        self.left = factory.accept

    def publish(self, event: RelayEvent) -> None:
        self.publish_batch([event])

    def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        for index, event in enumerate(events):
            if self.left == 0:
                raise PublishError(f"publish {event.message_id}: connection lost", published=index)
            self.left -= 1
            self.factory.delivered.append(event)

    def close(self) -> None:
        self.factory.closed += 1


def test_retries_failures_reopening_the_publisher_without_skipping(
    store: MemoryEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused connections and publishers that die mid-batch are retried with a new
    publisher each time; every event arrives once, in order, and each failed attempt
    is one warning line without a traceback."""
    _append(store, 100)
    flaky = _Flaky(refuse=3, accept=7)
    with caplog.at_level(logging.INFO, logger="esrc.runner"):
        running = Running(_runner(store, flaky, batch_size=10))
        _wait_until(lambda: len(flaky.delivered) == 100, "all 100 events are delivered")
        assert running.stop() == 100
    assert [e.message_id for e in flaky.delivered] == _outbox_order(store)
    # 3 refused opens, then every publisher dies after 7 events: 100 / 7 -> 15 opens.
    assert flaky.opened == 3 + 15
    assert flaky.closed == flaky.opened - 3, "every publisher opened must be closed"
    failures = [r for r in caplog.records if " failed: " in r.getMessage()]
    assert len(failures) == 3 + 14
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in failures)
    assert all("\n" not in r.getMessage() for r in failures)
    assert any("recovered after" in r.getMessage() for r in caplog.records)


def test_a_publisher_configuration_error_is_not_retried(store: MemoryEventStore) -> None:
    """A factory failing for another reason than an unreachable broker leaves run()."""
    opened = 0

    def broken() -> Publisher:
        nonlocal opened
        opened += 1
        raise ValueError("option timeout in 'amqp://x': could not convert 'soon'")

    runner = _runner(store, broken)
    with pytest.raises(ValueError, match="could not convert"):
        runner.run()
    assert opened == 1
    assert runner.state == "stopped"
    assert store.relay_lock("default").acquire(), "the lock must be released"


def test_progress_lines_report_rate_and_lag(
    store: MemoryEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Progress lines come at the log interval with the count, the rate and the lag in
    events and seconds (the memory store reports relay progress)."""
    publisher = MemoryPublisher()
    _append(store, 10)
    with caplog.at_level(logging.INFO, logger="esrc.runner"):
        running = Running(_runner(store, publisher, log_interval=0.05))
        _wait_until(
            lambda: any("lag:" in r.getMessage() for r in caplog.records), "a progress line"
        )
        running.stop()
    line = next(r.getMessage() for r in caplog.records if "lag:" in r.getMessage())
    assert line.startswith("relay default: 10 events relayed (")
    assert "/s overall); lag: 0 events" in line


def test_settings_are_checked(store: MemoryEventStore) -> None:
    """Nonsense settings raise ValueError before anything runs."""
    for setting, bad in (
        ("batch_size", 0),
        ("poll_interval", 0),
        ("lock_timeout", -1),
        ("status_interval", 0),
    ):
        with pytest.raises(ValueError, match=setting):
            _runner(store, MemoryPublisher(), **{setting: bad})


class _RefusingOutbox:
    """An outbox whose reads fail with ``error``, counting them."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.reads = 0
        self.name = "default"

    def unpublished_events(self, limit: int) -> list[RelayEvent]:
        self.reads += 1
        raise self.error

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        raise AssertionError("nothing was read, so nothing can be marked")


class _RefusingStore:
    """The memory store (its relay locks) with an outbox that cannot work."""

    def __init__(self, store: MemoryEventStore, outbox: _RefusingOutbox) -> None:
        self.store = store
        self.refusing = outbox

    def outbox(self, name: str = "default") -> EventStoreOutbox:
        return self.refusing

    def relay_lock(self, name: str) -> MemoryRelayLock:
        return self.store.relay_lock(name)

    def close(self) -> None:
        self.store.close()


class _RefusingPublisher:
    """A publisher whose every publish fails with ``error``, counting the calls."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def publish(self, event: RelayEvent) -> None:
        self.calls += 1
        raise self.error

    def close(self) -> None:
        pass


CONFIG_ERROR = BackendConfigError(
    "open nats://127.0.0.1:4222/?stream=orders: stream 'orders' is bound to subjects "
    "['billing.>'], not 'orders.>'"
)


@pytest.mark.parametrize("where", ["opening-the-publisher", "publishing", "reading-the-outbox"])
def test_a_backend_config_error_stops_the_runner_at_once(
    store: MemoryEventStore, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    """BackendConfigError, wherever it comes from, is not retried: run() raises it on
    the first attempt after one ERROR line without traceback, releases the lock, and
    the status says stopped with the error."""
    _append(store, 5)
    tries: Callable[[], int]
    relay_store: object = store
    publisher: Publisher | Callable[[], Publisher]
    if where == "opening-the-publisher":
        opened = 0

        def open_broken() -> Publisher:
            nonlocal opened
            opened += 1
            raise CONFIG_ERROR

        publisher, tries = open_broken, lambda: opened
    elif where == "publishing":
        refusing = _RefusingPublisher(CONFIG_ERROR)
        publisher, tries = refusing, lambda: refusing.calls
    else:
        outbox = _RefusingOutbox(CONFIG_ERROR)
        relay_store = _RefusingStore(store, outbox)
        publisher, tries = MemoryPublisher(), lambda: outbox.reads
    runner = _runner(relay_store, publisher, backoff=Backoff(base_delay=5.0, max_delay=5.0))
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="esrc.runner"), pytest.raises(BackendConfigError):
        runner.run()
    assert time.monotonic() - started < 2.0, "the runner waited a backoff delay"
    assert tries() == 1
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].levelno == logging.ERROR
    assert errors[0].exc_info is None
    assert "BackendConfigError: open nats://" in errors[0].getMessage()
    status = runner.status
    assert (status.state, status.holds_lock, status.consecutive_failures) == ("stopped", False, 0)
    assert str(status.last_error).startswith("BackendConfigError:")
    assert store.relay_lock("default").acquire(), "the lock must be released"


def test_with_attempts_the_runner_gives_up_after_that_many_failures(
    store: MemoryEventStore,
) -> None:
    """A backoff with attempts=3 makes run() raise the third consecutive failure."""
    _append(store, 5)
    refusing = _RefusingPublisher(PublishError("broker refused the event"))
    runner = _runner(
        store, refusing, backoff=Backoff(base_delay=0.001, max_delay=0.001, attempts=3)
    )
    with pytest.raises(PublishError, match="broker refused"):
        runner.run()
    assert refusing.calls == 3
    assert runner.status.consecutive_failures == 3
    assert runner.state == "stopped"


def test_stopped_before_it_runs_publishes_nothing(store: MemoryEventStore) -> None:
    _append(store, 5)
    refusing = _RefusingPublisher(AssertionError("published after stop()"))
    runner = _runner(store, refusing)
    runner.stop()
    assert runner.run() == 0
    assert refusing.calls == 0
    assert runner.state == "stopped"


class _Statuses:
    """An on_status callback keeping every status it gets."""

    def __init__(self) -> None:
        self.seen: list[RelayStatus] = []
        self._lock = threading.Lock()

    def __call__(self, status: RelayStatus) -> None:
        with self._lock:
            self.seen.append(status)

    def states(self) -> list[str]:
        with self._lock:
            return [s.state for s in self.seen]

    def last(self) -> RelayStatus:
        with self._lock:
            return self.seen[-1]


def test_status_follows_standby_take_over_and_stop(store: MemoryEventStore) -> None:
    """The statuses sent: starting, relaying with the lock; the second runner
    starting, standby, then relaying with took_over once the first stops; each ends
    stopped, without the lock, with its relayed count and last position (with a
    status_interval longer than the test, no status only moves the count on)."""
    _append(store, 30)
    positions = [e.position for e in store.outbox("check").unpublished_events(100)]
    first_seen, second_seen = _Statuses(), _Statuses()
    quiet = {"name": "orders", "status_interval": 3600}
    first = Running(_runner(store, MemoryPublisher(), on_status=first_seen, **quiet))
    first.wait_state("relaying")
    _wait_until(lambda: first.runner.relayed == 30, "the first runner relays 30")
    second = Running(_runner(store, MemoryPublisher(), on_status=second_seen, **quiet))
    second.wait_state("standby")
    assert first.stop() == 30
    second.wait_state("relaying")
    _append(store, 6)
    _wait_until(lambda: second.runner.relayed == 6, "the second runner relays 6")
    assert second.stop() == 6

    assert first_seen.states() == ["starting", "relaying", "stopped"]
    relaying = first_seen.seen[1]
    assert (relaying.name, relaying.holds_lock, relaying.took_over) == ("orders", True, False)
    final = first_seen.last()
    assert (final.holds_lock, final.relayed, final.last_position) == (False, 30, positions[-1])
    assert (final.consecutive_failures, final.last_error) == (0, None)

    assert second_seen.states() == ["starting", "standby", "relaying", "stopped"]
    standby = second_seen.seen[1]
    assert (standby.holds_lock, standby.took_over, standby.relayed) == (False, False, 0)
    took_over = second_seen.seen[2]
    assert (took_over.holds_lock, took_over.took_over) == (True, True)
    assert second_seen.last().relayed == 6
    assert {s.pid for s in first_seen.seen + second_seen.seen} == {os.getpid()}
    stamps = [s.updated_at for s in second_seen.seen]
    assert stamps == sorted(stamps)


def test_status_reports_failures_and_recovery(store: MemoryEventStore) -> None:
    """A failed attempt sends retrying with the failure count and the error in one
    line; the first success after it sends relaying with failures back at 0 and the
    last error kept."""
    _append(store, 20)
    seen = _Statuses()
    flaky = _Flaky(refuse=2, accept=1000)
    running = Running(_runner(store, flaky, on_status=seen))
    _wait_until(lambda: running.runner.relayed == 20, "20 events are relayed")
    running.stop()
    retrying = [s for s in seen.seen if s.state == "retrying"]
    assert [s.consecutive_failures for s in retrying] == [1, 2]
    assert retrying[0].last_error == (
        "BrokerUnavailableError: open flaky broker: attempt 1 refused"
    )
    recovered = next(s for s in seen.seen if s.state == "relaying" and s.consecutive_failures == 0)
    assert recovered.last_error == "BrokerUnavailableError: open flaky broker: attempt 2 refused"
    assert (recovered.failed_attempts, seen.last().failed_attempts) == (2, 2)


def test_status_is_sent_every_status_interval_while_relaying(store: MemoryEventStore) -> None:
    """While relaying, statuses keep coming every status_interval with the count so far
    (also while idle, so updated_at shows the runner is alive)."""
    seen = _Statuses()
    running = Running(_runner(store, MemoryPublisher(), on_status=seen, status_interval=0.05))
    running.wait_state("relaying")
    _append(store, 12)
    _wait_until(lambda: seen.last().relayed == 12, "a status with the 12 events relayed")
    sent = len(seen.seen)
    _wait_until(lambda: len(seen.seen) >= sent + 3, "statuses keep coming while idle")
    running.stop()
    assert seen.last().state == "stopped"


def test_a_failing_status_callback_is_logged_and_does_not_stop_the_relay(
    store: MemoryEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(status: RelayStatus) -> None:
        raise OSError(f"no space left on device writing the status of {status.name}")

    publisher = MemoryPublisher()
    got: list[RelayEvent] = []
    publisher.subscribe(got.append)
    _append(store, 10)
    with caplog.at_level(logging.WARNING, logger="esrc.runner"):
        running = Running(_runner(store, publisher, on_status=broken))
        _wait_until(lambda: len(got) == 10, "10 events are published")
        assert running.stop() == 10
    assert any("the status callback failed: OSError" in r.getMessage() for r in caplog.records)


class _UnsteadyOutbox:
    """The memory store's outbox, reading ahead, whose every ``fail_every``-th mark and
    read ahead fails as if the database went away (the mark's events stay unmarked)."""

    def __init__(self, outbox: MemoryOutbox, fail_every: int) -> None:
        self.outbox = outbox
        self.name = outbox.name
        self.fail_every = fail_every
        self.calls = 0
        self.failed_marks = 0
        self.failed_reads = 0

    def _fails(self) -> bool:
        self.calls += 1
        return self.calls % self.fail_every == 0

    def unpublished_events(self, limit: int) -> list[RelayEvent]:
        return self.outbox.unpublished_events(limit)

    def unpublished_events_after(self, event: RelayEvent, limit: int) -> list[RelayEvent]:
        if self._fails():
            self.failed_reads += 1
            raise StoreUnavailableError(f"read after {event.message_id}: database away")
        return self.outbox.unpublished_events_after(event, limit)

    def mark_events_as_published(self, events: Sequence[RelayEvent]) -> None:
        if self._fails():
            self.failed_marks += 1
            raise StoreUnavailableError(f"mark up to {events[-1].message_id}: database away")
        self.outbox.mark_events_as_published(events)


class _UnsteadyStore:
    """The memory store (its relay locks) with an :class:`_UnsteadyOutbox`."""

    def __init__(self, store: MemoryEventStore, outbox: _UnsteadyOutbox) -> None:
        self.store = store
        self.unsteady = outbox

    def outbox(self, name: str = "default") -> _UnsteadyOutbox:
        return self.unsteady

    def relay_lock(self, name: str) -> MemoryRelayLock:
        return self.store.relay_lock(name)

    def close(self) -> None:
        self.store.close()


def test_reading_ahead_with_failing_marks_and_reads_skips_nothing(
    store: MemoryEventStore,
) -> None:
    """With read_ahead=True the runner reads ahead and marks on its second thread.
    When marks and reads ahead fail now and then, each failure is retried from the
    checkpoint: every event
    arrives, first in the outbox order; what arrives again (published after the last
    mark that succeeded) starts over at the checkpoint and goes on in order; at the end
    everything is marked."""
    _append(store, 200)
    unsteady = _UnsteadyOutbox(store.outbox("default"), fail_every=4)
    publisher = ListPublisher()
    running = Running(
        _runner(_UnsteadyStore(store, unsteady), publisher, batch_size=10, read_ahead=True)
    )
    _wait_until(lambda: store.outbox("default").unpublished_events(1) == [], "everything is marked")
    running.stop()
    assert unsteady.failed_marks > 0
    assert unsteady.failed_reads > 0
    order = _outbox_order(store)
    delivered = [e.message_id for e in publisher.published]
    assert sorted(set(delivered)) == sorted(order), "every event arrives"
    first_seen = list(dict.fromkeys(delivered))
    assert first_seen == order, "events first arrive in the outbox order"
    # Each arrival after the first starts over at the checkpoint: from there on the
    # events come again in order.
    position = {m: n for n, m in enumerate(order)}
    for before, after in itertools.pairwise(delivered):
        assert position[after] == position[before] + 1 or position[after] <= position[before]
