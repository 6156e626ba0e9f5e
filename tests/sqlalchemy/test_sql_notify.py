"""The PostgreSQL notifier: appends ask for a pg_notify and return; a thread of the
store's sends one notification for every burst, never missing an append."""

from __future__ import annotations

import gc
import logging
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from esrc_sqlalchemy.dialects.postgresql import channel_notifier
from esrc_sqlalchemy.notify import Notifier
from esrc_sqlalchemy.testing import PrefixPool, database_hooks

from esrc_core import RawEvent, RawSnapshot
from esrc_sqlalchemy import SqlEventStore

WAIT = 30.0
"""How long a test waits for a notification before it says none came (a liveness
bound; one takes milliseconds)."""


@pytest.fixture
def channel() -> str:
    return f"esrc_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def engine(postgresql_url: str) -> Iterator[sa.Engine]:
    """An engine in autocommit mode, as the store gives its notifier."""
    autocommit = sa.create_engine(postgresql_url, isolation_level="AUTOCOMMIT")
    yield autocommit
    autocommit.dispose()


@pytest.fixture
def listener(postgresql_url: str, channel: str) -> Iterator[psycopg.Connection[object]]:
    dsn = sa.make_url(postgresql_url).set(drivername="postgresql").render_as_string(False)
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(f'LISTEN "{channel}"')
    try:
        yield conn
    finally:
        conn.close()


def _notifications(conn: psycopg.Connection[object], timeout: float) -> int:
    """How many notifications arrive until none came for ``timeout`` seconds."""
    count = 0
    while True:
        got = sum(1 for _ in conn.notifies(timeout=timeout, stop_after=1))
        if not got:
            return count
        count += got


@pytest.fixture
def notifier(engine: sa.Engine, channel: str) -> Iterator[Notifier]:
    """A notifier on ``channel``, closed afterwards."""
    made = channel_notifier(engine, channel)
    yield made
    made.close()


def test_every_poke_is_followed_by_a_notification(
    notifier: Notifier, channel: str, listener: psycopg.Connection[object]
) -> None:
    for attempt in range(5):
        notifier.poke()
        got = list(listener.notifies(timeout=WAIT, stop_after=1))
        assert [n.channel for n in got] == [channel], f"poke {attempt + 1}: got {got}"


def test_a_burst_of_pokes_from_many_threads_is_coalesced(
    notifier: Notifier, listener: psycopg.Connection[object]
) -> None:
    """400 pokes from 8 threads give at least one notification and, since the thread
    sends one at a time for whatever arrived meanwhile, fewer than one per poke."""
    start = threading.Barrier(8)

    def poke() -> None:
        start.wait()
        for _ in range(50):
            notifier.poke()

    threads = [threading.Thread(target=poke) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    count = _notifications(listener, 1.0)
    assert 1 <= count < 400, f"got {count} notifications for 400 pokes"


def test_a_failing_notification_is_logged_and_never_reaches_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = sa.create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
    )
    notifier = channel_notifier(engine, "esrc_nowhere")
    got_warning = threading.Event()

    class _Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "notify esrc_nowhere failed" in record.getMessage():
                got_warning.set()

    handler = _Seen()
    logging.getLogger("esrc.sqlalchemy").addHandler(handler)
    try:
        notifier.poke()  # returns at once although the server is unreachable
        assert got_warning.wait(WAIT)
    finally:
        logging.getLogger("esrc.sqlalchemy").removeHandler(handler)
        notifier.close()
        engine.dispose()


def test_close_sends_the_notification_still_due(
    engine: sa.Engine, channel: str, listener: psycopg.Connection[object]
) -> None:
    """An append right before close is not left without its notification."""
    for attempt in range(10):
        notifier = channel_notifier(engine, channel)
        notifier.poke()
        notifier.close(timeout=WAIT)
        got = list(listener.notifies(timeout=WAIT, stop_after=1))
        assert len(got) == 1, f"close {attempt + 1}: no notification"
        _notifications(listener, 0.05)  # drop any second one


def test_a_notification_that_fails_is_sent_again(
    postgresql_url: str,
    channel: str,
    listener: psycopg.Connection[object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The notifier's pooled connection is terminated by the server: the next
    notification fails on it, stays due, and goes out on a new connection."""
    tag = f"esrc-notify-test-{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(
        postgresql_url, isolation_level="AUTOCOMMIT", connect_args={"application_name": tag}
    )
    notifier = channel_notifier(engine, channel)
    try:
        notifier.poke()
        assert list(listener.notifies(timeout=WAIT, stop_after=1))
        with sa.create_engine(postgresql_url).connect() as admin:
            killed = database_hooks(admin.engine).kill_sessions_of(admin, tag)
        assert killed == 1
        with caplog.at_level(logging.WARNING, logger="esrc.sqlalchemy"):
            notifier.poke()
            assert list(listener.notifies(timeout=WAIT, stop_after=1))
        failures = [r for r in caplog.records if f"notify {channel} failed" in r.getMessage()]
        assert len(failures) == 1, caplog.records
    finally:
        notifier.close()
        engine.dispose()


def test_a_notifier_dropped_without_close_sends_what_is_due_and_stops_its_thread(
    engine: sa.Engine, channel: str, listener: psycopg.Connection[object]
) -> None:
    notifier = channel_notifier(engine, channel)
    notifier.poke()
    notifier.poke()
    thread = notifier.thread
    assert thread is not None
    del notifier
    gc.collect()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert _notifications(listener, 0.5) >= 1


def test_a_closed_notifier_ignores_pokes(
    notifier: Notifier, listener: psycopg.Connection[object]
) -> None:
    notifier.close()
    notifier.close()
    notifier.poke()
    assert _notifications(listener, 0.5) == 0


def test_store_appends_notify_and_other_writes_do_not(
    postgresql_pool: PrefixPool, listener: psycopg.Connection[object]
) -> None:
    """Appends wake listeners; a checkpoint or a snapshot (the relay's and the
    repository's own writes) does not."""
    plain = postgresql_pool.open()
    store = SqlEventStore(postgresql_pool.url, table_prefix=plain.table_prefix, notify=True)
    try:
        listener.execute(f'LISTEN "{store.notify_channel}"')
        store.add_aggregate("Order", 1, [RawEvent("Created", b"")])
        assert _notifications(listener, 1.0) >= 1
        store.append_events("Order", 1, 1, [RawEvent("Paid", b"")])
        assert _notifications(listener, 1.0) >= 1
        outbox = store.outbox("quiet")
        outbox.mark_events_as_published(outbox.unpublished_events(10))
        store.add_snapshot("Order", 1, RawSnapshot(2, b"{}"))
        assert _notifications(listener, 1.0) == 0
    finally:
        store.close()
