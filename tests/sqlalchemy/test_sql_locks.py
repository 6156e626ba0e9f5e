"""Relay locks are released by the database when their holder dies: a process that
holds one is killed, and another process's lock then gets it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from esrc_sqlalchemy.testing import PrefixPool, database_hooks, relay_lock_session

from esrc_sqlalchemy import SqlEventStore

HOLDER = textwrap.dedent(
    """
    import sys, time
    from esrc_sqlalchemy import SqlEventStore
    store = SqlEventStore(sys.argv[1], table_prefix=sys.argv[2])
    lock = store.relay_lock("orders")
    assert lock.acquire(timeout=30)
    print("locked", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def url_and_prefix(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """A SQLite file, then the PostgreSQL and MariaDB servers, with a table prefix."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/locks.db", "esrc_"
    pool: PrefixPool = request.getfixturevalue(
        "postgresql_pool" if request.param == "postgresql" else "mysql_pool"
    )
    store = pool.open()
    store.close()
    return pool.url, store.table_prefix


def test_lock_of_a_killed_process_is_released_sqlite_postgres_mariadb(
    url_and_prefix: tuple[str, str],
) -> None:
    """While another process holds relay "orders", this one cannot take it (another
    name it can); once that process is killed (SIGKILL: no cleanup runs), it can."""
    url, prefix = url_and_prefix
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, prefix], stdout=subprocess.PIPE, text=True
    )
    store = SqlEventStore(url, table_prefix=prefix)
    lock = store.relay_lock("orders")
    other = store.relay_lock("billing")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        assert lock.acquire() is False
        assert other.acquire() is True
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert lock.acquire(timeout=30) is True
        assert lock.held() is True
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        lock.release()
        other.release()
        store.close()


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
def test_lock_whose_session_dies_reads_as_not_held_postgres_mariadb(
    database: str, request: pytest.FixtureRequest
) -> None:
    """If the server ends the lock's session, ``held()`` says so, and the lock can be
    taken again."""
    pool: PrefixPool = request.getfixturevalue(
        "postgresql_pool" if database == "postgresql" else "mysql_pool"
    )
    store = pool.open()
    lock = store.relay_lock("orders")
    try:
        assert lock.acquire() is True
        session = relay_lock_session(lock)
        with store.engine.connect() as admin:
            database_hooks(store.engine).kill_session(admin, session)
            admin.commit()
        assert lock.held() is False
        assert lock.acquire(timeout=30) is True
    finally:
        lock.release()
        pool.release()


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
def test_a_standby_waits_on_one_connection_and_takes_over_on_it(
    request: pytest.FixtureRequest, database: str
) -> None:
    """While relay "orders" is held elsewhere, a standby that tries for a second (20
    tries, one every 50 ms) opens one connection, not one per try; when the holder lets
    go, the standby takes the lock on that same connection; ``release`` closes it."""
    pool: PrefixPool = request.getfixturevalue(
        "postgresql_pool" if database == "postgresql" else "mysql_pool"
    )
    holder_store = pool.open()
    standby_store = SqlEventStore(pool.url, table_prefix=holder_store.table_prefix)
    opened: list[object] = []
    sa.event.listen(standby_store.engine, "connect", lambda conn, _: opened.append(conn))
    holder = holder_store.relay_lock("orders")
    standby = standby_store.relay_lock("orders")
    try:
        assert holder.acquire() is True
        assert standby.acquire(timeout=1.0) is False
        assert len(opened) == 1, f"the standby opened {len(opened)} connections in 1 s"
        holder.release()
        assert standby.acquire(timeout=5.0) is True
        assert len(opened) == 1
        assert standby.held() is True
    finally:
        standby.release()
        holder.release()
        holder_store.close()
        standby_store.close()
