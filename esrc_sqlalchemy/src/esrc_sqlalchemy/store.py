"""The SQL event store: :class:`SqlEventStore`."""

from __future__ import annotations

import functools
import json
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from esrc_core.atomic_appends import StreamAppend, check_appends
from esrc_core.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    AggregateRequiresEvents,
    EsrcError,
    EventsTruncatedError,
    InvalidAggregateIdError,
    InvalidEventError,
    NotSupportedError,
    OptimisticConcurrencyError,
    SnapshotVersionError,
    StoreClosedError,
    StreamDeletedError,
)
from esrc_core.events import RawEvent, RawSnapshot, check_events
from esrc_core.ids import AggregateId, check_aggregate_type, check_id, decode_id, encode_id
from esrc_core.inspection import RecordedEvent, RelayProgress, StreamInfo
from esrc_core.late_commits import CommitHold
from esrc_core.migrations import MigrationOutcome, MigrationResult, SchemaState
from esrc_core.store import INT64_MAX, INT64_MIN, EventStore, check_int, check_page_size
from esrc_core.urls import mask_url, url_secrets
from sqlalchemy.engine import Connection, Engine

from esrc_sqlalchemy._awaiting import new_lock, run_shielded
from esrc_sqlalchemy._executor import StoreExecutor
from esrc_sqlalchemy._holds import CommitHolds
from esrc_sqlalchemy.dialects import DIALECTS, EventRow, SqlDialect, dialect_of_url
from esrc_sqlalchemy.dialects.base import LAST_VERSION, StreamPage
from esrc_sqlalchemy.engines import check_engine, create_store_engine, normalize_url
from esrc_sqlalchemy.errors import StoreConfigError, translate
from esrc_sqlalchemy.inspection import StoreViews
from esrc_sqlalchemy.locks import SqlRelayLock
from esrc_sqlalchemy.outbox import SqlOutbox
from esrc_sqlalchemy.retention import StreamRemoval
from esrc_sqlalchemy.schema import (
    ID_MAX,
    NAME_MAX,
    RELAY_NAME_MAX,
    SCHEMA_VERSION,
    TYPE_MAX,
    Tables,
    apply_migrations,
    build_tables,
    check_identifier,
    schema_sql,
    schema_version,
)

__all__ = ["DEFAULT_MAX_PAYLOAD", "SqlEventStore", "stream_key"]

DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024
"""The default largest event data (and snapshot data), in bytes: 16 MiB."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_text(value: str) -> bool:
    """Whether ``value`` can be stored as text everywhere: UTF-8 encodable, no NUL."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def stream_key(aggregate_type: str, aggregate_id: AggregateId, doing: str) -> tuple[str, str]:
    """The stream key the tables store for an aggregate: its type and its encoded id
    (:func:`esrc_core.ids.encode_id`). Raises ``ValueError`` or
    :class:`~esrc_core.errors.InvalidAggregateIdError` (saying ``doing``) for a type or
    id the store cannot take."""
    check_aggregate_type(aggregate_type, doing=doing)
    if len(aggregate_type) > TYPE_MAX or not _is_text(aggregate_type):
        raise ValueError(
            f"{doing}: aggregate type must be at most {TYPE_MAX} characters of "
            "UTF-8 text without NUL"
        )
    encoded = encode_id(check_id(aggregate_id, doing=doing))
    if len(encoded) > ID_MAX:
        raise InvalidAggregateIdError(
            f"{doing}: aggregate id is {len(encoded) - 2} characters long; this store "
            f"accepts ids up to {ID_MAX - 2} characters"
        )
    if not _is_text(encoded):
        raise InvalidAggregateIdError(
            f"{doing}: aggregate id must be UTF-8 text without NUL characters "
            "(no unpaired surrogates)"
        )
    return aggregate_type, encoded


_KNOWN_MOST = 10_000
"""The most aggregate types and event names a store remembers as valid."""
_compact = json.JSONEncoder(separators=(",", ":")).encode


def _titles(dialects: Iterable[type[SqlDialect]]) -> str:
    return " and ".join(d.title for d in dialects)


_SCHEMA_VERSION_MAX = 32767
"""The largest schema version the ``SMALLINT`` columns hold."""
_WHOLE = 2**31 - 1
"""A page size no stream reaches: :meth:`SqlEventStore.events` reads one page."""


def _raw_events(rows: Sequence[Any]) -> list[RawEvent]:
    """RawEvents from rows that start (version, name, data, metadata, schema version),
    decoding each distinct metadata text once (events of one command usually share it; each event
    gets a dict of its own)."""
    events: list[RawEvent] = []
    append = events.append
    metas: dict[str, dict[str, str]] = {}
    for row in rows:
        stored = row[2]
        data = stored if type(stored) is bytes else bytes(stored)
        meta = row[3]
        if meta:
            parsed = metas.get(meta)
            if parsed is None:
                parsed = metas[meta] = json.loads(meta)
            append(RawEvent(row[1], data, parsed.copy(), row[4]))
        else:
            append(RawEvent(row[1], data, {}, row[4]))
    return events


def _schemas(events: Sequence[RawEvent]) -> list[tuple[int, int]]:
    """(offset, schema version) of each event whose schema version is not 1."""
    return [(n, e.schema_version) for n, e in enumerate(events) if e.schema_version != 1]


_DELETED = "the stream was deleted; it takes no more events"


def _checked(doing: str, page: StreamPage | None) -> StreamPage:
    """``page``, unless the stream does not exist or was deleted (a tombstone's
    negative version): then raise AggregateNotFound."""
    if page is None or page.version < 0:
        gone = "does not exist" if page is None else "was deleted"
        raise AggregateNotFound(f"{doing}: the aggregate {gone}")
    return page


def _truncated(doing: str, upto: int) -> EventsTruncatedError:
    return EventsTruncatedError(
        f"{doing}: events 1..{upto} were removed by retention; read after version {upto} "
        "(from the latest snapshot)",
        truncated_to=upto,
    )


def _check_start(doing: str, page: StreamPage, after: int) -> None:
    """Raise EventsTruncatedError when the first page of a read after version
    ``after`` does not start right after it although the stream goes beyond it:
    retention removed the events in between."""
    start = max(after, 0)
    if page.version <= start:
        return
    rows = page.events
    if not rows:
        raise _truncated(doing, page.version)
    if rows[0][0] != start + 1:
        raise _truncated(doing, int(rows[0][0]) - 1)


