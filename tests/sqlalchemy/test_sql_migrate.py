"""``esrc migrate URL`` and :meth:`SqlEventStore.migrate`: idempotent, versioned, safe to
run from several threads (each with its own engine, as separate processes would) at
once, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from esrc_core.cli import main
from esrc_core.cli._main import EXIT_MIGRATION_DUE
from esrc_core.migrations import MigrationOutcome, MigrationResult, SchemaState
from esrc_sqlalchemy.engines import create_store_engine, normalize_url
from esrc_sqlalchemy.testing import dialect_of, drop_store_tables, store_tables

from esrc_core import EsrcError, RawEvent, RawSnapshot, StoreClosedError
from esrc_sqlalchemy import SCHEMA_VERSION, SqlEventStore


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, then the PostgreSQL and MariaDB servers."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/migrate.db"
    name = "postgresql_url" if request.param == "postgresql" else "mysql_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def prefix(database_url: str) -> Iterator[str]:
    """A table prefix of this test's own; its tables are dropped afterwards."""
    chosen = f"m{secrets.token_hex(4)}_"
    yield chosen
    drop_store_tables(database_url, chosen)


def _versions(url: str, prefix: str) -> list[int]:
    engine = create_store_engine(normalize_url(url), connect_timeout=5)
    table = store_tables(engine, prefix).schema_version
    try:
        with engine.connect() as conn:
            return [int(v) for v in conn.execute(sa.select(table.c.version)).scalars()]
    finally:
        engine.dispose()


