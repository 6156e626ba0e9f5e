"""The backends a run measures: how to open each one's store, its raw side, and how to
give both a clean slate."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esrc_sqlalchemy.dialects import dialect_of_url
from esrc_sqlalchemy.engines import normalize_url

from bench.raw import RawDatabase, open_raw_database
from bench.settings import Settings
from esrc_core import EventStore, mask_url, open_event_store

__all__ = [
    "DEFAULT",
    "KINDS",
    "KNOWN",
    "LABELS",
    "SQLITE_PRAGMAS",
    "Backend",
    "default_url",
    "prepare_backend",
]

KNOWN = ("memory", "sqlite", "postgresql", "postgresql-unix", "mysql")
"""Backend names ``--backends`` accepts. ``postgresql`` is PostgreSQL over TCP and
``postgresql-unix`` the same server over its unix socket: the store and the raw side
use the same transport, so each ratio compares like with like."""

DEFAULT = ("sqlite", "postgresql", "postgresql-unix", "mysql")
"""The backends a run measures unless ``--backends`` says otherwise."""

LABELS = {
    "memory": "in-memory",
    "sqlite": "SQLite",
    "postgresql": "PostgreSQL (TCP)",
    "postgresql-unix": "PostgreSQL (unix socket)",
    "mysql": "MariaDB/MySQL",
}
"""How each backend is named in the report."""

KINDS = {"postgresql-unix": "postgresql"}
"""The database kind of a backend whose name is not one (the raw driver to use)."""

_ENV = {
    "postgresql": ("ESRC_BENCH_POSTGRESQL_URL", "ESRC_TEST_POSTGRESQL_URL"),
    "postgresql-unix": ("ESRC_BENCH_POSTGRESQL_UNIX_URL",),
    "mysql": ("ESRC_BENCH_MYSQL_URL", "ESRC_TEST_MYSQL_URL"),
    "sqlite": ("ESRC_BENCH_SQLITE_URL",),
}
_LOCAL = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql-unix": "postgresql+psycopg://postgres@/test?host=/var/run/postgresql",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
}

SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL",)
"""Run on every raw SQLite connection: the SQL store puts its connections in WAL mode
and leaves ``synchronous`` at its default, so the raw side commits the same way."""


def default_url(name: str) -> str | None:
    """The URL of backend ``name`` from the environment (``ESRC_BENCH_<NAME>_URL``, then
    the tests' ``ESRC_TEST_<NAME>_URL``; ``postgresql-unix`` has only the former), else
    the local server's; ``None`` for SQLite
    (a temporary file) and ``memory://`` for the in-memory store."""
    if name == "memory":
        return "memory://"
    for variable in _ENV.get(name, ()):
        value = os.environ.get(variable)
        if value:
            return value
    return _LOCAL.get(name)


@dataclass
class Backend:
    """One backend under measurement: its store URL and options, and its raw side
    (``None`` for the in-memory store, which has no driver to compare with)."""

    name: str
    url: str
    store_options: dict[str, Any]
    raw: RawDatabase | None
    settings: Settings
    _temp_dir: Path | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """The backend's name in the report."""
        return LABELS.get(self.name, self.name)

    @property
    def kind(self) -> str:
        """The database kind: ``postgresql`` for both PostgreSQL transports, else the
        name."""
        return KINDS.get(self.name, self.name)

    @property
    def masked_url(self) -> str:
        """The URL with any password hidden."""
        return mask_url(self.url)

    @property
    def supports_notify(self) -> bool:
        """Whether the backend's store takes ``notify=True`` (appends wake outboxes that
        listen), as the SQL store's dialect for the URL says."""
        if self.raw is None:
            return False
        return dialect_of_url(normalize_url(self.url)).supports_notify

    def open_store(self, **options: Any) -> EventStore:
        """Open a new store on the backend (the SQL store with the bench table prefix),
        with ``options`` added to the backend's own."""
        return open_event_store(self.url, **{**self.store_options, **options})

    def reset(self) -> None:
        """Drop every bench table of the backend and of the raw side, then create the raw
        tables again. The store's must be closed first."""
        if self.raw is None:
            return
        self.raw.drop_tables([self.settings.table_prefix, self.settings.raw_prefix])
        self.raw.create_tables()

    def settle(self) -> None:
        """Gather the planner's statistics of every bench table, the store's and the
        raw side's, after an untimed first batch of writes: fresh tables have none, and
        the first figure measured on them would pay for plans chosen without."""
        if self.raw is not None:
            self.raw.analyze_tables([self.settings.table_prefix, self.settings.raw_prefix])

    def clean_up(self, *, drop_tables: bool = True) -> list[str]:
        """Drop every bench table (unless ``--keep-tables`` or ``drop_tables`` is false,
        as when the server cannot be reached) and delete the temporary SQLite
        directory; returns the names of the tables dropped."""
        dropped: list[str] = []
        keep = self.settings.keep_tables
        if self.raw is not None and drop_tables and not keep:
            dropped = self.raw.drop_tables([self.settings.table_prefix, self.settings.raw_prefix])
        if self._temp_dir is not None and not keep:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
        return dropped

    def scrub(self, message: str) -> str:
        """``message`` with the backend's password, if it contains it, hidden."""
        return self.raw.scrub(message) if self.raw is not None else message


def prepare_backend(name: str, settings: Settings) -> Backend:
    """The :class:`Backend` for ``name`` under ``settings``; connects to nothing yet.

    SQLite without a URL gets a file in a new temporary directory, deleted by
    :meth:`Backend.clean_up`. Raises ``ImportError`` when the raw driver is missing and
    ``ValueError`` for an unknown name.
    """
    if name not in KNOWN:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(KNOWN)}")
    if name == "memory":
        return Backend(name, "memory://", {}, None, settings)
    temp_dir: Path | None = None
    url = settings.urls.get(name) or default_url(name)
    if url is None:
        temp_dir = Path(tempfile.mkdtemp(prefix="esrc-bench-"))
        url = f"sqlite:///{temp_dir / 'bench.db'}"
    raw = open_raw_database(
        KINDS.get(name, name),
        url,
        prefix=settings.raw_prefix,
        timeout=settings.connect_timeout,
        sqlite_pragmas=SQLITE_PRAGMAS,
    )
    options = {"table_prefix": settings.table_prefix}
    return Backend(name, url, options, raw, settings, temp_dir)
