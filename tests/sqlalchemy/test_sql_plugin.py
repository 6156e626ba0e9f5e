"""The ``sqlalchemy`` plugin: what it declares, which URLs it takes, that its entry
point stays light, and stores built on an application's own engine."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from esrc_core.capabilities import Capability
from esrc_core.errors import BackendConfigError
from esrc_core.plugins import plugins
from esrc_sqlalchemy.dialects import DIALECTS, dialect_class
from esrc_sqlalchemy.testing import PrefixPool

from esrc_core import RawEvent, open_event_store
from esrc_sqlalchemy import SqlEventStore, StoreConfigError


def test_entry_point_module_loads_without_sqlalchemy_or_drivers() -> None:
    """Importing ``esrc_sqlalchemy.plugin`` and listing backends imports neither
    SQLAlchemy nor a driver."""
    code = (
        "import sys, esrc_core\n"
        "esrc_core.plugins().backends()\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'psycopg', 'pymysql', 'sqlite3')]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_descriptor_claims_the_sql_schemes_and_capabilities() -> None:
    """One ``sqlalchemy`` store backend for sqlite, postgresql, mysql and mariadb,
    with snapshots, outbox, waiting outboxes, threads, persistence, relay locks,
    operator views, migrations, paged reads and held commits for tests (SQLite refuses
    a hold with its reason), and an install hint."""
    backend, _ = plugins().resolve("postgresql://localhost/db", "store")
    assert backend.name == "sqlalchemy"
    assert set(backend.schemes) == {"sqlite", "postgresql", "mysql", "mariadb"}
    assert backend.capabilities == {
        Capability.SNAPSHOTS,
        Capability.OUTBOX,
        Capability.THREADS,
        Capability.PERSISTENT,
        Capability.RELAY_LOCK,
        Capability.INSPECT,
        Capability.MIGRATE,
        Capability.WAIT,
        Capability.STREAMING,
        Capability.READ_AHEAD,
        Capability.HOLD_COMMITS,
        Capability.UNITS_OF_WORK,
        Capability.DELETE_STREAMS,
    }
    assert "esrc-sqlalchemy[postgresql]" in backend.install_hint
    assert backend.inspect_options == {"create_schema": False}
    assert backend.distribution == "esrc-sqlalchemy"


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@localhost/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@localhost/db", "postgresql+psycopg"),
        ("mysql://u@localhost/db", "mysql+pymysql"),
        ("mariadb://u@localhost/db", "mariadb+pymysql"),
        ("sqlite://", "sqlite+pysqlite"),
        ("sqlalchemy+postgresql://u@localhost/db", "postgresql+psycopg"),
    ],
)
def test_plain_urls_mean_psycopg_and_pymysql(url: str, driver: str) -> None:
    """``open_event_store`` picks the SQL backend and its tested driver; nothing
    connects until the first call."""
    store = open_event_store(url)
    assert isinstance(store, SqlEventStore)
    assert store.engine.url.drivername == driver
    store.close()


def test_sqlite_file_store_keeps_data_across_reopen(tmp_path: Path) -> None:
    """Data and relay progress survive closing and opening the same file."""
    url = f"sqlite:///{tmp_path}/events.db"
    first = open_event_store(url)
    first.add_aggregate("Order", 1, [RawEvent("Created", b"")])
    first.close()
    again = open_event_store(url)
    assert again.events("Order", 1) == [RawEvent("Created", b"")]
    again.close()


def test_store_on_an_application_engine_shares_it_postgres(postgresql_pool: PrefixPool) -> None:
    """``SqlEventStore(engine)`` runs on the application's pool and leaves the engine
    open when it closes."""
    engine = sa.create_engine(
        postgresql_pool.url.replace("postgresql+psycopg", "postgresql+psycopg", 1)
    )
    prefix = postgresql_pool.open()
    prefix.close()
    store = SqlEventStore(engine, table_prefix=prefix.table_prefix)
    store.add_aggregate("Order", 1, [RawEvent("Created", b"")])
    assert store.engine is engine
    assert store.events("Order", 1) == [RawEvent("Created", b"")]
    store.close()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    engine.dispose()


def test_store_on_an_application_engine_shares_it_mariadb(mysql_pool: PrefixPool) -> None:
    """The same on MariaDB, with an engine in SQLAlchemy's default (non-autocommit)
    mode: appends and the outbox work through its implicit transactions."""
    engine = sa.create_engine(mysql_pool.url)
    prefix = mysql_pool.open()
    prefix.close()
    store = SqlEventStore(engine, table_prefix=prefix.table_prefix)
    store.add_aggregate("Order", 1, [RawEvent("Created", b"")])
    store.append_events("Order", 1, 1, [RawEvent("Paid", b"")])
    outbox = store.outbox()
    events = outbox.unpublished_events(10)
    outbox.mark_events_as_published(events)
    assert [e.event.name for e in events] == ["Created", "Paid"]
    assert store.outbox().unpublished_events(10) == []
    store.close()
    engine.dispose()


def test_engine_with_another_driver_is_refused() -> None:
    """An application engine on a driver the store does not support (SQLAlchemy's
    mysqldb dialect, here driving PyMySQL) raises StoreConfigError naming the driver
    to use; nothing connects."""
    pymysql = importlib.import_module("pymysql")
    engine = sa.create_engine("mysql+mysqldb://u:s3cret@localhost/db", module=pymysql)
    with pytest.raises(StoreConfigError, match=r"mysqldb.*mysql\+pymysql") as caught:
        SqlEventStore(engine)
    assert "s3cret" not in str(caught.value)


def test_engine_on_an_unsupported_database_is_refused_naming_the_supported_ones() -> None:
    """An application engine on a database the store has no dialect for (SQL Server)
    raises StoreConfigError, a BackendConfigError, naming that database and every
    supported one; there is no fallback to another dialect."""
    pymysql = importlib.import_module("pymysql")
    engine = sa.create_engine("mssql+pymssql://u:s3cret@localhost/db", module=pymysql)
    with pytest.raises(StoreConfigError) as caught:
        SqlEventStore(engine)
    assert isinstance(caught.value, BackendConfigError)
    message = str(caught.value)
    assert "'mssql'" in message
    for dialect in DIALECTS:
        assert dialect.title in message
    assert "s3cret" not in message


def test_url_of_an_unsupported_database_is_refused_naming_the_supported_ones() -> None:
    """``oracle://`` raises StoreConfigError naming it and the supported URL schemes."""
    with pytest.raises(StoreConfigError, match="not oracle://") as caught:
        SqlEventStore("oracle://u:s3cret@localhost/db")
    for dialect in DIALECTS:
        for scheme in dialect.url_schemes:
            assert f"{scheme}://" in str(caught.value)
    with pytest.raises(StoreConfigError, match=r"'oracle'.*SQLite"):
        dialect_class("oracle")


def test_the_entry_point_claims_exactly_the_schemes_of_the_dialects() -> None:
    """The light entry point lists its URL schemes without importing the dialects; they
    are the registry's, no more and no less."""
    backend, _ = plugins().resolve("sqlite://", "store")
    assert set(backend.schemes) == {s for d in DIALECTS for s in d.url_schemes}