def test_esrc_migrate_twice_is_idempotent(
    database_url: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command succeeds twice, saying it created the schema and then that it is
    current, records one schema version, and a store that does not create tables
    itself works on them."""
    argv = ["migrate", "--store", database_url, "-o", f"table_prefix={prefix}"]
    assert main(argv) == 0
    assert f"created the schema of {database_url} at version {SCHEMA_VERSION}" in (
        capsys.readouterr().out
    )
    assert main(argv) == 0
    assert f"is current (version {SCHEMA_VERSION}); nothing to do" in capsys.readouterr().out
    assert _versions(database_url, prefix) == [SCHEMA_VERSION]
    store = SqlEventStore(database_url, table_prefix=prefix, create_schema=False)
    try:
        store.add_aggregate("Order", 1, [RawEvent("Created", b"")])
        assert store.events("Order", 1) == [RawEvent("Created", b"")]
    finally:
        store.close()


def test_esrc_migrate_from_threads_at_once(database_url: str, prefix: str) -> None:
    """Six ``esrc migrate`` runs (each with its own store and engine, as separate
    processes would have) on the same prefix at the same moment: all succeed and one
    schema version is recorded."""
    runs = 6
    start = threading.Barrier(runs)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        start.wait()
        try:
            statuses.append(main(["migrate", database_url, "-o", f"table_prefix={prefix}"]))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=migrate) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert statuses == [0] * runs
    assert _versions(database_url, prefix) == [SCHEMA_VERSION]


def test_first_use_from_threads_creates_the_tables_once(database_url: str, prefix: str) -> None:
    """Stores whose first call happens in many threads at once all work."""
    stores = [SqlEventStore(database_url, table_prefix=prefix) for _ in range(4)]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def first_use(n: int, store: SqlEventStore) -> None:
        start.wait()
        try:
            store.add_aggregate("Order", n, [RawEvent("Created", b"")])
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=first_use, args=(n, s)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(stores[0].outbox().unpublished_events(10)) == len(stores)
    for store in stores:
        store.close()


def test_store_that_does_not_create_tables_says_to_migrate(database_url: str, prefix: str) -> None:
    """With ``create_schema=False`` and no tables, the first call says to run
    ``esrc migrate``."""
    store = SqlEventStore(database_url, table_prefix=prefix, create_schema=False)
    with pytest.raises(EsrcError, match="esrc migrate"):
        store.contains_aggregate("Order", 1)
    store.close()


@pytest.mark.parametrize("form", ["sqlite:///{path}", "sqlite:///file:{path}?uri=true"])
def test_a_sqlite_file_that_does_not_exist_is_not_created_without_create_schema(
    tmp_path: Path, form: str
) -> None:
    missing = tmp_path / "missing.db"
    store = SqlEventStore(form.format(path=missing), create_schema=False)
    with pytest.raises(EsrcError, match=f"check Order 1: there is no SQLite database at {missing}"):
        store.contains_aggregate("Order", 1)
    store.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["streams"], ["relays"], ["events", "Order", "1"]])
def test_inspection_commands_create_no_tables(
    database_url: str, prefix: str, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """``esrc streams|relays|events`` on a store that does not exist say so and leave
    the database as it was."""
    status = main([command[0], database_url, "-o", f"table_prefix={prefix}", *command[1:]])
    err = capsys.readouterr().err
    assert status == 2  # a store that does not exist is a configuration error
    assert "esrc migrate URL" in err, err
    probe = SqlEventStore(database_url, table_prefix=prefix, create_schema=False)
    missing = dialect_of(probe).missing_database()
    probe.close()
    if missing is not None:  # an embedded database whose file is not there
        assert missing in err, err
        return
    engine = create_store_engine(normalize_url(database_url), connect_timeout=5)
    try:
        tables = sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    assert [t for t in tables if t.startswith(prefix)] == []


def test_tables_from_a_newer_release_are_refused(database_url: str, prefix: str) -> None:
    """A schema version above this release's is an error naming both versions."""
    first = SqlEventStore(database_url, table_prefix=prefix)
    first.migrate()
    with first.engine.begin() as conn:
        conn.execute(first.tables.schema_version.insert().values(version=99, description="x"))
    first.close()
    for create in (True, False):
        store = SqlEventStore(database_url, table_prefix=prefix, create_schema=create)
        with pytest.raises(EsrcError, match=f"schema version 99.*{SCHEMA_VERSION}"):
            store.contains_aggregate("Order", 1)
        store.close()


def test_esrc_migrate_reports_errors_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A store with no schema and a bad option give exit status 2 (configuration), an
    unreachable server 1, each with a one-line message (password masked)."""
    assert main(["migrate", "memory://"]) == 2
    assert "no schema to migrate" in capsys.readouterr().err
    assert main(["migrate", "sqlite://", "-o", "connect_timeout=soon"]) == 2
    assert "connect_timeout" in capsys.readouterr().err
    assert main(["migrate", "sqlite://", "-o", "prefix=app_"]) == 2
    assert "unknown option(s) prefix" in capsys.readouterr().err
    url = "postgresql://postgres:s3cret@127.0.0.1:1/test"
    assert main(["migrate", url, "-o", "connect_timeout=2"]) == 1
    err = capsys.readouterr().err
    assert "unavailable" in err
    assert "s3cret" not in err


def test_postgres_schema_option_creates_and_uses_the_schema(postgresql_url: str) -> None:
    """``schema=`` puts the tables in that PostgreSQL schema, creating it."""
    schema = f"s{secrets.token_hex(4)}"
    store = SqlEventStore(postgresql_url, schema=schema)
    try:
        store.add_aggregate("Order", 1, [RawEvent("Created", b"")])
        with store.engine.connect() as conn:
            names = sa.inspect(conn).get_table_names(schema=schema)
        assert "esrc_events" in names
        assert store.outbox().unpublished_events(10)[0].event.name == "Created"
    finally:
        with store.engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        store.close()


def _drop_schema_versions(conn: sa.Connection, store: SqlEventStore) -> None:
    """Drop the ``schema_version`` columns that schema version 4 added."""
    prep = conn.dialect.identifier_preparer
    for table in (store.tables.events, store.tables.snapshots):
        conn.execute(sa.text(f"ALTER TABLE {prep.format_table(table)} DROP COLUMN schema_version"))


def _as_version_1(store: SqlEventStore) -> None:
    """Turn ``store``'s tables back into schema version 1: no ``seq`` on MariaDB, no
    schema versions."""
    tables = store.tables
    with store.engine.begin() as conn:
        _drop_schema_versions(conn, store)
        if "seq" in tables.events.c:
            prep = conn.dialect.identifier_preparer
            index = prep.quote(f"{store.table_prefix}events_seq")
            conn.execute(
                sa.text(
                    f"ALTER TABLE {prep.format_table(tables.events)} DROP INDEX {index}, "
                    "DROP COLUMN seq"
                )
            )
        conn.execute(tables.schema_version.delete())
        conn.execute(tables.schema_version.insert().values(version=1, description="v1"))


def test_version_1_tables_are_upgraded_and_relays_resume(database_url: str, prefix: str) -> None:
    """Tables at schema version 1 holding events and a relay checkpoint (a position)
    are upgraded on first use: version 2 is recorded, on MariaDB every event is
    numbered with its position, the relay resumes right after its checkpoint in the
    old order, and events appended afterwards follow."""
    old = SqlEventStore(database_url, table_prefix=prefix)
    old.add_aggregate("Order", "a", [RawEvent(f"A{n}", b"") for n in range(3)])
    old.add_aggregate("Order", "b", [RawEvent(f"B{n}", b"") for n in range(2)])
    positions = [e.position for e in old.recorded_events("Order", "a")]
    with old.engine.begin() as conn:
        conn.execute(old.tables.checkpoints.delete())
        conn.execute(
            old.tables.checkpoints.insert().values(name="relay", tx_id=0, position=positions[1])
        )
    _as_version_1(old)
    old.close()
    store = SqlEventStore(database_url, table_prefix=prefix)
    try:
        store.append_events("Order", "b", 2, [RawEvent("B2", b"")])
        assert sorted(_versions(database_url, prefix)) == list(range(1, SCHEMA_VERSION + 1))
        events = store.tables.events
        if "seq" in events.c:
            with store.engine.connect() as conn:
                numbered = conn.execute(
                    sa.select(events.c.position, events.c.seq).where(events.c.name != "B2")
                ).all()
            assert [(p, s) for p, s in numbered if p != s] == []
        if "tx_id" in events.c:
            return  # checkpoints are (tx_id, position) there: not touched by version 2
        outbox = store.outbox("relay")
        resumed = outbox.unpublished_events(100)
        assert [e.event.name for e in resumed] == ["A2", "B0", "B1", "B2"]
    finally:
        store.close()


def _as_version_2(store: SqlEventStore) -> None:
    """Turn ``store``'s tables back into schema version 2: no ``sequencer.seq_floor``
    on MariaDB, no schema versions."""
    tables = store.tables
    with store.engine.begin() as conn:
        _drop_schema_versions(conn, store)
        if tables.sequencer is not None:
            table = conn.dialect.identifier_preparer.format_table(tables.sequencer)
            conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN seq_floor"))
        conn.execute(tables.schema_version.delete())
        for version in (1, 2):
            conn.execute(tables.schema_version.insert().values(version=version, description=""))


def test_version_2_tables_are_upgraded_and_deletions_keep_the_relay_order(
    database_url: str, prefix: str
) -> None:
    """Tables at schema version 2 holding events and a relay checkpoint are upgraded
    on first use (version 3 recorded; on MariaDB ``sequencer.seq_floor`` added), the
    relay resumes after its checkpoint, and deleting the stream that holds the
    largest outbox number does not make the next events reuse it: the relay gets
    them."""
    old = SqlEventStore(database_url, table_prefix=prefix)
    old.add_aggregate("Order", "a", [RawEvent("A0", b""), RawEvent("A1", b"")])
    old.add_aggregate("Order", "b", [RawEvent("B0", b"")])
    relay = old.outbox("relay")
    relay.mark_events_as_published(relay.unpublished_events(100))
    _as_version_2(old)
    old.close()
    store = SqlEventStore(database_url, table_prefix=prefix)
    try:
        store.add_aggregate("Order", "c", [RawEvent("C0", b"")])
        assert sorted(_versions(database_url, prefix)) == [1, 2, *range(3, SCHEMA_VERSION + 1)]
        outbox = store.outbox("relay")
        assert [e.event.name for e in outbox.unpublished_events(100)] == ["C0"]
        store.delete_stream("Order", "c")
        store.delete_stream("Order", "b")
        store.add_aggregate("Order", "d", [RawEvent("D0", b""), RawEvent("D1", b"")])
        assert [e.event.name for e in outbox.unpublished_events(100)] == ["D0", "D1"]
    finally:
        store.close()


def test_esrc_migrate_says_it_upgraded_tables_at_version_1(
    database_url: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tables at version 1: ``--check`` exits 3 (due) and changes nothing, ``migrate``
    says it upgraded them from 1, then ``--check`` exits 0; the JSON says the same."""
    old = SqlEventStore(database_url, table_prefix=prefix)
    old.add_aggregate("Order", "a", [RawEvent("A", b"")])
    _as_version_1(old)
    old.close()
    argv = ["migrate", "--store", database_url, "-o", f"table_prefix={prefix}"]
    assert main([*argv, "--check", "--json"]) == EXIT_MIGRATION_DUE
    assert json.loads(capsys.readouterr().out) == {
        "store": database_url,
        "version": 1,
        "target": SCHEMA_VERSION,
        "due": True,
    }
    assert _versions(database_url, prefix) == [1]
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "store": database_url,
        "outcome": "upgraded",
        "before": 1,
        "after": SCHEMA_VERSION,
    }
    assert main([*argv, "--check"]) == 0
    assert f"is current (version {SCHEMA_VERSION})" in capsys.readouterr().out


