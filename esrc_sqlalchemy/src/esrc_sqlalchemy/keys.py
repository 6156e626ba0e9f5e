"""Data subjects' keys in a table: the SQL :class:`~esrc_core.personal_data.KeyStore`.

The table ``<prefix>keys`` is the key store's own, created when the key store opens
(``create_table=True``), outside the event store's schema and migrations: it holds no
events, so no relay ever publishes it, and it may live in another database than the
events (a URL or engine of its own), which keeps keys out of the events' backups.
One row per subject::

    subject       VARCHAR(255) primary key   the subject id, in clear
    key_id        VARCHAR(64)                stored with each ciphertext
    material      BLOB, NULL                 the key; NULL once forgotten
    forgotten_at  TIMESTAMP, NULL            when the subject was forgotten

Forgetting sets ``material`` to NULL and keeps the row, so a forgotten subject is told
from one that never had a key, and is never given a new key.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from esrc_core.errors import SubjectForgottenError
from esrc_core.personal_data import DataKey, new_data_key
from esrc_core.urls import url_secrets
from sqlalchemy.engine import Engine

from esrc_sqlalchemy.engines import (
    check_engine,
    create_application_engine,
    insert_ignoring_duplicates,
)
from esrc_sqlalchemy.errors import translate
from esrc_sqlalchemy.schema import check_identifier

__all__ = ["SqlKeyStore"]


class SqlKeyStore:
    """A :class:`~esrc_core.personal_data.KeyStore` in the table ``<table_prefix>keys``
    of the database at ``url`` (a store URL: SQLite, PostgreSQL, MariaDB/MySQL) or of an
    application's ``Engine``.

    The table is created on open unless ``create_table`` is false. Database errors are
    translated as the event store translates them
    (:class:`~esrc_core.errors.StoreUnavailableError` for a lost server, else
    :class:`~esrc_core.errors.EsrcError`), with neither statements nor parameters in
    their messages. Thread-safe; ``close()`` disposes of an engine it created.
    """

    def __init__(
        self,
        url: str | Engine,
        *,
        table_prefix: str = "esrc_",
        schema: str | None = None,
        create_table: bool = True,
        connect_timeout: float = 10.0,
    ) -> None:
        check_identifier(table_prefix, "table_prefix")
        if schema is not None:
            check_identifier(schema, "schema")
        if isinstance(url, Engine):
            check_engine(url)
            self._engine, self._owns_engine = url, False
            shown = url.url.render_as_string(hide_password=True)
            self._secrets: frozenset[str] = frozenset()
        else:
            self._engine = create_application_engine(url, connect_timeout=connect_timeout)
            self._owns_engine = True
            shown = self._engine.url.render_as_string(hide_password=True)
            self._secrets = url_secrets(url)
        self._where = f"the key store {shown} ({table_prefix}keys)"
        self.table = sa.Table(
            f"{table_prefix}keys",
            sa.MetaData(schema=schema),
            sa.Column("subject", sa.String(255), primary_key=True),
            sa.Column("key_id", sa.String(64), nullable=False),
            sa.Column("material", sa.LargeBinary(64), nullable=True),
            sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=True),
        )
        """The keys table."""
        self._insert = insert_ignoring_duplicates(self._engine, self.table)
        if create_table:
            self._run("create the keys table", self._create)

    def __repr__(self) -> str:
        return f"SqlKeyStore({self._where})"

    def __enter__(self) -> SqlKeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Dispose of the engine if the key store created it."""
        if self._owns_engine:
            self._engine.dispose()

    def _create(self, conn: sa.Connection) -> None:
        self.table.create(conn, checkfirst=True)

    def _run(self, doing: str, work: Any) -> Any:
        try:
            with self._engine.begin() as conn:
                return work(conn)
        except sqlalchemy.exc.SQLAlchemyError as err:
            raise translate(err, doing, self._where, self._secrets) from err

    def _row(self, conn: sa.Connection, subject: str, *, latest: bool = False) -> Any:
        # latest: a locking read (shared), which sees the newest committed row even in a
        # REPEATABLE READ snapshot taken before a concurrent first use inserted it.
        t = self.table
        query = sa.select(t.c.key_id, t.c.material, t.c.forgotten_at).where(t.c.subject == subject)
        if latest:
            query = query.with_for_update(read=True)
        return conn.execute(query).first()

    def key_for(self, subject: str) -> DataKey:
        """See :meth:`esrc_core.personal_data.KeyStore.key_for`."""

        def work(conn: sa.Connection) -> DataKey:
            row = self._row(conn, subject)
            if row is None:
                fresh = new_data_key()
                conn.execute(
                    self._insert,
                    {"subject": subject, "key_id": fresh.key_id, "material": fresh.material},
                )
                row = self._row(conn, subject, latest=True)
            if row is None or row.material is None:
                raise SubjectForgottenError(f"data subject {subject!r} was forgotten")
            return DataKey(row.key_id, bytes(row.material))

        found: DataKey = self._run(f"get the key of data subject {subject!r}", work)
        return found

    def key(self, subject: str) -> DataKey | None:
        """See :meth:`esrc_core.personal_data.KeyStore.key`."""

        def work(conn: sa.Connection) -> DataKey | None:
            row = self._row(conn, subject)
            if row is None or row.material is None:
                return None
            return DataKey(row.key_id, bytes(row.material))

        found: DataKey | None = self._run(f"read the key of data subject {subject!r}", work)
        return found

    def forgotten(self, subject: str) -> bool:
        """See :meth:`esrc_core.personal_data.KeyStore.forgotten`."""

        def work(conn: sa.Connection) -> bool:
            row = self._row(conn, subject)
            return row is not None and row.forgotten_at is not None

        answer: bool = self._run(f"read whether data subject {subject!r} is forgotten", work)
        return answer

    def forget(self, subject: str) -> None:
        """See :meth:`esrc_core.personal_data.KeyStore.forget`: the key's material is
        set to NULL in the same transaction that marks the subject forgotten."""

        def work(conn: sa.Connection) -> None:
            now = dt.datetime.now(dt.UTC)
            conn.execute(
                self._insert,
                {"subject": subject, "key_id": "", "material": None, "forgotten_at": now},
            )
            t = self.table
            conn.execute(
                sa.update(t).where(t.c.subject == subject).values(material=None, forgotten_at=now)
            )

        self._run(f"forget data subject {subject!r}", work)