def _check_limits(connect_timeout: object, max_payload_bytes: object) -> None:
    """Raise :class:`StoreConfigError` for a ``connect_timeout`` that is not a positive
    number of seconds (under a day) or a ``max_payload_bytes`` that is not a positive int."""
    if (
        isinstance(connect_timeout, bool)
        or not isinstance(connect_timeout, int | float)
        or not 0 < connect_timeout < 86400
    ):
        raise StoreConfigError(
            f"connect_timeout must be a positive number of seconds, got {connect_timeout!r}"
        )
    if isinstance(max_payload_bytes, bool) or not isinstance(max_payload_bytes, int):
        raise StoreConfigError(f"max_payload_bytes must be an int, got {max_payload_bytes!r}")
    if max_payload_bytes < 1:
        raise StoreConfigError(f"max_payload_bytes must be positive, got {max_payload_bytes}")


class SqlEventStore(EventStore):
    """An :class:`~esrc_core.store.EventStore` with outbox on SQLite, PostgreSQL or
    MariaDB/MySQL, through SQLAlchemy Core.

    ``SqlEventStore(url)`` creates (and owns) an engine for ``url``;
    ``SqlEventStore(engine)`` uses the application's engine and its pool (``close``
    then leaves it open). Options:

    - ``table_prefix`` (default ``"esrc_"``): starts every table name; 1 to 41 letters,
      digits or underscores, not starting with a digit. Several stores with different
      prefixes share one database independently.
    - ``schema``: the PostgreSQL schema holding the tables (created if missing).
    - ``connect_timeout`` (seconds, default 10): how long connecting may take before
      :class:`~esrc_core.errors.StoreUnavailableError` (SQLite: how long a writer waits
      for the database lock). Only for stores that create their engine.
    - ``create_schema`` (default ``True``): create or upgrade the tables on first use;
      with ``False`` the first use checks they are at :data:`SCHEMA_VERSION` (see
      :meth:`migrate` and ``esrc migrate URL``), and a SQLite file that does not exist
      is an error rather than created. The ``esrc streams|events|tail|relays``
      commands open stores this way.
    - ``max_payload_bytes`` (default 16 MiB): the largest event data, metadata or
      snapshot accepted; larger ones raise :class:`~esrc_core.errors.InvalidEventError`.
    - ``notify`` (PostgreSQL only, default ``False``): after appends, send a
      ``pg_notify`` that wakes :meth:`SqlOutbox.wait_for_events
      <esrc_sqlalchemy.outbox.SqlOutbox.wait_for_events>`. It is sent from a thread of
      the store's (one notification for any number of appends since the last; see
      :mod:`esrc_sqlalchemy.notify`), so appends do not wait for it.
    - ``engine_options``: extra :func:`sqlalchemy.create_engine` arguments (pool size...).
    - ``durable_checkpoints`` (default ``True``): the default of :meth:`outbox`'s
      ``durable_checkpoint``; ``False`` lets relay checkpoints commit without waiting
      for the disk where the database allows it (PostgreSQL), at the price of
      duplicates after a server crash, never a loss. ``esrc relay --store-option
      durable_checkpoints=false`` sets it for a relay process.

    Limits: aggregate types and event names up to 200 characters, string ids up to 398
    characters (400 encoded), relay names up to 200 characters; none may contain NUL
    or unpaired surrogates. Breaking one raises before anything is written.

    Besides the event store it offers named outboxes (:meth:`outbox`), relay locks
    (:meth:`relay_lock`), the operator views of
    :class:`esrc_core.inspection.Inspectable` and :meth:`migrate`.

    Nothing connects until the first operation. All methods are safe to call from
    many threads; on ``sqlite://`` (in memory) they take turns on one connection.
    Driver errors are translated (a lost or refused connection becomes
    :class:`~esrc_core.errors.StoreUnavailableError`) with the cause chained. If the
    connection is lost while an append commits, the append may or may not be stored;
    read the stream to find out.
    """

    def __init__(
        self,
        url: str | Engine,
        *,
        table_prefix: str = "esrc_",
        schema: str | None = None,
        connect_timeout: float = 10.0,
        create_schema: bool = True,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD,
        notify: bool = False,
        engine_options: Mapping[str, Any] | None = None,
        durable_checkpoints: bool = True,
        asyncio: bool = False,
    ) -> None:
        check_identifier(table_prefix, "table_prefix")
        if schema is not None:
            check_identifier(schema, "schema")
        _check_limits(connect_timeout, max_payload_bytes)
        if isinstance(url, Engine):
            if engine_options:
                raise StoreConfigError(
                    "engine_options apply only when the store creates its engine"
                )
            dialect = check_engine(url)
            engine, self._owns_engine = url, False
            self.url = url.url.render_as_string(hide_password=True)
        elif isinstance(url, str):
            parsed = normalize_url(url, asyncio=asyncio)
            dialect = dialect_of_url(parsed)
            if asyncio and dialect.shares_memory(parsed):
                raise StoreConfigError(
                    f"the async store cannot use {mask_url(url)}: an in-memory database "
                    "is one connection shared by all, which tasks cannot take turns on; "
                    "use a file (sqlite:///path.db) or memory://"
                )
            engine = create_store_engine(
                parsed,
                connect_timeout=float(connect_timeout),
                engine_options=engine_options,
                asyncio=asyncio,
            )
            self._owns_engine = True
            self.url = mask_url(url)
        else:
            raise StoreConfigError(f"expected a URL or an Engine, got {type(url).__name__}")
        if schema is not None and not dialect.supports_schema:
            those = _titles(d for d in DIALECTS if d.supports_schema)
            raise StoreConfigError(f"schema= is for {those} only, not {dialect.title} ({self.url})")
        if notify and not dialect.supports_notify:
            those = _titles(d for d in DIALECTS if d.supports_notify)
            raise StoreConfigError(f"notify= is for {those} only, not {dialect.title} ({self.url})")
        self.engine = engine
        """The SQLAlchemy engine the store uses."""
        self.asyncio = bool(getattr(engine.dialect, "is_async", False))
        """Whether the engine is an asyncio engine's ``sync_engine``: the store then runs
        only inside SQLAlchemy's greenlet bridge, as the sync face of an
        :class:`~esrc_sqlalchemy.async_store.AsyncSqlEventStore`."""
        self.family = dialect.name
        """The database, as its dialect is registered: ``"sqlite"``, ``"postgresql"`` or
        ``"mysql"`` (also for MariaDB). Descriptive only."""
        self.table_prefix = table_prefix
        self.schema = schema
        self.max_payload_bytes = max_payload_bytes
        self.tables: Tables = build_tables(table_prefix, schema, dialect.ddl)
        """The store's table definitions."""
        self._dialect: SqlDialect = dialect(self.tables, engine, notify=notify)
        self.executor = StoreExecutor(
            url=self.url,
            dialect=self._dialect,
            ensure_ready=self._ensure_ready,
            secrets=url_secrets(
                url if isinstance(url, str) else url.url.render_as_string(hide_password=False)
            ),
        )
        """Internal: runs work on the store's database and carries its dialect and
        tables, for this package's modules and :mod:`esrc_sqlalchemy.testing`. Not a
        stable API."""
        self._create_schema = create_schema
        self.durable_checkpoints = bool(durable_checkpoints)
        self._ready = False
        self._closed = False
        self._ready_lock = new_lock(self.asyncio)
        self._outboxes: weakref.WeakSet[SqlOutbox] = weakref.WeakSet()
        self._known_types: set[str] = set()
        """Aggregate types that passed :func:`stream_key`."""
        self._known_names: set[str] = set()
        """Event names that passed :meth:`_rows`."""

    def __repr__(self) -> str:
        return f"SqlEventStore({self.url!r}, table_prefix={self.table_prefix!r})"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def notify_channel(self) -> str | None:
        """The channel appends ``pg_notify`` on (PostgreSQL with ``notify=True``; its
        name is derived from the schema and the table prefix), else ``None``. Any
        connection may ``LISTEN`` on it; a notification means "events were appended"
        and carries no payload."""
        return self._dialect.notify_channel

    # --- running statements ----------------------------------------------------------

    def _ensure_ready(self, doing: str) -> None:
        if self._ready:
            return
        # A task cancelled while the tables are being created must not stop that
        # halfway: the work goes on without it, and whoever comes next finds it done.
        run_shielded(self.asyncio, lambda: self._become_ready(doing))

    def _become_ready(self, doing: str) -> None:
        with self._ready_lock:
            if self._closed:
                raise StoreClosedError(f"{doing}: the store {self.url} is closed")
            if self._ready:
                return
            try:
                if self._create_schema:
                    self._migrate()
                else:
                    self._verify_schema(doing)
            except sqlalchemy.exc.SQLAlchemyError as err:
                raise translate(err, doing, self.url, self.executor.secrets) from err
            self._ready = True

    @property
    def engine_for_work(self) -> Engine:
        """The engine operations run on (on PostgreSQL: the store's engine in autocommit
        mode, since every operation is a single statement)."""
        return self._dialect.engine

    # --- validation ------------------------------------------------------------------

    def _rows(self, events: Sequence[RawEvent], doing: str) -> list[EventRow]:
        check_events(events, doing=doing)
        limit = self.max_payload_bytes
        rows: list[EventRow] = []
        for index, event in enumerate(events):
            name, data = event.name, event.data
            if len(name) > NAME_MAX:
                raise InvalidEventError(
                    f"{doing}: event {index} name is {len(name)} characters; at most "
                    f"{NAME_MAX} are allowed"
                )
            if not _is_text(name):
                raise InvalidEventError(
                    f"{doing}: event {index} name {_shown(name)} is not UTF-8 text without NUL"
                )
            if event.schema_version > _SCHEMA_VERSION_MAX:
                raise InvalidEventError(
                    f"{doing}: event {index} ({name}) has schema version "
                    f"{event.schema_version}; at most {_SCHEMA_VERSION_MAX} is allowed"
                )
            if len(data) > limit:
                raise InvalidEventError(
                    f"{doing}: event {index} ({name}) data is {len(data)} bytes, over the "
                    f"store's max_payload_bytes of {limit}"
                )
            meta = None
            if event.metadata:
                meta = json.dumps(dict(event.metadata), separators=(",", ":"))
            if meta is not None and len(meta) > limit:
                raise InvalidEventError(
                    f"{doing}: event {index} ({name}) metadata is {len(meta)} bytes as JSON, "
                    f"over the store's max_payload_bytes of {limit}"
                )
            rows.append((name, data, meta))
        if not rows:
            raise AggregateRequiresEvents(f"{doing}: at least one event is required")
        self._ensure_ready(doing)
        self._dialect.check_rows(rows, doing)
        if len(self._known_names) < _KNOWN_MOST:
            self._known_names.update(row[0] for row in rows)
        return rows

    def _fast_key(self, aggregate_type: str, aggregate_id: AggregateId) -> tuple[str, str] | None:
        """The stream key when the type was seen before and the id is plainly valid (a
        UUID, an int or a short ASCII str), else ``None``: :func:`stream_key` then
        checks (and builds its messages) in full."""
        if type(aggregate_type) is not str or aggregate_type not in self._known_types:
            return None
        kind = type(aggregate_id)
        if kind is uuid.UUID:
            return aggregate_type, encode_id(aggregate_id)
        if (kind is int or kind is str) and aggregate_id != "":
            encoded = encode_id(aggregate_id)
            if len(encoded) <= ID_MAX and encoded.isascii() and "\x00" not in encoded:
                return aggregate_type, encoded
        return None

    def _key(self, aggregate_type: str, aggregate_id: AggregateId, doing: str) -> tuple[str, str]:
        """:func:`stream_key`, remembering the type as valid."""
        key = stream_key(aggregate_type, aggregate_id, doing)
        if len(self._known_types) < _KNOWN_MOST:
            self._known_types.add(aggregate_type)
        return key

    def _fast_rows(self, events: Sequence[RawEvent]) -> list[EventRow] | None:
        """The rows of ``events`` when every check passes without a message to build
        (known names, bytes data, str metadata, within the limits), else ``None``:
        :meth:`_rows` then checks in full. Events sharing equal metadata share its JSON
        text."""
        if (type(events) is not list and type(events) is not tuple) or not events:
            return None
        if not self._ready or not self.executor.direct:
            return None
        names, limit = self._known_names, self.max_payload_bytes
        rows: list[EventRow] = []
        last: Any = None
        text: str | None = None
        for event in events:
            if type(event) is not RawEvent:
                return None
            name, data, meta = event.name, event.data, event.metadata
            if type(data) is not bytes or len(data) > limit or event.schema_version != 1:
                return None
            if type(name) is not str or name not in names:
                return None
            if not meta:
                rows.append((name, data, None))
                continue
            if meta != last:
                if type(meta) is not dict:
                    return None
                for k, v in meta.items():
                    if type(k) is not str or type(v) is not str:
                        return None
                text = _compact(meta)
                if len(text) > limit:
                    return None
                last = meta
            rows.append((name, data, text))
        return rows

    # --- EventStore ------------------------------------------------------------------

    def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """See :meth:`esrc_core.store.EventStore.add_aggregate`. One statement on
        PostgreSQL; on the others one transaction."""
        key = self._fast_key(aggregate_type, aggregate_id)
        rows = None if key is None else self._fast_rows(events)
        dialect = self._dialect
        if (
            key is None
            or rows is None
            or not (self.executor.direct and dialect.accepts_direct(rows))
        ):
            doing = f"add {aggregate_type} {_shown(aggregate_id)}"
            key = self._key(aggregate_type, aggregate_id, doing)
            rows = self._rows(events, doing)
            schemas = _schemas(events)
            if schemas or not (self.executor.direct and dialect.accepts_direct(rows)):
                stream = key

                def create(conn: Connection) -> None:
                    dialect.create_stream(conn, stream, rows)
                    self._write_schemas(conn, stream, 0, schemas)

                self.executor.run(
                    doing,
                    create,
                    write=True,
                    transaction=bool(schemas),
                    conflict=lambda: self._taken(doing, stream),
                    append=True,
                )
                dialect.events_written()
                return

        def adding() -> str:
            return f"add {aggregate_type} {_shown(aggregate_id)}"

        def exists() -> EsrcError:
            return self._taken(adding(), key)

        self.executor.run_direct(
            lambda cursor: dialect.direct_create(cursor, key, rows),
            adding,
            conflict=exists,
            append=True,
        )
        dialect.events_written()

    def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        """See :meth:`esrc_core.store.EventStore.append_events`. The database enforces
        the expected version (a conditional update of the stream's version)."""
        key = (
            self._fast_key(aggregate_type, aggregate_id)
            if type(from_version) is int and 0 <= from_version < LAST_VERSION
            else None
        )
        rows = None if key is None else self._fast_rows(events)
        dialect = self._dialect
        if (
            key is None
            or rows is None
            or not (self.executor.direct and dialect.accepts_direct(rows))
        ):
            doing = f"append to {aggregate_type} {_shown(aggregate_id)} at version {from_version}"
            check_int(from_version, "from_version", doing=doing)
            key = self._key(aggregate_type, aggregate_id, doing)
            rows = self._rows(events, doing)
            # The stream's version after the append must fit a signed 64-bit integer.
            check_int(from_version, "from_version", doing=doing, maximum=INT64_MAX - len(rows))
            schemas = _schemas(events)
            if schemas or not (self.executor.direct and dialect.accepts_direct(rows)):
                self._append_in_transaction(doing, key, from_version, rows, schemas)
                return

        def appending() -> str:
            return f"append to {aggregate_type} {_shown(aggregate_id)} at version {from_version}"

        def conflict() -> EsrcError:
            # Rare (a race lost inside the statement): worth a read for the message.
            doing = appending()
            try:
                current = self.executor.run(
                    doing, lambda conn: dialect.stream_version(conn, key), write=False
                )
            except EsrcError:
                current = None
            if current is not None and current < 0:
                return StreamDeletedError(f"{doing}: {_DELETED}")
            now = "" if current is None else f"; stream is at version {current}"
            return OptimisticConcurrencyError(
                f"{doing}: another writer appended at the same version{now}"
            )

        stored = self.executor.run_direct(
            lambda cursor: dialect.direct_extend(cursor, key, from_version, rows),
            appending,
            conflict=conflict,
            append=True,
        )
        if not stored:
            doing = appending()
            current = self.executor.run(
                doing, lambda conn: dialect.stream_version(conn, key), write=False
            )
            self._refused(doing, current)
        dialect.events_written()

    def _append_in_transaction(
        self,
        doing: str,
        key: tuple[str, str],
        from_version: int,
        rows: list[EventRow],
        schemas: list[tuple[int, int]],
    ) -> None:
        dialect = self._dialect

        def work(conn: Connection) -> tuple[bool, int | None]:
            if dialect.extend_stream(conn, key, from_version, rows):
                self._write_schemas(conn, key, from_version, schemas)
                return True, None
            return False, dialect.stream_version(conn, key)

        stored, current = self.executor.run(
            doing,
            work,
            write=True,
            transaction=bool(schemas),
            conflict=lambda: OptimisticConcurrencyError(
                f"{doing}: another writer appended at the same version"
            ),
            append=True,
        )
        if not stored:
            self._refused(doing, current)
        dialect.events_written()

    def append_streams(self, appends: Sequence[StreamAppend]) -> None:
        """See :meth:`esrc_core.atomic_appends.AtomicAppends.append_streams`. One
        transaction (on PostgreSQL too, whose other writes are single statements):
        first every stream row is claimed (the conditional ``UPDATE`` of its version)
        or created, in the order of the stream keys, so that units sharing streams
        wait for each other instead of deadlocking; then the events are inserted in
        the order of the parts, which is their order in the outbox. Every event of a
        unit commits at once, so the outbox's argument that nothing is skipped holds
        as for one append (on PostgreSQL they share the transaction id; on
        MariaDB/MySQL a sequencing pass numbers them all or none)."""
        doing = "append to several streams"
        self._ensure_ready(doing)
        parts = check_appends(appends, doing=doing)
        if not parts:
            return
        prepared: list[tuple[StreamAppend, tuple[str, str], list[EventRow]]] = []
        for part in parts:
            what = f"{doing}: {part.describe()}"
            prepared.append(
                (
                    part,
                    self._key(part.aggregate_type, part.aggregate_id, what),
                    self._rows(part.events, what),
                )
            )
        dialect = self._dialect
        creating: list[tuple[str, tuple[str, str]]] = [("", ("", ""))]

        def work(conn: Connection) -> None:
            for part, key, rows in sorted(prepared, key=lambda p: p[1]):
                if part.creates:
                    creating[0] = (part.describe(), key)
                    dialect.insert_stream(conn, key, len(rows))
                elif not dialect.claim_stream(conn, key, part.expected_version, len(rows)):
                    current = dialect.stream_version(conn, key)
                    self._refused(f"{doing}: {part.describe()}", current)
            for part, key, rows in prepared:
                dialect.insert_events(conn, key, part.expected_version, rows)
                self._write_schemas(conn, key, part.expected_version, _schemas(part.events))

        self.executor.run(
            doing,
            work,
            write=True,
            transaction=True,
            conflict=lambda: self._taken(f"{doing}: {creating[0][0]}", creating[0][1]),
            append=True,
        )
        dialect.events_written()

    def _write_schemas(
        self,
        conn: Connection,
        key: tuple[str, str],
        from_version: int,
        schemas: list[tuple[int, int]],
    ) -> None:
        """Set the schema version of the events just inserted after ``from_version``
        whose version is not 1 (``schemas``: (offset in the append, schema version)),
        in the append's transaction. Appends of version 1 events alone (the column's
        default) never come here."""
        if not schemas:
            return
        conn.execute(
            self._set_schema,
            [
                {"key_type": key[0], "key_id": key[1], "at": from_version + 1 + n, "sv": sv}
                for n, sv in schemas
            ],
        )

    @functools.cached_property
    def _set_schema(self) -> sa.Update:
        ev = self.tables.events
        key_t, key_i = self.tables.key_parameters()
        return (
            ev.update()
            .where(
                ev.c.aggregate_type == key_t,
                ev.c.aggregate_id == key_i,
                ev.c.version == sa.bindparam("at", type_=sa.BigInteger),
            )
            .values(schema_version=sa.bindparam("sv", type_=sa.SmallInteger))
        )

    def _taken(self, doing: str, key: tuple[str, str]) -> EsrcError:
        """The error of a creation that hit an existing stream row: the stream exists,
        or was deleted (one read, on the rare path of a conflict)."""
        dialect = self._dialect
        try:
            current = self.executor.run(
                doing, lambda conn: dialect.stream_version(conn, key), write=False
            )
        except EsrcError:
            current = None
        if current is not None and current < 0:
            return StreamDeletedError(f"{doing}: {_DELETED}")
        return AggregateAlreadyExists(f"{doing}: the aggregate already exists")

    def hold_commits(self) -> CommitHold:
        """See :meth:`esrc_core.late_commits.HoldsCommits.hold_commits`; for tests only.
        A held append runs its statements in a transaction, which then waits in
        SQLAlchemy's ``commit`` event for the release; while a hold is in force every
        append of this store takes that transaction path. Raises
        :class:`~esrc_core.errors.NotSupportedError` on SQLite, whose writes take turns."""
        reason = self._dialect.testing.no_late_commits
        if reason is not None:
            raise NotSupportedError(f"hold commits on {self.url}: {reason}")
        return self._holds.hold()

    @functools.cached_property
    def _holds(self) -> CommitHolds:
        return CommitHolds(self.executor)

    @staticmethod
    def _refused(doing: str, current: int | None) -> None:
        if current is None:
            raise OptimisticConcurrencyError(f"{doing}: the aggregate does not exist")
        if current < 0:
            raise StreamDeletedError(f"{doing}: {_DELETED}")
        raise OptimisticConcurrencyError(f"{doing}: stream is at version {current}")

    def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        """See :meth:`esrc_core.store.EventStore.events`. One query (a page as large
        as the stream)."""
        doing = f"read {aggregate_type} {_shown(aggregate_id)}"
        check_int(from_version, "from_version", doing=doing, minimum=INT64_MIN)
        key = self._key(aggregate_type, aggregate_id, doing)
        page = _checked(doing, self._read_page(doing, key, from_version, LAST_VERSION, _WHOLE))
        _check_start(doing, page, from_version)
        return _raw_events(page.events)

    def iter_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int = 0,
        *,
        page_size: int | None = None,
    ) -> Iterator[RawEvent]:
        """See :meth:`esrc_core.store.StreamingStore.iter_events`: one query per page,
        keyset on the version (no transaction or cursor is held between pages); a
        stream no longer than a page costs one query."""
        doing = f"read {aggregate_type} {_shown(aggregate_id)}"
        check_int(from_version, "from_version", doing=doing, minimum=INT64_MIN)
        size = check_page_size(page_size, doing=doing)
        key = self._key(aggregate_type, aggregate_id, doing)
        page = _checked(doing, self._read_page(doing, key, from_version, LAST_VERSION, size))
        _check_start(doing, page, from_version)
        return self._pages(doing, key, page, size)

    def load_stream(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        *,
        snapshot: bool = True,
        page_size: int | None = None,
    ) -> tuple[RawSnapshot | None, Iterator[RawEvent]]:
        """See :meth:`esrc_core.store.StreamingStore.load_stream`: the snapshot and the
        first page in one query on PostgreSQL (two on one connection on SQLite and
        MariaDB/MySQL), then one query per further page."""
        doing = f"load {aggregate_type} {_shown(aggregate_id)}"
        size = check_page_size(page_size, doing=doing)
        if not snapshot:
            return None, self.iter_events(aggregate_type, aggregate_id, page_size=size)
        key = self._key(aggregate_type, aggregate_id, doing)
        dialect = self._dialect
        if self._reads_direct():
            page = self.executor.run_direct(
                lambda cursor: dialect.direct_load_page(cursor, key, size),
                lambda: doing,
                reads_only=True,
            )
        else:
            page = self.executor.run(
                doing, lambda conn: dialect.load_page(conn, key, size), write=False
            )
        page = _checked(doing, page)
        found = None if page.snapshot is None else RawSnapshot(*page.snapshot)
        _check_start(doing, page, 0 if found is None else found.version)
        return found, self._pages(doing, key, page, size)

    def _reads_direct(self) -> bool:
        """Whether stream reads run on the executor's kept driver connections."""
        return self._ready and self.executor.direct and self._dialect.direct_reads

    def _read_page(
        self, doing: str, key: tuple[str, str], after: int, end: int, size: int
    ) -> StreamPage | None:
        """One page of the stream ``key``: up to ``size`` events with versions in
        ``(after, end]`` (:meth:`SqlDialect.read_page`)."""
        dialect = self._dialect
        if self._reads_direct():
            return self.executor.run_direct(
                lambda cursor: dialect.direct_read_page(cursor, key, after, end, size),
                lambda: doing,
                reads_only=True,
            )
        return self.executor.run(
            doing, lambda conn: dialect.read_page(conn, key, after, end, size), write=False
        )

    def _pages(
        self, doing: str, key: tuple[str, str], first: StreamPage, size: int
    ) -> Iterator[RawEvent]:
        """The events of ``first`` (a page from :meth:`SqlDialect.read_page` or
        ``load_page``), then of the pages after it up to the stream's version when the
        first page was read."""
        end = first.version
        rows: Sequence[Any] | None = first.events
        del first  # hold one page at a time
        while rows:
            last: int = rows[-1][0]
            full = len(rows) == size
            events = _raw_events(rows)
            rows = None
            yield from events
            if not full or last >= end:
                return
            page = self._read_page(doing, key, last, end, size)
            rows = None if page is None else page.events
            if rows and rows[0][0] != last + 1:
                raise _truncated(doing, int(rows[0][0]) - 1)

    def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        """See :meth:`esrc_core.store.EventStore.contains_aggregate`."""
        doing = f"check {aggregate_type} {_shown(aggregate_id)}"
        key = stream_key(aggregate_type, aggregate_id, doing)
        dialect = self._dialect
        version = self.executor.run(
            doing, lambda conn: dialect.stream_version(conn, key), write=False
        )
        return version is not None and version >= 0

    def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        """See :meth:`esrc_core.store.EventStore.add_snapshot`. An upsert that also
        checks the stream, in one statement."""
        doing = f"add snapshot of {aggregate_type} {_shown(aggregate_id)}"
        key = stream_key(aggregate_type, aggregate_id, doing)
        if not isinstance(snapshot, RawSnapshot) or not isinstance(snapshot.data, bytes):
            raise TypeError(f"{doing}: expected a RawSnapshot with bytes data")
        version, data = snapshot.version, snapshot.data
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"{doing}: the snapshot version must be an int")
        schema = snapshot.schema_version
        if type(schema) is not int or not 1 <= schema <= _SCHEMA_VERSION_MAX:
            raise InvalidEventError(
                f"{doing}: the snapshot's schema version must be an int in "
                f"1..{_SCHEMA_VERSION_MAX}, got {schema!r}"
            )
        if len(data) > self.max_payload_bytes:
            raise InvalidEventError(
                f"{doing}: the snapshot is {len(data)} bytes, over the store's "
                f"max_payload_bytes of {self.max_payload_bytes}"
            )
        self._ensure_ready(doing)
        dialect = self._dialect
        dialect.check_snapshot(data, doing)

        def work(conn: Connection) -> tuple[bool, int | None]:
            if 1 <= version <= INT64_MAX and dialect.upsert_snapshot(
                conn, key, version, data, schema
            ):
                return True, None
            return False, dialect.stream_version(conn, key)

        stored, current = self.executor.run(doing, work, write=True, single=True)
        if not stored:
            if current is None or current < 0:
                raise AggregateNotFound(f"{doing}: the aggregate does not exist")
            raise SnapshotVersionError(f"{doing}: version {version} is outside 1..{current}")

    def latest_snapshot(self, aggregate_type: str, aggregate_id: AggregateId) -> RawSnapshot | None:
        """See :meth:`esrc_core.store.EventStore.latest_snapshot`. One query."""
        doing = f"read snapshot of {aggregate_type} {_shown(aggregate_id)}"
        key = stream_key(aggregate_type, aggregate_id, doing)
        dialect = self._dialect
        row = self.executor.run(doing, lambda conn: dialect.latest_snapshot(conn, key), write=False)
        if row is None:
            return None
        version, data, schema = row
        return RawSnapshot(version, data if type(data) is bytes else bytes(data), schema)

    # --- deletion and retention (esrc_core.retention.DeletesStreams) -------------------

    @functools.cached_property
    def _removal(self) -> StreamRemoval:
        return StreamRemoval(self._dialect)

    def delete_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> None:
        """See :meth:`esrc_core.retention.DeletesStreams.delete_stream`: in one
        transaction the stream's row becomes a tombstone (it waits for an append in
        flight on the stream to commit, whose events are then deleted too) and its
        events and snapshots are deleted (see :mod:`esrc_sqlalchemy.retention`)."""
        doing = f"delete {aggregate_type} {_shown(aggregate_id)}"
        key = self._key(aggregate_type, aggregate_id, doing)
        removal = self._removal
        before = self.executor.run(
            doing, lambda conn: removal.delete(conn, key), write=True, transaction=True
        )
        if before is None:
            raise AggregateNotFound(f"{doing}: the aggregate does not exist")

    def truncate_stream(self, aggregate_type: str, aggregate_id: AggregateId) -> int:
        """See :meth:`esrc_core.retention.DeletesStreams.truncate_stream`: one
        ``DELETE`` of the events at or below the latest snapshot for which no
        checkpoint is still waiting, in a transaction."""
        doing = f"truncate {aggregate_type} {_shown(aggregate_id)}"
        key = self._key(aggregate_type, aggregate_id, doing)
        removal = self._removal
        removed = self.executor.run(
            doing, lambda conn: removal.truncate(conn, key), write=True, transaction=True
        )
        if removed is None:
            raise AggregateNotFound(f"{doing}: the aggregate does not exist")
        return removed

    # --- outbox, schema, lifecycle ---------------------------------------------------

    @staticmethod
    def _check_relay_name(name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("a relay name must be a non-empty str")
        if len(name) > RELAY_NAME_MAX or not _is_text(name):
            raise ValueError(
                f"relay name {_shown(name)} must be at most {RELAY_NAME_MAX} characters of "
                "UTF-8 text without NUL"
            )

    def outbox(self, name: str = "default", *, durable_checkpoint: bool | None = None) -> SqlOutbox:
        """The outbox of relay ``name``; see :class:`esrc_core.relay.HasOutbox` and
        :class:`~esrc_sqlalchemy.outbox.SqlOutbox` for its order.

        ``durable_checkpoint=False`` lets each checkpoint write (the mark after each
        published batch) commit without waiting for the disk, where the database
        allows that for one statement: on PostgreSQL its transaction runs with
        ``synchronous_commit`` off (about a WAL flush saved per batch); on SQLite and
        MariaDB/MySQL it changes nothing (their commit durability is a connection or
        server setting shared with the appends). Delivery is at least once either way:
        a checkpoint lost in a server crash only sends the events since the last one
        that reached the disk again, with the same message ids - duplicates, never a
        loss. The events themselves are as durable as the appends made them. ``None``
        takes the store's ``durable_checkpoints`` option."""
        self._check_relay_name(name)
        if durable_checkpoint is None:
            durable_checkpoint = self.durable_checkpoints
        outbox = SqlOutbox(
            self.executor, name, owner=repr(self), durable_checkpoint=durable_checkpoint
        )
        self._outboxes.add(outbox)
        return outbox

    def relay_lock(self, name: str) -> SqlRelayLock:
        """A new, not yet acquired lock on relay ``name``; see
        :class:`esrc_core.locks.HasRelayLock` and :mod:`esrc_sqlalchemy.locks`."""
        self._check_relay_name(name)
        return SqlRelayLock(self.executor, name, owner=repr(self))

    # --- operator views (esrc_core.inspection.Inspectable) ----------------------------

    @functools.cached_property
    def _views(self) -> StoreViews:
        return StoreViews(self._dialect)

    def streams(
        self, aggregate_type: str | None = None, *, limit: int | None = None
    ) -> list[StreamInfo]:
        """See :meth:`esrc_core.inspection.Inspectable.streams`: by type, then by id
        text (code point order on every database). One query."""
        doing = f"list streams of {self.url}"
        if aggregate_type is not None:
            stream_key(aggregate_type, 0, doing)
        if limit is not None:
            check_int(limit, "limit", doing=doing)
        views = self._views
        rows = self.executor.run(
            doing, lambda conn: views.streams(conn, aggregate_type, limit), write=False
        )
        return [
            StreamInfo(row[0], decode_id(row[1]), int(row[2]), views.time(row[3])) for row in rows
        ]

    def recorded_events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RecordedEvent]:
        """See :meth:`esrc_core.inspection.Inspectable.recorded_events`. One query."""
        doing = f"read {aggregate_type} {_shown(aggregate_id)}"
        check_int(from_version, "from_version", doing=doing, minimum=INT64_MIN)
        key = stream_key(aggregate_type, aggregate_id, doing)
        views = self._views
        rows = self.executor.run(
            doing, lambda conn: views.recorded(conn, key, from_version), write=False
        )
        if rows is None:
            raise AggregateNotFound(f"{doing}: the aggregate does not exist")
        return [
            RecordedEvent(
                aggregate_type,
                aggregate_id,
                int(r.version),
                int(r.position),
                RawEvent(
                    r.name,
                    bytes(r.data),
                    json.loads(r.metadata) if r.metadata else {},
                    int(r.schema_version),
                ),
                views.time(r.created_at),
            )
            for r in rows
        ]

    def relays(self) -> list[RelayProgress]:
        """See :meth:`esrc_core.inspection.Inspectable.relays`. Pending counts every
        committed event after the checkpoint (on PostgreSQL also those the outbox still
        holds back behind a transaction in progress). The oldest pending event is the
        first pending one in the relay's order on SQLite and PostgreSQL (one index
        probe; on PostgreSQL ``created_at`` is the writing transaction's start), the
        earliest recorded one on MariaDB/MySQL (see
        :meth:`~esrc_sqlalchemy.dialects.base.SqlDialect.relay_queue_order`). Counts
        every event once and each relay's pending ones."""
        views = self._views
        rows = self.executor.run(f"list relays of {self.url}", views.relays, write=False)
        return [RelayProgress(row[0], int(row[1]), int(row[2]), views.time(row[3])) for row in rows]

    def relay_lock_holders(self, names: Sequence[str]) -> dict[str, str | None]:
        """See :meth:`esrc_core.locks.InspectsRelayLocks.relay_lock_holders`: on
        PostgreSQL the backend holding each advisory lock; SQLite and MariaDB tell
        nothing (their locks can only be tested by taking them)."""
        dialect = self._dialect
        return self.executor.run(
            f"list relay lock holders of {self.url}",
            lambda conn: dialect.relay_lock_holders(conn, list(names)),
            write=False,
        )

    # --- paged views (esrc_core.inspection.PagedInspectable) ---------------------------

    def stream_page(
        self,
        aggregate_type: str | None,
        search: str | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[StreamInfo]:
        """See :meth:`esrc_core.inspection.PagedInspectable.stream_page`: a range of the
        streams table's key after ``after``, then the last event of each stream on it."""
        doing = f"list streams of {self.url}"
        check_int(limit, "limit", doing=doing)
        views = self._views
        rows = self.executor.run(
            doing,
            lambda conn: views.stream_page(conn, aggregate_type, search, after, limit),
            write=False,
        )
        return [
            StreamInfo(row[0], decode_id(row[1]), int(row[2]), views.time(row[3])) for row in rows
        ]

    def count_streams(self, aggregate_type: str | None, search: str | None) -> int:
        """See :meth:`esrc_core.inspection.PagedInspectable.count_streams`. Reads the
        streams table."""
        views = self._views
        return self.executor.run(
            f"count streams of {self.url}",
            lambda conn: views.count_streams(conn, aggregate_type, search),
            write=False,
        )

    def aggregate_types(self) -> list[str]:
        """See :meth:`esrc_core.inspection.PagedInspectable.aggregate_types`."""
        views = self._views
        return self.executor.run(
            f"list aggregate types of {self.url}", views.aggregate_types, write=False
        )

    def _recorded_row(self, row: Any) -> RecordedEvent:
        return RecordedEvent(
            row.aggregate_type,
            decode_id(row.aggregate_id),
            int(row.version),
            int(row.position),
            RawEvent(
                row.name,
                bytes(row.data),
                json.loads(row.metadata) if row.metadata else {},
                int(row.schema_version),
            ),
            self._views.time(row.created_at),
        )

    def event_at(self, position: int) -> RecordedEvent | None:
        """See :meth:`esrc_core.inspection.PagedInspectable.event_at`. One key lookup."""
        doing = f"read the event at position {position} of {self.url}"
        check_int(position, "position", doing=doing, minimum=INT64_MIN)
        views = self._views
        row = self.executor.run(doing, lambda conn: views.event_at(conn, position), write=False)
        return None if row is None else self._recorded_row(row)

    def events_after(self, position: int, limit: int) -> list[RecordedEvent]:
        """See :meth:`esrc_core.inspection.PagedInspectable.events_after`."""
        doing = f"read events after position {position} of {self.url}"
        check_int(position, "position", doing=doing, minimum=INT64_MIN)
        check_int(limit, "limit", doing=doing)
        views = self._views
        rows = self.executor.run(
            doing, lambda conn: views.events_after(conn, position, limit), write=False
        )
        return [self._recorded_row(row) for row in rows]

    def events_page(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int, limit: int
    ) -> list[RecordedEvent]:
        """See :meth:`esrc_core.inspection.PagedInspectable.events_page`. One query."""
        doing = f"read {aggregate_type} {_shown(aggregate_id)}"
        check_int(from_version, "from_version", doing=doing, minimum=INT64_MIN)
        check_int(limit, "limit", doing=doing)
        key = stream_key(aggregate_type, aggregate_id, doing)
        views = self._views
        rows = self.executor.run(
            doing, lambda conn: views.recorded_page(conn, key, from_version, limit), write=False
        )
        if rows is None:
            raise AggregateNotFound(f"{doing}: the aggregate does not exist")
        return [
            RecordedEvent(
                aggregate_type,
                aggregate_id,
                int(r.version),
                int(r.position),
                RawEvent(
                    r.name,
                    bytes(r.data),
                    json.loads(r.metadata) if r.metadata else {},
                    int(r.schema_version),
                ),
                views.time(r.created_at),
            )
            for r in rows
        ]

    def copy_relay(self, source: str, target: str) -> None:
        """See :meth:`esrc_core.inspection.Inspectable.copy_relay`. Sets ``target``'s
        checkpoint to exactly ``source``'s, even backwards, in one transaction."""
        self._check_relay_name(source)
        self._check_relay_name(target)
        views = self._views
        self.executor.run(
            f"copy relay {source!r} to {target!r} in {self.url}",
            lambda conn: views.copy(conn, source, target),
            write=True,
        )

    def forget_relay(self, name: str) -> None:
        """See :meth:`esrc_core.inspection.Inspectable.forget_relay`."""
        self._check_relay_name(name)
        views = self._views
        self.executor.run(
            f"forget relay {name!r} in {self.url}",
            lambda conn: views.forget(conn, name),
            write=True,
            single=True,
        )

    def migrate(self) -> MigrationResult:
        """Create or upgrade the tables to :data:`SCHEMA_VERSION` and say which it
        did (see :class:`~esrc_core.migrations.MigrationResult`).

        Idempotent, and safe to run from several threads or processes at once: runs
        take turns on a database lock (PostgreSQL ``pg_advisory_xact_lock``,
        MariaDB/MySQL ``GET_LOCK``, SQLite ``BEGIN IMMEDIATE``). Raises
        :class:`~esrc_core.errors.StoreUnavailableError` when the database cannot be
        reached and :class:`~esrc_core.errors.EsrcError` when its tables were written by
        a newer release.
        """
        doing = f"migrate the {self.table_prefix}* tables"
        with self._ready_lock:
            if self._closed:
                raise StoreClosedError(f"{doing}: the store {self.url} is closed")
            try:
                result = self._migrate()
            except sqlalchemy.exc.SQLAlchemyError as err:
                raise translate(err, doing, self.url, self.executor.secrets) from err
            self._ready = True
        return result

    def _migrate(self) -> MigrationResult:
        with self.executor.serial, self._dialect.migration() as conn:
            self._dialect.prepare(conn)
            before = schema_version(conn, self.tables) or None
            after = apply_migrations(conn, self.tables)
        if before is None:
            return MigrationResult(MigrationOutcome.CREATED, None, after)
        outcome = MigrationOutcome.UPGRADED if after > before else MigrationOutcome.CURRENT
        return MigrationResult(outcome, before, after)

    def schema_state(self) -> SchemaState:
        """Where the tables stand (see :meth:`esrc_core.migrations.Migratable.schema_state`):
        their version, ``None`` when they do not exist, and :data:`SCHEMA_VERSION`.
        Creates nothing, not even a missing SQLite file's database."""
        doing = f"read the schema version of the {self.table_prefix}* tables"
        if self._dialect.missing_database() is not None:
            return SchemaState(None, SCHEMA_VERSION)
        try:
            with self.executor.serial, self._dialect.base_engine.connect() as conn:
                self._dialect.prepare(conn)
                found = schema_version(conn, self.tables)
        except sqlalchemy.exc.SQLAlchemyError as err:
            raise translate(err, doing, self.url, self.executor.secrets) from err
        return SchemaState(found or None, SCHEMA_VERSION)

    def schema_sql(self) -> list[str]:
        """The statements that create the tables at :data:`SCHEMA_VERSION` in an empty
        database, in this database's SQL, built without connecting (see
        :meth:`esrc_core.migrations.Migratable.schema_sql`)."""
        return schema_sql(self.tables, self._dialect.base_engine.dialect)

    def _verify_schema(self, doing: str) -> None:
        missing = self._dialect.missing_database()
        if missing is not None:
            # Connecting would create it. Not a connection problem, so not
            # StoreUnavailableError: retrying would not make it appear.
            raise StoreConfigError(
                f"{doing}: {missing} (create_schema=False opens only an existing store; "
                "run `esrc migrate URL` to create it)"
            )
        with self.executor.serial, self._dialect.base_engine.connect() as conn:
            self._dialect.prepare(conn)
            found = schema_version(conn, self.tables)
        if found == SCHEMA_VERSION:
            return
        where = f"{self.url} (table prefix {self.table_prefix!r})"
        if found is not None and found > SCHEMA_VERSION:
            raise StoreConfigError(
                f"{doing}: the tables in {where} are at schema version {found}, newer than this "
                f"esrc-sqlalchemy understands ({SCHEMA_VERSION}); upgrade it"
            )
        state = "do not exist" if not found else f"are at schema version {found}"
        raise StoreConfigError(
            f"{doing}: the event store tables in {where} {state}; run `esrc migrate URL` or open "
            "the store with create_schema=True"
        )

    def close(self) -> None:
        """Close the outboxes' listening connections and, if the store created its
        engine, the engine's pool (for ``sqlite://`` that discards the data). Relay
        locks keep their own connections until released. Calling it twice is
        harmless; using the store afterwards raises
        :class:`~esrc_core.errors.StoreClosedError`."""
        with self._ready_lock:
            if self._closed:
                return
            self._closed = True
            self._ready = False
        for outbox in list(self._outboxes):
            outbox.close()
        self.executor.close()
        self._dialect.close()
        if self._owns_engine:
            self.engine.dispose()
