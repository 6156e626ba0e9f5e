"""Bad input is refused with a clear esrc error before anything is written; large
payloads work; URLs and options are checked before connecting; an unreachable server
fails fast."""

from __future__ import annotations

import importlib.util
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from esrc_core.cli import main
from esrc_core.cli._main import EXIT_USAGE
from esrc_core.urls import url_secrets
from esrc_sqlalchemy.dialects.mysql import MySqlDialect
from esrc_sqlalchemy.engines import create_application_engine
from esrc_sqlalchemy.errors import driver_message, translate
from esrc_sqlalchemy.testing import PrefixPool, dialect_of

from esrc_core import (
    BackendUnavailableError,
    EsrcError,
    InvalidAggregateIdError,
    InvalidEventError,
    RawEvent,
    RawSnapshot,
    StoreUnavailableError,
    mask_url,
    open_event_store,
)
from esrc_sqlalchemy import AsyncSqlEventStore, SqlEventStore, StoreConfigError

_FIXTURE = {"postgresql": "postgresql", "mariadb": "mysql"}
"""The URL fixture of each server database."""

TEN_MB = bytes(range(256)) * (10 * 1024 * 1024 // 256)
"""10 MiB using every byte value (quotes, backslashes, NULs: all of them escaped
somewhere)."""


@pytest.fixture
def store(any_pool: PrefixPool) -> Iterator[SqlEventStore]:
    """An empty store on SQLite, PostgreSQL and MariaDB, with one stream at version 1."""
    opened = any_pool.open()
    opened.add_aggregate("Order", "o-1", [RawEvent("Created", b"1")])
    yield opened
    opened.close()


def _nothing_written(store: SqlEventStore) -> None:
    assert store.events("Order", "o-1") == [RawEvent("Created", b"1")]
    assert store.contains_aggregate("Order", "o-2") is False
    assert len(store.outbox("check").unpublished_events(100)) == 1


@pytest.mark.parametrize(
    ("name", "problem"),
    [("N" * 201, "201 characters"), ("bad\udc80name", "UTF-8"), ("nul\x00name", "NUL")],
    ids=["too-long", "surrogate", "nul"],
)
def test_bad_event_names_are_refused_before_writing(
    store: SqlEventStore, name: str, problem: str
) -> None:
    """A name over 200 characters, with an unpaired surrogate or with NUL raises
    InvalidEventError naming the problem; neither the add nor the append writes."""
    events = [RawEvent("Fine", b""), RawEvent(name, b"")]
    with pytest.raises(InvalidEventError, match=problem):
        store.add_aggregate("Order", "o-2", events)
    with pytest.raises(InvalidEventError, match=problem):
        store.append_events("Order", "o-1", 1, events)
    _nothing_written(store)


def test_longest_names_and_ids_round_trip(store: SqlEventStore) -> None:
    """A 200-character event name, a 200-character type and a 398-character str id
    (with non-ASCII characters) are stored and read back exactly."""
    name = "é" * 200
    long_type = "T" * 199 + "✓"
    long_id = "i" * 397 + "✓"
    store.add_aggregate(long_type, long_id, [RawEvent(name, b"x", {"k": "v\x00"})])
    assert store.events(long_type, long_id) == [RawEvent(name, b"x", {"k": "v\x00"})]
    relayed = store.outbox("long").unpublished_events(100)[-1]
    assert (relayed.aggregate_type, relayed.aggregate_id) == (long_type, long_id)


def test_payload_over_the_limit_is_refused(any_pool: PrefixPool) -> None:
    """Data, metadata or a snapshot over ``max_payload_bytes`` raises InvalidEventError
    naming the size and the limit; nothing is written."""
    opened = any_pool.open()
    opened.close()
    store = SqlEventStore(any_pool.url, table_prefix=opened.table_prefix, max_payload_bytes=1000)
    try:
        store.add_aggregate("Order", "o-1", [RawEvent("Created", b"1")])
        with pytest.raises(InvalidEventError, match=r"1001 bytes.*1000"):
            store.append_events("Order", "o-1", 1, [RawEvent("Big", bytes(1001))])
        with pytest.raises(InvalidEventError, match="metadata"):
            store.add_aggregate("Order", "o-2", [RawEvent("Big", b"", {"k": "v" * 1000})])
        with pytest.raises(InvalidEventError, match="snapshot"):
            store.add_snapshot("Order", "o-1", RawSnapshot(1, bytes(1001)))
        _nothing_written(store)
        assert store.latest_snapshot("Order", "o-1") is None
    finally:
        store.close()


def test_ten_megabyte_payload_round_trips(store: SqlEventStore) -> None:
    """A 10 MiB event (and snapshot) is stored and read back byte for byte on every
    database, next to a small event in the same append."""
    store.append_events("Order", "o-1", 1, [RawEvent("Big", TEN_MB), RawEvent("Small", b"s")])
    read = store.events("Order", "o-1", 1)
    assert [e.name for e in read] == ["Big", "Small"]
    assert read[0].data == TEN_MB
    store.add_snapshot("Order", "o-1", RawSnapshot(3, TEN_MB))
    snapshot = store.latest_snapshot("Order", "o-1")
    assert snapshot is not None
    assert snapshot.data == TEN_MB


def test_mariadb_payload_over_max_allowed_packet_is_refused_clearly(
    mysql_pool: PrefixPool,
) -> None:
    """On MariaDB a payload the server's max_allowed_packet cannot carry raises
    InvalidEventError that names the setting, before anything is written."""
    opened = mysql_pool.open()
    opened.close()
    store = SqlEventStore(
        mysql_pool.url, table_prefix=opened.table_prefix, max_payload_bytes=1 << 30
    )
    try:
        store.add_aggregate("Order", "o-1", [RawEvent("Created", b"1")])
        dialect = dialect_of(store)
        assert isinstance(dialect, MySqlDialect)
        limit = dialect.max_packet
        too_big = bytes(limit + 1)
        with pytest.raises(InvalidEventError, match="max_allowed_packet") as caught:
            store.append_events("Order", "o-1", 1, [RawEvent("Huge", too_big)])
        assert f"max_allowed_packet of {limit} bytes because of its data " in str(caught.value)
        assert f"({limit + 1} bytes of data, 0 bytes of metadata as JSON;" in str(caught.value)
        _nothing_written(store)
    finally:
        store.close()


@pytest.fixture
def mariadb_store_without_payload_limit(mysql_pool: PrefixPool) -> Iterator[SqlEventStore]:
    """A MariaDB store whose max_payload_bytes lets max_allowed_packet be the limit,
    with one stream at version 1."""
    opened = mysql_pool.open()
    opened.close()
    store = SqlEventStore(
        mysql_pool.url, table_prefix=opened.table_prefix, max_payload_bytes=1 << 30
    )
    store.add_aggregate("Order", "o-1", [RawEvent("Created", b"1")])
    yield store
    store.close()


@pytest.mark.parametrize(
    ("data_share", "metadata_share", "culprit"),
    [(0.0, 0.6, "its metadata"), (0.55, 0.3, "its data and metadata together")],
    ids=["metadata", "both"],
)
def test_mariadb_max_allowed_packet_message_names_the_part_that_is_large(
    mariadb_store_without_payload_limit: SqlEventStore,
    data_share: float,
    metadata_share: float,
    culprit: str,
) -> None:
    """When the metadata (or data and metadata together) is what a packet cannot
    carry, the message says so, with the sizes of both and the server's limit,
    instead of blaming the data; nothing is written."""
    store = mariadb_store_without_payload_limit
    dialect = dialect_of(store)
    assert isinstance(dialect, MySqlDialect)
    limit = dialect.max_packet
    data = bytes(int(limit * data_share)) or b"1"
    value = "m" * (int(limit * metadata_share) - 8)
    meta_bytes = len('{"k":""}') + len(value)
    with pytest.raises(InvalidEventError) as caught:
        store.append_events("Order", "o-1", 1, [RawEvent("Big", data, {"k": value})])
    message = str(caught.value)
    assert message.startswith("append to Order 'o-1' at version 1: event 0 (Big) is too large")
    assert f"max_allowed_packet of {limit} bytes because of {culprit} " in message, message
    assert f"({len(data)} bytes of data, {meta_bytes} bytes of metadata as JSON;" in message
    _nothing_written(store)


def test_mariadb_batch_larger_than_max_allowed_packet_is_stored_row_by_row(
    mariadb_store_without_payload_limit: SqlEventStore,
) -> None:
    """Only each event must fit in max_allowed_packet, not the batch: three events of
    0.4 packets each are appended in one call and read back intact."""
    store = mariadb_store_without_payload_limit
    dialect = dialect_of(store)
    assert isinstance(dialect, MySqlDialect)
    events = [RawEvent(f"Part{n}", bytes([n]) * int(dialect.max_packet * 0.4)) for n in range(3)]
    store.append_events("Order", "o-1", 1, events)
    assert store.events("Order", "o-1", 1) == events


@pytest.mark.parametrize(
    ("aggregate_id", "error"),
    [
        (1.5, "float"),
        (b"bytes", "bytes"),
        (True, "bool"),
        ("x" * 399, "399 characters"),
        ("nul\x00id", "NUL"),
        ("bad\udc80id", "surrogate"),
    ],
    ids=["float", "bytes", "bool", "too-long", "nul", "surrogate"],
)
def test_bad_aggregate_ids_are_refused_before_writing(
    store: SqlEventStore, aggregate_id: object, error: str
) -> None:
    """Ids of other types, str ids over 398 characters, with NUL or unpaired
    surrogates raise InvalidAggregateIdError on writes and reads."""
    with pytest.raises(InvalidAggregateIdError, match=error):
        store.add_aggregate("Order", aggregate_id, [RawEvent("Created", b"")])  # type: ignore[arg-type]
    with pytest.raises(InvalidAggregateIdError):
        store.events("Order", aggregate_id)  # type: ignore[arg-type]
    _nothing_written(store)


def test_bad_aggregate_types_are_refused(store: SqlEventStore) -> None:
    """Aggregate types over 200 characters or with NUL raise ValueError."""
    for bad in ("T" * 201, "A\x00B"):
        with pytest.raises(ValueError, match="aggregate type"):
            store.add_aggregate(bad, "o-2", [RawEvent("Created", b"")])
    _nothing_written(store)


def test_ids_that_differ_only_in_case_or_trailing_space_are_different_streams(
    store: SqlEventStore,
) -> None:
    """Stream keys compare exactly on every database: "k", "K", "k " and 7 / "7"."""
    ids: list[object] = ["k", "K", "k ", 7, "7", uuid.UUID(int=7)]
    for n, aggregate_id in enumerate(ids):
        store.add_aggregate("Order", aggregate_id, [RawEvent(f"E{n}", b"")])  # type: ignore[arg-type]
    for n, aggregate_id in enumerate(ids):
        assert store.events("Order", aggregate_id) == [RawEvent(f"E{n}", b"")]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:s3cret@localhost:notaport/db",
        "postgresql+asyncpg://user:s3cret@localhost/db",
        "mysql://user:s3cret@localhost:3306",
        "oracle://user:s3cret@localhost/db",
    ],
    ids=["port", "driver", "no-database", "database"],
)
def test_malformed_or_unsupported_url_is_a_clear_error_without_the_password(url: str) -> None:
    """The error is a StoreConfigError (an EsrcError) that masks the password."""
    with pytest.raises(StoreConfigError) as caught:
        SqlEventStore(url)
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
@pytest.mark.parametrize("asyncio", [False, True], ids=["sync", "async"])
def test_server_url_without_a_database_is_refused_before_connecting(
    database: str, asyncio: bool, request: pytest.FixtureRequest
) -> None:
    """A PostgreSQL or MariaDB URL naming no database (``host`` or ``host/``) would
    open the server's default database and create the tables there: refused with a
    StoreConfigError naming the URL (password masked), for the sync and the async
    store alike. The server's own URL is used, so only the missing name stops it."""
    url: str = request.getfixturevalue(f"{_FIXTURE[database]}_url")
    without = url.rsplit("/", 1)[0]
    for bare in (without, without + "/"):
        with pytest.raises(StoreConfigError, match="names no database") as caught:
            SqlEventStore(bare, asyncio=asyncio)
        assert mask_url(bare) in str(caught.value)


