"""RelayRunner in one process, on the in-memory store: the order, the lock (standby,
take-over, a lost lock, a store without locks), reconnecting after failures, progress
logs and a clean stop. The process and fault tests against real servers are in
test_relay_process.py and test_relay_faults.py."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
from esrc_core.errors import BrokerUnavailableError, PublishError
from esrc_core.events import RawEvent
from esrc_core.relay import EventStoreOutbox, Publisher, RelayEvent
from esrc_core.runner import Backoff, LockNotAcquiredError, RelayRunner, RunnerState
from esrc_memory.publisher import MemoryPublisher
from esrc_memory.store import MemoryEventStore, MemoryRelayLock

FAST = Backoff(initial=0.01, maximum=0.05, rng=random.Random(7))


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


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    """Each delay lies between half and all of min(maximum, initial * 2**(n-1))."""
    backoff = Backoff(initial=0.5, maximum=8.0, rng=random.Random(1))
    for attempt in range(1, 200):
        ceiling = min(8.0, 0.5 * 2 ** min(attempt - 1, 10))
        delay = backoff.delay(attempt)
        assert ceiling / 2 <= delay <= ceiling, (attempt, delay, ceiling)
    with pytest.raises(ValueError, match="initial <= maximum"):
        Backoff(initial=2.0, maximum=1.0)


def test_settings_are_checked(store: MemoryEventStore) -> None:
    """Nonsense settings raise ValueError before anything runs."""
    for setting, bad in (("batch_size", 0), ("poll_interval", 0), ("lock_timeout", -1)):
        with pytest.raises(ValueError, match=setting):
            _runner(store, MemoryPublisher(), **{setting: bad})
