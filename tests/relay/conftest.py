"""Fixtures of the relay process tests: a store on SQLite or PostgreSQL with tables of
its own, and a broker (RabbitMQ or NATS JetStream) with names of its own, a way to cut
the relay's connection, and a reader of everything it received. The servers' URLs
come from the fixtures in ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from esrc_core.relay import RelayEvent
from esrc_faststream.destination import destination
from esrc_faststream.loop import LoopThread
from esrc_sqlalchemy.store import SqlEventStore
from esrc_sqlalchemy.testing import database_hooks, drop_store_tables

from .harness import TcpProxy, rabbitmq_close_connections

RELAY_SETTINGS = ["--batch-size", "50", "--poll-interval", "0.05", "--log-interval", "0.5"]
"""Small batches and short waits, so that kills and drops land in the middle of work."""


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)


@dataclass
class Database:
    """A store's tables for one test: the URL and options the relay process gets, and
    the test's own store on the same tables (for writers and checks)."""

    kind: str
    relay_url: str
    prefix: str
    store: SqlEventStore
    session_name: str | None = None
    """PostgreSQL: the application_name of the relay process's sessions."""

    def arguments(self) -> list[str]:
        """The relay command's store arguments."""
        return ["--store", self.relay_url, "-o", f"table_prefix={self.prefix}"]

    def terminate_relay_sessions(self) -> int:
        """End every server session of the relay process (it connects with the
        application name :attr:`session_name`); returns how many were ended. The
        test's own sessions are left alone."""
        assert self.session_name is not None, "only server sessions can be terminated"
        with self.store.engine.connect() as conn:
            ended = database_hooks(self.store.engine).kill_sessions_of(conn, self.session_name)
            conn.commit()
        return ended


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[Database]:
    """A store on ``request.param``: ``"sqlite"`` (a file in the test's directory) or
    ``"postgresql"`` (tables with a prefix of their own, dropped afterwards)."""
    prefix = f"relay_{unique}_"
    if request.param == "sqlite":
        file_url = f"sqlite:///{tmp_path / 'events.db'}"
        store = SqlEventStore(file_url, table_prefix=prefix)
        yield Database("sqlite", file_url, prefix, store)
        store.close()
        return
    assert request.param == "postgresql", request.param
    url: str = request.getfixturevalue("postgresql_url")
    session_name = f"esrc-relay-{unique}"
    store = SqlEventStore(url, table_prefix=prefix)
    try:
        store.migrate()
        yield Database(
            "postgresql",
            _with_query(url, application_name=session_name),
            prefix,
            store,
            session_name,
        )
    finally:
        store.close()
        drop_store_tables(url, prefix)


@dataclass
class Broker:
    """A broker with names unique to one test: the publisher URL for the relay, how to
    cut the relay's connection, and how to read back everything it received."""

    kind: str
    publisher_url: str
    drop: Callable[[], int]
    """Cut the relay's broker connection(s); returns how many were cut."""
    read: Callable[[int], list[RelayEvent]]
    """Everything received, in order, given how many events are expected at least."""
    duplicates: bool
    """Whether the broker may hold an event twice (JetStream drops repeats)."""
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def arguments(self) -> list[str]:
        """The relay command's publisher arguments."""
        return ["--publisher", self.publisher_url]


BROKER_URLS = {"rabbitmq": "amqp_url", "nats": "nats_url"}
"""The brokers the relay process tests run on, and the fixture that gives each URL."""


@pytest.fixture
def broker(request: pytest.FixtureRequest, loop: LoopThread, unique: str) -> Iterator[Broker]:
    """The destination ``esrc-relay-<unique>`` on ``request.param``, a broker of
    :data:`BROKER_URLS`, read back with the broker distribution's reader (opened
    before the relay starts). ``"rabbitmq"``: the relay's connection is closed
    server-side with ``rabbitmqctl``. ``"nats"``: the relay connects through a
    :class:`TcpProxy`, and a drop cuts the proxied connections, which leaves the shared
    server running."""
    url: str = request.getfixturevalue(BROKER_URLS[request.param])
    name = f"esrc-relay-{unique}"
    place = destination(url, name)
    reader = place.reader(loop)
    cleanups: list[Callable[[], None]] = [reader.close, lambda: place.delete(loop=loop)]

    def read(expected: int) -> list[RelayEvent]:
        return [message.event for message in reader.read_all(expected, quiet=1.0, timeout=60)]

    if request.param == "rabbitmq":
        made = Broker(
            "rabbitmq",
            place.publisher_url(name=name, timeout="3"),
            drop=lambda: rabbitmq_close_connections(name),
            read=read,
            duplicates=True,
            cleanups=cleanups,
        )
    else:
        assert request.param == "nats", request.param
        parts = urlsplit(url)
        proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 4222))
        made = Broker(
            "nats",
            place.publisher_url(f"nats://127.0.0.1:{proxy.port}", timeout="3"),
            drop=proxy.drop,
            read=read,
            duplicates=False,
            cleanups=[proxy.close, *cleanups],
        )
    yield made
    for cleanup in made.cleanups:
        cleanup()