def _with_at_in_password(server_url: str) -> str:
    """``server_url`` with the password ``S3cret@Tail`` (the ``@`` not escaped)."""
    scheme, _, rest = server_url.partition("://")
    return f"{scheme}://u:S3cret@Tail@{rest.rpartition('@')[2]}"


def _shows_no_secret(text: str) -> None:
    assert "S3cret" not in text, text
    assert "Tail" not in text, text


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
def test_a_password_with_an_unescaped_at_is_refused_without_echoing_it(
    database: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLAlchemy ends a password at its first ``@`` and takes the rest for the host,
    whose name the driver then quotes ("failed to resolve host 'Tail@...'"). Such a URL
    is refused before connecting, by the sync and async stores, ``open_event_store``,
    application engines and the ``esrc`` command, saying to percent-encode the ``@``
    and showing no part of the password."""
    url = _with_at_in_password(request.getfixturevalue(f"{_FIXTURE[database]}_url"))
    openers: dict[str, Callable[[], object]] = {
        "SqlEventStore": lambda: SqlEventStore(url),
        "AsyncSqlEventStore": lambda: AsyncSqlEventStore(url),
        "open_event_store": lambda: open_event_store(url),
        "create_application_engine": lambda: create_application_engine(url),
    }
    for name, opener in openers.items():
        with pytest.raises(StoreConfigError, match="percent-encode each '@' in it as %40") as err:
            opener()
        _shows_no_secret(str(err.value))
        assert "u:***@" in str(err.value), name
    assert main(["streams", url]) == EXIT_USAGE
    _shows_no_secret(capsys.readouterr().err)


def test_an_engine_whose_host_holds_an_at_is_refused_without_echoing_it() -> None:
    """An application's engine made from such a URL carries ``Tail@host`` as its host:
    the store refuses it too, without naming the host."""
    engine = sa.create_engine("postgresql+psycopg://u:S3cret@Tail@127.0.0.1/db")
    with pytest.raises(StoreConfigError, match="an '@' in its host name") as err:
        SqlEventStore(engine)
    _shows_no_secret(str(err.value))


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
def test_driver_text_quoting_a_piece_of_the_password_is_redacted(
    database: str, request: pytest.FixtureRequest
) -> None:
    """Whatever reaches the driver, the message esrc builds from its error redacts
    the URL's password and its pieces: the real driver, given the host SQLAlchemy
    reads from a password with an unescaped ``@``, quotes ``Tail@host``."""
    url = _with_at_in_password(request.getfixturevalue(f"{_FIXTURE[database]}_url"))
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with pytest.raises(sa.exc.OperationalError) as raised:
            engine.connect().close()
    finally:
        engine.dispose()
    assert "Tail@" in driver_message(raised.value), "the driver no longer quotes the host"
    error = translate(raised.value, "check Order 1", mask_url(url), url_secrets(url))
    assert isinstance(error, StoreUnavailableError)
    _shows_no_secret(str(error))
    assert "***@" in str(error)


def test_malformed_url_through_open_event_store() -> None:
    """``open_event_store`` reaches the same check."""
    with pytest.raises(EsrcError, match=r"user:\*\*\*@") as caught:
        open_event_store("postgresql://user:s3cret@localhost:x/db")
    assert "s3cret" not in str(caught.value)


def test_missing_driver_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psycopg, a postgresql:// URL raises BackendUnavailableError saying
    ``pip install "esrc-sqlalchemy[postgresql]"``; PyMySQL likewise with [mysql]."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("psycopg", "pymysql") else real(name, *a),
    )
    with pytest.raises(BackendUnavailableError, match=r"esrc-sqlalchemy\[postgresql\]"):
        SqlEventStore("postgresql://u:pw@localhost/db")
    with pytest.raises(BackendUnavailableError, match=r"esrc-sqlalchemy\[mysql\]"):
        SqlEventStore("mariadb://u:pw@localhost/db")


@pytest.mark.parametrize("prefix", ["x; DROP TABLE y", "1abc", "", "a" * 42, "a-b", 'a"b', "é"])
def test_table_prefix_must_be_a_plain_identifier(prefix: str) -> None:
    """Anything but ``^[A-Za-z_][A-Za-z0-9_]{0,40}$`` raises StoreConfigError."""
    with pytest.raises(StoreConfigError, match="table_prefix"):
        SqlEventStore("sqlite://", table_prefix=prefix)


def test_options_are_checked() -> None:
    """Bad timeouts and limits, and PostgreSQL-only options elsewhere, are refused."""
    with pytest.raises(StoreConfigError, match="connect_timeout"):
        SqlEventStore("sqlite://", connect_timeout=0)
    with pytest.raises(StoreConfigError, match="max_payload_bytes"):
        SqlEventStore("sqlite://", max_payload_bytes=0)
    with pytest.raises(StoreConfigError, match="schema"):
        SqlEventStore("sqlite://", schema="events")
    with pytest.raises(StoreConfigError, match="schema"):
        SqlEventStore("postgresql://localhost/db", schema="x; DROP")
    with pytest.raises(StoreConfigError, match="notify"):
        SqlEventStore("sqlite://", notify=True)


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres:s3cret@127.0.0.1:1/test", "mysql://root:s3cret@127.0.0.1:1/test"],
    ids=["postgresql", "mariadb"],
)
def test_unreachable_server_gives_store_unavailable_within_the_timeout(url: str) -> None:
    """A server that refuses connections gives StoreUnavailableError (password masked)
    on first use, well within ``connect_timeout``: the call does not hang."""
    store = SqlEventStore(url, connect_timeout=3)
    outcome: list[BaseException] = []

    def use() -> None:
        try:
            store.contains_aggregate("Order", 1)
        except BaseException as err:
            outcome.append(err)

    caller = threading.Thread(target=use, daemon=True)
    caller.start()
    caller.join(timeout=30)
    assert not caller.is_alive(), "the call hung past its connect_timeout"
    assert len(outcome) == 1
    assert isinstance(outcome[0], StoreUnavailableError), repr(outcome[0])
    assert "s3cret" not in str(outcome[0])
    store.close()
