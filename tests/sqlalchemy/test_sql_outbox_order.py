"""The outbox never skips an event whose transaction commits late: a transaction held
open while later ones commit and are relayed, and many writers committing after
random delays while a reader relays and restarts."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
import sqlalchemy as sa
from esrc_sqlalchemy.testing import PrefixPool, begin_write, dialect_of, stream_key

from esrc_core import OptimisticConcurrencyError, RawEvent, RelayEvent
from esrc_sqlalchemy import SqlEventStore, SqlOutbox

SETTLE_SECONDS = 60.0
"""How long a test waits for events another session still holds back (on PostgreSQL,
any transaction open on the server delays the outbox) before it fails."""
NOT_BLOCKED_SECONDS = 30.0
"""How long an operation that must not wait on a lock may take before the test says it
is blocked (a liveness bound, far above the milliseconds it takes)."""


def _rows(*names: str) -> list[tuple[str, bytes, str | None]]:
    return [(name, name.encode(), None) for name in names]


def _key(aggregate_id: str) -> tuple[str, str]:
    return stream_key("Order", aggregate_id, "test")


def _drain(outbox: SqlOutbox, count: int) -> list[RelayEvent]:
    """Read and mark until ``count`` events came, waiting for transactions of other
    sessions on the server to end; fails after :data:`SETTLE_SECONDS`."""
    got: list[RelayEvent] = []
    deadline = time.monotonic() + SETTLE_SECONDS
    while len(got) < count:
        batch = outbox.unpublished_events(100)
        got.extend(batch)
        outbox.mark_events_as_published(batch)
        if not batch:
            assert time.monotonic() < deadline, f"got {len(got)} of {count} events: {got}"
            time.sleep(0.05)
    assert len(got) == count, f"got {len(got)} events, want {count}: {got}"
    return got


def _names(events: Sequence[RelayEvent]) -> list[str]:
    return [e.event.name for e in events]


def _opened(store: SqlEventStore) -> SqlOutbox:
    for aggregate_id in ("a", "b", "c"):
        store.add_aggregate("Order", aggregate_id, [RawEvent("Created", b"")])
    outbox = store.outbox("relay")
    _drain(outbox, 3)
    return outbox


def test_postgres_transaction_committing_late_is_relayed_first(postgresql_pool: PrefixPool) -> None:
    """A appends and stays open; B and C append and commit. The outbox holds B and C
    back while A is in flight (A's transaction id is older), then returns A, B, C."""
    store = postgresql_pool.open()
    outbox = _opened(store)
    with store.engine.connect() as a:
        assert dialect_of(store).extend_stream(a, _key("a"), 1, _rows("A"))
        store.append_events("Order", "b", 1, [RawEvent("B", b"B")])
        store.append_events("Order", "c", 1, [RawEvent("C", b"C")])
        while_open = outbox.unpublished_events(100)
        outbox.mark_events_as_published(while_open)
        a.commit()
    assert while_open == []
    after = _drain(store.outbox("relay"), 3)
    assert _names(after) == ["A", "B", "C"]


def test_postgres_order_is_the_order_transactions_took_their_ids_not_commit_order(
    postgresql_pool: PrefixPool,
) -> None:
    """Nested slow transactions: B's transaction takes its id first (as one that wrote
    elsewhere before appending would), then A appends (an older position than B's
    append below) and C appends and commits. Commit order is C, A, B; position order
    A, B, C. The outbox holds everything back while B is open, even A after A
    committed, and then relays B, A, C: the order in which the transactions took
    their ids. Nothing is skipped and each stream keeps its version order, but A,
    which committed before B, is relayed after it: the order is not commit order."""
    store = postgresql_pool.open()
    outbox = _opened(store)
    dialect = dialect_of(store)
    with store.engine.connect() as b, store.engine.connect() as a:
        b.execute(sa.text("SELECT pg_current_xact_id()"))
        assert dialect.extend_stream(a, _key("a"), 1, _rows("A"))
        assert dialect.extend_stream(b, _key("b"), 1, _rows("B"))
        store.append_events("Order", "c", 1, [RawEvent("C", b"C")])
        a.commit()
        while_b_open = outbox.unpublished_events(100)
        b.commit()
    assert while_b_open == [], "events were handed out while an older transaction was open"
    after = _drain(store.outbox("relay"), 3)
    assert _names(after) == ["B", "A", "C"], "want the order of the transactions' ids"
    by_position = sorted(after, key=lambda e: e.position)
    assert _names(by_position) == ["A", "B", "C"], "A was meant to take the lowest position"


def test_mariadb_append_that_commits_late_is_relayed_after_earlier_commits(
    mysql_pool: PrefixPool,
) -> None:
    """A claims its stream and stays open before its commit step; B and C append,
    commit and are relayed and marked; then A inserts and commits: A is still relayed."""
    store = mysql_pool.open()
    outbox = _opened(store)
    dialect = dialect_of(store)
    with store.engine.connect() as a:
        begin_write(store, a)
        assert dialect.claim_stream(a, _key("a"), 1, 1)
        store.append_events("Order", "b", 1, [RawEvent("B", b"B")])
        store.append_events("Order", "c", 1, [RawEvent("C", b"C")])
        first = _drain(outbox, 2)
        dialect.insert_events(a, _key("a"), 1, _rows("A"))
        a.commit()
    assert sorted(_names(first)) == ["B", "C"]
    assert _names(_drain(store.outbox("relay"), 1)) == ["A"]


def test_sqlite_commit_step_holder_goes_first_and_others_wait(tmp_path: object) -> None:
    """A inserts its events and stays open (holding SQLite's database lock); B and C
    append from threads meanwhile. Nothing new is visible until A commits; then A
    comes first, B and C after it."""
    pool = PrefixPool(f"sqlite:///{tmp_path}/order.db")
    store = pool.open()
    try:
        outbox = _opened(store)
        writers: list[threading.Thread] = []
        errors: list[BaseException] = []

        def append(aggregate_id: str, name: str) -> Callable[[], None]:
            def run() -> None:
                try:
                    store.append_events("Order", aggregate_id, 1, [RawEvent(name, b"")])
                except BaseException as err:
                    errors.append(err)

            return run

        with store.engine.connect() as a:
            begin_write(store, a)
            assert dialect_of(store).extend_stream(a, _key("a"), 1, _rows("A"))
            for aggregate_id, name in (("b", "B"), ("c", "C")):
                writers.append(threading.Thread(target=append(aggregate_id, name)))
                writers[-1].start()
            while_open = outbox.unpublished_events(100)
            a.commit()
        for writer in writers:
            writer.join()
        assert errors == []
        assert while_open == []
        after = _drain(outbox, 3)
        assert _names(after)[0] == "A"
        assert sorted(_names(after)[1:]) == ["B", "C"]
    finally:
        pool.drop()


def _in_thread(work: Callable[[], object], what: str) -> None:
    """Run ``work`` in a thread and fail if it does not finish within
    :data:`NOT_BLOCKED_SECONDS` (it would be waiting on a lock) or raises."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(NOT_BLOCKED_SECONDS)
    assert not thread.is_alive(), f"{what}: still waiting after {NOT_BLOCKED_SECONDS}s"
    assert errors == [], f"{what}: {errors!r}"


def test_mariadb_append_is_not_blocked_by_an_open_append_to_another_aggregate(
    mysql_pool: PrefixPool,
) -> None:
    """A claims its stream and inserts its event, and stays open; an append to another
    aggregate, an add of a new one, and an append while another session holds the
    sequencer lock all finish without waiting. After A commits every event is relayed."""
    store = mysql_pool.open()
    outbox = _opened(store)
    dialect = dialect_of(store)
    assert store.tables.sequencer is not None
    lock = store.tables.sequencer.select().with_for_update()
    with store.engine.connect() as a, store.engine.connect() as sequencer:
        begin_write(store, a)
        assert dialect.extend_stream(a, _key("a"), 1, _rows("A"))
        _in_thread(
            lambda: store.append_events("Order", "b", 1, [RawEvent("B", b"")]),
            "append to b while an append to a is open",
        )
        _in_thread(
            lambda: store.add_aggregate("Order", "d", [RawEvent("D", b"")]),
            "add d while an append to a is open",
        )
        begin_write(store, sequencer)
        sequencer.execute(lock)
        _in_thread(
            lambda: store.append_events("Order", "c", 1, [RawEvent("C", b"")]),
            "append to c while another session holds the sequencer lock",
        )
        sequencer.rollback()
        a.commit()
    assert sorted(_names(_drain(outbox, 4))) == ["A", "B", "C", "D"]


def test_mariadb_outbox_pass_is_not_blocked_by_an_open_append_and_relays_it_later(
    mysql_pool: PrefixPool,
) -> None:
    """A inserts its event and stays open; B commits. The outbox (its sequencing pass
    included) returns B without waiting for A and without seeing A; once A commits,
    the next read returns A - after B, which was already relayed."""
    store = mysql_pool.open()
    outbox = _opened(store)
    with store.engine.connect() as a:
        begin_write(store, a)
        assert dialect_of(store).extend_stream(a, _key("a"), 1, _rows("A"))
        store.append_events("Order", "b", 1, [RawEvent("B", b"")])
        while_open: list[RelayEvent] = []
        _in_thread(
            lambda: while_open.extend(outbox.unpublished_events(100)),
            "outbox read while an append is open",
        )
        assert _names(while_open) == ["B"]
        outbox.mark_events_as_published(while_open)
        _in_thread(
            lambda: while_open.extend(outbox.unpublished_events(100)),
            "second outbox read while an append is open",
        )
        assert _names(while_open) == ["B"]
        a.commit()
    late = _drain(outbox, 1)
    assert _names(late) == ["A"]
    assert _names(_drain(store.outbox("fresh"), 5)) == ["Created"] * 3 + ["B", "A"]


def _check_relayed(store: SqlEventStore, relayed: list[RelayEvent], streams: int) -> None:
    """Every stored event relayed exactly once, in an order consistent with versions,
    and the same order a fresh relay name sees."""
    ids = Counter(e.message_id for e in relayed)
    repeated = [m for m, n in ids.items() if n > 1]
    assert repeated == [], f"relayed more than once: {repeated}"
    total = 0
    for n in range(streams):
        versions = [e.version for e in relayed if e.aggregate_id == f"agg-{n}"]
        history = store.events("Order", f"agg-{n}")
        total += len(history)
        assert versions == list(range(1, len(history) + 1)), f"agg-{n}: {versions}"
        got = [e.event for e in relayed if e.aggregate_id == f"agg-{n}"]
        assert got == history
    assert len(relayed) == total
    fresh = _drain(store.outbox("checker"), total)
    assert [e.message_id for e in fresh] == [e.message_id for e in relayed]


class _Traffic:
    """Writers appending to shared streams with random delays, and a relay reading
    and marking concurrently, restarting its outbox object every few batches."""

    def __init__(self, store: SqlEventStore, streams: int) -> None:
        self.store = store
        self.streams = streams
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        self.relayed: list[RelayEvent] = []

    def append_slowly(self, rng: random.Random, aggregate_id: str) -> None:
        """Claim the stream, wait, insert, wait, commit; retry on a lost claim."""
        store, dialect = self.store, dialect_of(self.store)
        while True:
            version = len(store.events("Order", aggregate_id))
            rows = _rows(*(f"E{rng.randrange(10**6)}" for _ in range(rng.randint(1, 3))))
            key = _key(aggregate_id)
            with store.engine.connect() as conn:
                begin_write(store, conn)
                if not dialect.claim_stream(conn, key, version, len(rows)):
                    conn.rollback()
                    continue
                time.sleep(rng.uniform(0, 0.01))
                dialect.insert_events(conn, key, version, rows)
                time.sleep(rng.uniform(0, 0.003))
                conn.commit()
            return

    def append(self, aggregate_id: str) -> None:
        """An ordinary append through the store; retry on a conflict."""
        while True:
            version = len(self.store.events("Order", aggregate_id))
            try:
                self.store.append_events("Order", aggregate_id, version, [RawEvent("S", b"")])
            except OptimisticConcurrencyError:
                continue
            return

    def writer(self, seed: int, appends: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(appends):
                aggregate_id = f"agg-{rng.randrange(self.streams)}"
                if rng.random() < 0.3:
                    self.append(aggregate_id)
                else:
                    self.append_slowly(rng, aggregate_id)
        except BaseException as err:
            self.errors.append(err)

    def reader(self) -> None:
        rng = random.Random(99)
        outbox = self.store.outbox("relay")
        try:
            batches = 0
            while True:
                finished = self.done.is_set()
                batch = outbox.unpublished_events(rng.randint(1, 7))
                self.relayed.extend(batch)
                outbox.mark_events_as_published(batch)
                batches += 1
                if batches % 5 == 0:
                    outbox = self.store.outbox("relay")
                if finished and not batch:
                    return
                if not batch:
                    time.sleep(0.002)
        except BaseException as err:
            self.errors.append(err)

    def run(self, writers: int, appends: int) -> None:
        threads = [
            threading.Thread(target=self.writer, args=(seed, appends)) for seed in range(writers)
        ]
        relay = threading.Thread(target=self.reader)
        relay.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.done.set()
        relay.join()


def test_concurrent_writers_with_commit_delays_relay_every_event_once_postgres_mariadb_sqlite(
    any_pool: PrefixPool,
) -> None:
    """Six writers append to eight shared streams, most appends committing after random
    delays (between claiming the stream and inserting, and before the commit),
    while a reader relays in random batch sizes and restarts (a new outbox object)
    every few batches. At the end every event was relayed exactly once, in an order
    consistent with each stream's versions, and a fresh relay name sees the same order."""
    store = any_pool.open()
    streams = 8
    for n in range(streams):
        store.add_aggregate("Order", f"agg-{n}", [RawEvent("Created", b"0")])
    traffic = _Traffic(store, streams)
    traffic.run(writers=6, appends=15)
    assert traffic.errors == []
    relayed = traffic.relayed
    total = sum(len(store.events("Order", f"agg-{n}")) for n in range(streams))
    relayed.extend(_drain(store.outbox("relay"), total - len(relayed)))
    _check_relayed(store, relayed, streams)


def test_postgres_wait_for_events_wakes_on_notify(postgresql_pool: PrefixPool) -> None:
    """With ``notify=True`` a waiting outbox wakes up when another thread appends; with
    nothing to read it returns False after its timeout."""
    plain = postgresql_pool.open()
    store = SqlEventStore(postgresql_pool.url, table_prefix=plain.table_prefix, notify=True)
    try:
        outbox = store.outbox("waiter")
        assert outbox.wait_for_events(0.1) is False
        woke: list[bool] = []
        waiter = threading.Thread(target=lambda: woke.append(outbox.wait_for_events(60)))
        waiter.start()
        store.add_aggregate("Order", "n-1", [RawEvent("Created", b"")])
        waiter.join()
        assert woke == [True]
        assert _names(_drain(outbox, 1)) == ["Created"]
    finally:
        store.close()


def test_sqlite_wait_for_events_polls(tmp_path: object) -> None:
    """Without LISTEN/NOTIFY ``wait_for_events`` polls: True when there is something to
    read, False after the timeout when there is not."""
    store = SqlEventStore(f"sqlite:///{tmp_path}/wait.db")
    try:
        outbox = store.outbox()
        assert outbox.wait_for_events(0.05) is False
        store.add_aggregate("Order", 1, [RawEvent("Created", b"")])
        assert outbox.wait_for_events(60) is True
    finally:
        store.close()


# --- reading ahead: after the last event handed out, before it is marked ---------------


def _handed_out(store: SqlEventStore) -> tuple[SqlOutbox, list[RelayEvent]]:
    """An outbox past the three first events, and one more event it handed out but
    which is not marked."""
    outbox = _opened(store)
    outbox.hold_back_wait = 0.0
    store.add_aggregate("Order", "x", [RawEvent("X", b"")])
    handed = outbox.unpublished_events(100)
    assert _names(handed) == ["X"]
    return outbox, handed


def test_postgres_reading_ahead_holds_back_a_late_commit_then_returns_it_first(
    postgresql_pool: PrefixPool,
) -> None:
    """X was handed out, not marked. A appends and stays open; B and C commit. Reading
    after X returns nothing while A is in flight; once A commits, reading after X
    returns A, B, C: the late commit is not skipped by reading ahead."""
    store = postgresql_pool.open()
    outbox, handed = _handed_out(store)
    with store.engine.connect() as a:
        assert dialect_of(store).extend_stream(a, _key("a"), 1, _rows("A"))
        store.append_events("Order", "b", 1, [RawEvent("B", b"B")])
        store.append_events("Order", "c", 1, [RawEvent("C", b"C")])
        assert outbox.unpublished_events_after(handed[-1], 100) == []
        a.commit()
    ahead = outbox.unpublished_events_after(handed[-1], 100)
    assert _names(ahead) == ["A", "B", "C"]
    outbox.mark_events_as_published(handed)
    outbox.mark_events_as_published(ahead)
    assert outbox.unpublished_events(100) == []
    assert _names(_drain(store.outbox("fresh"), 7)) == ["Created"] * 3 + ["X", "A", "B", "C"]


def test_mariadb_reading_ahead_returns_a_late_commit_after_what_it_handed_out(
    mysql_pool: PrefixPool,
) -> None:
    """X was handed out, not marked. A claims its stream and stays open; B and C
    commit: reading after X returns them. Then A inserts and commits: reading after C
    returns A. Marked in that order, the outbox is empty."""
    store = mysql_pool.open()
    outbox, handed = _handed_out(store)
    dialect = dialect_of(store)
    with store.engine.connect() as a:
        begin_write(store, a)
        assert dialect.claim_stream(a, _key("a"), 1, 1)
        store.append_events("Order", "b", 1, [RawEvent("B", b"B")])
        store.append_events("Order", "c", 1, [RawEvent("C", b"C")])
        first = outbox.unpublished_events_after(handed[-1], 100)
        assert _names(first) == ["B", "C"]
        dialect.insert_events(a, _key("a"), 1, _rows("A"))
        a.commit()
    late = outbox.unpublished_events_after(first[-1], 100)
    assert _names(late) == ["A"]
    for batch in (handed, first, late):
        outbox.mark_events_as_published(batch)
    assert outbox.unpublished_events(100) == []
    assert _names(_drain(store.outbox("fresh"), 7)) == ["Created"] * 3 + ["X", "B", "C", "A"]


def test_sqlite_reading_ahead_sees_the_commit_step_holder_first(tmp_path: object) -> None:
    """X was handed out, not marked. A inserts and stays open (holding the database
    lock); B and C append from threads meanwhile. Reading after X returns nothing until
    A commits, then A first, B and C after it."""
    pool = PrefixPool(f"sqlite:///{tmp_path}/ahead.db")
    store = pool.open()
    try:
        outbox, handed = _handed_out(store)
        errors: list[BaseException] = []

        def append(aggregate_id: str, name: str) -> None:
            try:
                store.append_events("Order", aggregate_id, 1, [RawEvent(name, b"")])
            except BaseException as err:
                errors.append(err)

        with store.engine.connect() as a:
            begin_write(store, a)
            assert dialect_of(store).extend_stream(a, _key("a"), 1, _rows("A"))
            writers = [
                threading.Thread(target=append, args=(aggregate_id, name))
                for aggregate_id, name in (("b", "B"), ("c", "C"))
            ]
            for writer in writers:
                writer.start()
            while_open = outbox.unpublished_events_after(handed[-1], 100)
            a.commit()
        for writer in writers:
            writer.join()
        assert errors == []
        assert while_open == []
        ahead = outbox.unpublished_events_after(handed[-1], 100)
        assert _names(ahead)[0] == "A"
        assert sorted(_names(ahead)[1:]) == ["B", "C"]
    finally:
        pool.drop()


class _ReadingAheadTraffic(_Traffic):
    """:class:`_Traffic` with a reader that reads up to three batches ahead of what it
    has marked, publishes the oldest (records and marks it), and now and then fails
    in the middle of a batch: it keeps and marks the events before the failure, drops
    everything read ahead and reads from the checkpoint again."""

    def reader(self) -> None:
        rng = random.Random(7)
        outbox = self.store.outbox("relay")
        outbox.hold_back_wait = 0.0
        ahead: list[list[RelayEvent]] = []
        try:
            while True:
                finished = self.done.is_set()
                size = rng.randint(1, 7)
                if ahead and ahead[-1]:
                    ahead.append(outbox.unpublished_events_after(ahead[-1][-1], size))
                else:
                    ahead = [outbox.unpublished_events(size)]
                if len(ahead) < 3 and ahead[-1]:
                    continue
                batch = ahead.pop(0)
                if batch and rng.random() < 0.15:
                    kept = rng.randrange(len(batch))
                    self.relayed.extend(batch[:kept])
                    outbox.mark_events_as_published(batch[:kept])
                    ahead = []
                    continue
                self.relayed.extend(batch)
                outbox.mark_events_as_published(batch)
                if finished and not batch and not any(ahead):
                    return
                if not batch:
                    ahead = []
                    time.sleep(0.002)
        except BaseException as err:
            self.errors.append(err)


def test_read_ahead_with_late_commits_and_failures_relays_each_event_once_pg_mariadb_sqlite(
    any_pool: PrefixPool,
) -> None:
    """The writers of the late-commit traffic test, against a reader that reads ahead
    of its checkpoint and fails part of the way through batches now and then: every
    event is relayed exactly once, each stream in version order, in the order a fresh
    relay name sees."""
    store = any_pool.open()
    streams = 8
    for n in range(streams):
        store.add_aggregate("Order", f"agg-{n}", [RawEvent("Created", b"0")])
    traffic = _ReadingAheadTraffic(store, streams)
    traffic.run(writers=6, appends=15)
    assert traffic.errors == []
    relayed = traffic.relayed
    total = sum(len(store.events("Order", f"agg-{n}")) for n in range(streams))
    relayed.extend(_drain(store.outbox("relay"), total - len(relayed)))
    _check_relayed(store, relayed, streams)


def test_sqlite_cannot_hold_a_commit_and_says_why() -> None:
    """SQLite's writes take turns, so no commit can land after a later one: the
    hold-commits test hook refuses, naming the reason, instead of holding every writer."""
    from esrc_core import NotSupportedError

    store = SqlEventStore("sqlite://")
    try:
        with pytest.raises(NotSupportedError, match="write lock"):
            store.hold_commits()
    finally:
        store.close()