def test_esrc_migrate_check_on_an_empty_database_is_due_and_creates_nothing(
    database_url: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["migrate", "--store", database_url, "-o", f"table_prefix={prefix}", "--check"]
    assert main(argv) == EXIT_MIGRATION_DUE
    assert f"has no schema: a migration to version {SCHEMA_VERSION} is due" in (
        capsys.readouterr().out
    )
    assert main([*argv, "--quiet"]) == EXIT_MIGRATION_DUE
    assert capsys.readouterr().out == ""
    if database_url.startswith("sqlite"):
        assert not Path(database_url.removeprefix("sqlite:///")).exists()
    else:
        assert _tables(database_url, prefix) == []


def test_esrc_migrate_sql_creates_a_working_store_when_run_by_hand(
    database_url: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--sql`` connects to nothing; its statements, run by hand on the database,
    give tables a store that does not create its own opens, at the current version."""
    argv = ["migrate", "--store", database_url, "-o", f"table_prefix={prefix}", "--sql"]
    assert main(argv) == 0
    script = capsys.readouterr().out
    if database_url.startswith("sqlite"):
        assert not Path(database_url.removeprefix("sqlite:///")).exists()
    else:
        assert _tables(database_url, prefix) == []
    assert main([*argv, "--json"]) == 0
    statements = json.loads(capsys.readouterr().out)["statements"]
    assert script == "".join(f"{statement};\n\n" for statement in statements)
    engine = create_store_engine(normalize_url(database_url), connect_timeout=5)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
    store = SqlEventStore(database_url, table_prefix=prefix, create_schema=False)
    try:
        assert store.schema_state() == SchemaState(SCHEMA_VERSION, SCHEMA_VERSION)
        store.add_aggregate("Order", 1, [RawEvent("Created", b"x")])
        assert store.events("Order", 1) == [RawEvent("Created", b"x")]
        assert [e.event.name for e in store.outbox("r").unpublished_events(10)] == ["Created"]
        assert store.migrate() == MigrationResult(
            MigrationOutcome.CURRENT, SCHEMA_VERSION, SCHEMA_VERSION
        )
    finally:
        store.close()


def test_check_and_sql_together_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--store", "memory://", "--check", "--sql"]) == 2
    assert "give --check or --sql, not both" in capsys.readouterr().err


def _tables(url: str, prefix: str) -> list[str]:
    engine = create_store_engine(normalize_url(url), connect_timeout=5)
    try:
        names = sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    return [name for name in names if name.startswith(prefix)]


def test_migrate_on_a_closed_store_says_it_is_closed(tmp_path: Path) -> None:
    """A closed store is not a server that is away: ``StoreClosedError``, which no retry
    loop takes for a transient failure."""
    store = SqlEventStore(f"sqlite:///{tmp_path}/closed.db")
    store.close()
    with pytest.raises(StoreClosedError, match="is closed"):
        store.migrate()


def test_version_3_tables_gain_schema_versions_and_old_rows_read_as_1(
    database_url: str, prefix: str
) -> None:
    """Tables at schema version 3 holding events and a snapshot are upgraded on first
    use: version 4 is recorded, the events and the snapshots gain ``schema_version``
    and every row written before holds 1."""
    old = SqlEventStore(database_url, table_prefix=prefix)
    old.add_aggregate("Order", "a", [RawEvent("A0", b"x"), RawEvent("A1", b"y")])
    old.add_snapshot("Order", "a", RawSnapshot(2, b"s"))
    tables = old.tables
    with old.engine.begin() as conn:
        _drop_schema_versions(conn, old)
        conn.execute(tables.schema_version.delete())
        for version in (1, 2, 3):
            conn.execute(tables.schema_version.insert().values(version=version, description=""))
    old.close()
    store = SqlEventStore(database_url, table_prefix=prefix)
    try:
        assert store.events("Order", "a") == [RawEvent("A0", b"x"), RawEvent("A1", b"y")]
        assert sorted(_versions(database_url, prefix)) == list(range(1, SCHEMA_VERSION + 1))
        with store.engine.connect() as conn:
            events = conn.execute(sa.select(tables.events.c.schema_version)).scalars().all()
            snapshots = conn.execute(sa.select(tables.snapshots.c.schema_version)).scalars()
            assert (events, list(snapshots)) == ([1, 1], [1])
    finally:
        store.close()
