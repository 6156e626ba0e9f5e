"""The read side: investors with their balances and invoices with their status, kept
in SQL tables by a projection of the relayed events.

Each relayed event is applied exactly once, even though the relay and the brokers
deliver at least once: :meth:`ReadModels.apply_once` records the event's message id in
the ``applied_messages`` table **in the same transaction** as the changes the event
makes, so an event is either applied and recorded, or neither. A duplicate finds its id
recorded and changes nothing.

Amounts are whole cents in integer columns, so the arithmetic in ``UPDATE`` statements
is exact on every database (SQLite, PostgreSQL, MariaDB/MySQL).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from esrc_core.personal_data import FORGOTTEN
from esrc_faststream.consumer import Projection
from esrc_sqlalchemy.engines import create_application_engine, insert_ignoring_duplicates
from esrc_sqlalchemy.errors import driver_message
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from esrc_core import RelayEvent, mask_url
from financing.events import (
    BidAccepted,
    BidPlaced,
    BidRejected,
    CommittedFundsReturned,
    FinancingReversed,
    FundsCommitted,
    FundsDeposited,
    InvestorForgotten,
    InvestorRegistered,
    InvoicePutForSale,
    InvoiceWithdrawn,
    IssuerRegistered,
    IssuerSuspended,
    ReservedFundsReleased,
    registry,
)
from financing.money import from_cents, to_cents

__all__ = ["InvestorView", "InvoiceView", "ReadModelError", "ReadModels"]

FOR_SALE = "for sale"
FINANCED = "financed"


class ReadModelError(Exception):
    """The read models' database failed, or an event does not fit what the read models
    hold (an event for an investor or invoice they never saw)."""


@dataclass(frozen=True)
class InvestorView:
    """One row of the investors read model."""

    investor_id: uuid.UUID
    name: str
    available: Decimal
    reserved: Decimal
    committed: Decimal


@dataclass(frozen=True)
class InvoiceView:
    """One row of the invoices read model, with the issuer's and investor's names."""

    invoice_id: uuid.UUID
    number: str
    issuer: str
    face_value: Decimal
    asking_price: Decimal
    status: str
    """``"for sale"`` or ``"financed"``."""
    investor_id: uuid.UUID | None
    investor: str | None
    financed_amount: Decimal | None
    rejected_bids: int
    reversals: int


_CONNECT_TIMEOUT = 10
"""Seconds to connect to a database server."""
_LOCK_TIMEOUT = 30
"""Seconds a SQLite writer waits for the database lock."""


def _tables(prefix: str) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    md = sa.MetaData()
    uid = sa.String(36)
    mysql: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
    tables = {
        "applied": sa.Table(
            f"{prefix}applied_messages",
            md,
            sa.Column("message_id", sa.String(255), primary_key=True),
            **mysql,
        ),
        "issuers": sa.Table(
            f"{prefix}issuers",
            md,
            sa.Column("issuer_id", uid, primary_key=True),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("active", sa.Boolean, nullable=False),
            **mysql,
        ),
        "investors": sa.Table(
            f"{prefix}investors",
            md,
            sa.Column("investor_id", uid, primary_key=True),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("available_cents", sa.BigInteger, nullable=False),
            sa.Column("reserved_cents", sa.BigInteger, nullable=False),
            sa.Column("committed_cents", sa.BigInteger, nullable=False),
            **mysql,
        ),
        "invoices": sa.Table(
            f"{prefix}invoices",
            md,
            sa.Column("invoice_id", uid, primary_key=True),
            sa.Column("issuer_id", uid, nullable=False),
            sa.Column("number", sa.String(200), nullable=False),
            sa.Column("face_value_cents", sa.BigInteger, nullable=False),
            sa.Column("asking_price_cents", sa.BigInteger, nullable=False),
            sa.Column("status", sa.String(20), nullable=False),
            sa.Column("investor_id", uid, nullable=True),
            sa.Column("financed_cents", sa.BigInteger, nullable=True),
            sa.Column("rejected_bids", sa.Integer, nullable=False),
            sa.Column("reversals", sa.Integer, nullable=False),
            **mysql,
        ),
    }
    return md, tables


class ReadModels:
    """The investors and invoices read models in a SQL database.

    ``url`` is a database URL as the SQL event store takes it (``sqlite:///path``,
    ``postgresql+psycopg://...``, ``mysql+pymysql://...``) or an SQLAlchemy ``Engine``
    the application shares (``close`` then leaves it open). Tables are named
    ``<table_prefix>investors``, ``<table_prefix>invoices``, ``<table_prefix>issuers``
    and ``<table_prefix>applied_messages``; :meth:`create` makes them.

    :attr:`projection` applies relayed events; give it to a publisher or a broker
    subscription. ``ReadModels`` is itself the projection's
    :class:`~esrc_faststream.consumer.SeenMessages`. Safe to use from several threads;
    one consumer at a time should feed it, so that events apply in relay order.
    """

    def __init__(self, url: str | Engine, *, table_prefix: str = "financing_rm_") -> None:
        if isinstance(url, Engine):
            self.engine, self._owns_engine = url, False
            self.url = url.url.render_as_string(hide_password=True)
        else:
            # Transactions as the database gives them (never autocommit), the driver
            # esrc supports (or a clear error), bound values kept out of messages.
            self.engine = create_application_engine(
                url, connect_timeout=_CONNECT_TIMEOUT, lock_timeout=_LOCK_TIMEOUT
            )
            self._owns_engine = True
            self.url = mask_url(url)
        self.table_prefix = table_prefix
        self.metadata, tables = _tables(table_prefix)
        self._applied = tables["applied"]
        self._issuers = tables["issuers"]
        self._investors = tables["investors"]
        self._invoices = tables["invoices"]
        self._record_message = insert_ignoring_duplicates(self.engine, self._applied)
        # An engine whose threads share one connection (``sqlite://`` in memory) would
        # let a reader's rollback end a writer's transaction half-way: take turns.
        shared = isinstance(self.engine.pool, StaticPool)
        self._shared: AbstractContextManager[Any] = (
            threading.RLock() if shared else contextlib.nullcontext()
        )
        self._local = threading.local()
        self.projection = Projection(self)
        """Applies relayed events to the read models, once per message id."""
        self.projection.on(*sorted(registry.names))(self.handle)

    def __repr__(self) -> str:
        return f"ReadModels({self.url!r}, table_prefix={self.table_prefix!r})"

    def create(self) -> None:
        """Create the tables that do not exist yet."""
        self._run("create the read model tables", self.metadata.create_all)

    def drop(self) -> None:
        """Drop the tables (and everything the read models hold)."""
        self._run("drop the read model tables", self.metadata.drop_all)

    def close(self) -> None:
        """Release the engine's connections, if the read models created the engine."""
        if self._owns_engine:
            self.engine.dispose()

    def _run(self, doing: str, work: Callable[[Engine], Any]) -> Any:
        try:
            with self._shared:
                return work(self.engine)
        except sqlalchemy.exc.SQLAlchemyError as err:
            raise ReadModelError(f"{doing} in {self.url}: {driver_message(err)}") from err

    # The projection

    def apply_once(self, message_id: str, apply: Callable[[], None]) -> bool:
        """See :meth:`esrc_faststream.consumer.SeenMessages.apply_once`: records
        ``message_id`` and runs ``apply`` in one transaction, unless it is recorded."""
        doing = f"apply {message_id} to the read models in {self.url}"
        try:
            with self._shared, self.engine.begin() as conn:
                if not self._record(conn, message_id):
                    return False
                self._local.conn = conn
                try:
                    apply()
                finally:
                    self._local.conn = None
                return True
        except sqlalchemy.exc.SQLAlchemyError as err:
            raise ReadModelError(f"{doing}: {driver_message(err)}") from err

    def _record(self, conn: Connection, message_id: str) -> bool:
        statement = self._record_message.values(message_id=message_id)
        # SQLAlchemy keeps an INSERT's rowcount only when asked to.
        result = conn.execute(statement, execution_options={"preserve_rowcount": True})
        return result.rowcount == 1

    def _conn(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            raise RuntimeError("ReadModels.handle runs inside apply_once (use .projection)")
        return conn

    def handle(self, event: RelayEvent) -> None:
        """Apply one relayed event to the tables, in the transaction of the
        :meth:`apply_once` that calls it. Raises :class:`ReadModelError` when the event
        refers to a row that does not exist."""
        conn = self._conn()
        decoded = registry.from_raw(event.event, aggregate_type=event.aggregate_type)
        key = str(event.aggregate_id)
        investors, invoices = self._investors, self._invoices

        def change(table: sa.Table, column: sa.Column[Any], row_id: str, **values: Any) -> None:
            result = conn.execute(sa.update(table).where(column == row_id).values(**values))
            if result.rowcount != 1:
                raise ReadModelError(
                    f"apply {event.message_id} ({event.event.name}): no row {row_id} in "
                    f"{table.name}"
                )

        def investor(**values: Any) -> None:
            change(investors, investors.c.investor_id, key, **values)

        def invoice(**values: Any) -> None:
            change(invoices, invoices.c.invoice_id, key, **values)

        available = investors.c.available_cents
        reserved = investors.c.reserved_cents
        committed = investors.c.committed_cents
        match decoded:
            case IssuerRegistered(name=name):
                conn.execute(sa.insert(self._issuers).values(issuer_id=key, name=name, active=True))
            case IssuerSuspended():
                change(self._issuers, self._issuers.c.issuer_id, key, active=False)
            case InvestorRegistered(name=name):
                conn.execute(
                    sa.insert(investors).values(
                        investor_id=key,
                        name=name,
                        available_cents=0,
                        reserved_cents=0,
                        committed_cents=0,
                    )
                )
            case InvestorForgotten():
                investor(name=FORGOTTEN)
            case FundsDeposited(amount=amount):
                investor(available_cents=available + to_cents(amount))
            case BidPlaced(amount=amount):
                cents = to_cents(amount)
                investor(available_cents=available - cents, reserved_cents=reserved + cents)
            case FundsCommitted(amount=amount):
                cents = to_cents(amount)
                investor(reserved_cents=reserved - cents, committed_cents=committed + cents)
            case ReservedFundsReleased(amount=amount):
                cents = to_cents(amount)
                investor(reserved_cents=reserved - cents, available_cents=available + cents)
            case CommittedFundsReturned(amount=amount):
                cents = to_cents(amount)
                investor(committed_cents=committed - cents, available_cents=available + cents)
            case InvoicePutForSale() as sale:
                conn.execute(
                    sa.insert(invoices).values(
                        invoice_id=key,
                        issuer_id=str(sale.issuer_id),
                        number=sale.number,
                        face_value_cents=to_cents(sale.face_value),
                        asking_price_cents=to_cents(sale.asking_price),
                        status=FOR_SALE,
                        rejected_bids=0,
                        reversals=0,
                    )
                )
            case BidAccepted(investor_id=investor_id, amount=amount):
                invoice(
                    status=FINANCED,
                    investor_id=str(investor_id),
                    financed_cents=to_cents(amount),
                )
            case BidRejected():
                # An invoice withdrawn meanwhile is no longer listed: nothing to count.
                conn.execute(
                    sa.update(invoices)
                    .where(invoices.c.invoice_id == key)
                    .values(rejected_bids=invoices.c.rejected_bids + 1)
                )
            case InvoiceWithdrawn():
                conn.execute(sa.delete(invoices).where(invoices.c.invoice_id == key))
            case FinancingReversed():
                invoice(
                    status=FOR_SALE,
                    investor_id=None,
                    financed_cents=None,
                    reversals=invoices.c.reversals + 1,
                )

    # Queries

    def investors(self, ids: Iterable[uuid.UUID] | None = None) -> list[InvestorView]:
        """The investors (all, or those of ``ids`` that exist), by name."""
        t = self._investors
        query = sa.select(t).order_by(t.c.name, t.c.investor_id)
        if ids is not None:
            query = query.where(t.c.investor_id.in_([str(i) for i in ids]))
        rows = self._run("read the investors", lambda e: _fetch(e, query))
        return [
            InvestorView(
                uuid.UUID(r.investor_id),
                r.name,
                from_cents(r.available_cents),
                from_cents(r.reserved_cents),
                from_cents(r.committed_cents),
            )
            for r in rows
        ]

    def investor(self, investor_id: uuid.UUID) -> InvestorView:
        """One investor; raises ``LookupError`` when the read model does not have it."""
        found = self.investors([investor_id])
        if not found:
            raise LookupError(f"investor {investor_id} is not in the read model {self.url}")
        return found[0]

    def invoices(self, ids: Iterable[uuid.UUID] | None = None) -> list[InvoiceView]:
        """The invoices (all, or those of ``ids`` that exist), by number, with their
        issuer's and investor's names."""
        t, issuers, investors = self._invoices, self._issuers, self._investors
        query = (
            sa.select(t, issuers.c.name.label("issuer"), investors.c.name.label("investor"))
            .join(issuers, issuers.c.issuer_id == t.c.issuer_id)
            .outerjoin(investors, investors.c.investor_id == t.c.investor_id)
            .order_by(t.c.number, t.c.invoice_id)
        )
        if ids is not None:
            query = query.where(t.c.invoice_id.in_([str(i) for i in ids]))
        rows = self._run("read the invoices", lambda e: _fetch(e, query))
        return [
            InvoiceView(
                uuid.UUID(r.invoice_id),
                r.number,
                r.issuer,
                from_cents(r.face_value_cents),
                from_cents(r.asking_price_cents),
                r.status,
                uuid.UUID(r.investor_id) if r.investor_id else None,
                r.investor,
                from_cents(r.financed_cents) if r.financed_cents is not None else None,
                r.rejected_bids,
                r.reversals,
            )
            for r in rows
        ]

    def invoice(self, invoice_id: uuid.UUID) -> InvoiceView:
        """One invoice; raises ``LookupError`` when the read model does not have it."""
        found = self.invoices([invoice_id])
        if not found:
            raise LookupError(f"invoice {invoice_id} is not in the read model {self.url}")
        return found[0]

    def applied_messages(self) -> int:
        """How many distinct messages the read models have applied."""
        query = sa.select(sa.func.count()).select_from(self._applied)
        count: int = self._run("count applied messages", lambda e: _fetch(e, query)[0][0])
        return count

    def has_applied(self, message_id: str) -> bool:
        """Whether the message ``message_id`` was applied."""
        query = sa.select(self._applied.c.message_id).where(
            self._applied.c.message_id == message_id
        )
        return bool(self._run("read applied messages", lambda e: _fetch(e, query)))


def _fetch(engine: Engine, query: sa.Select[Any]) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(query))
