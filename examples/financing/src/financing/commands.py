"""The command handlers: most load one aggregate, run one command on it and save it.

A bid is not one handler: the investor reserves the funds, then the invoice decides,
and :mod:`financing.process` chains those steps through relayed events, each step a
handler of its own that changes one aggregate. Reversing a financing is the one
command that changes two aggregates at once: the invoice is put up for sale again and
the investor's committed funds come back in one unit of work
(:class:`~esrc_core.UnitOfWork`), stored together or not at all.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from esrc_core.personal_data import KeyStore, MemoryKeyStore
from esrc_sqlalchemy.keys import SqlKeyStore

from esrc_core import (
    AggregateNotFound,
    Capability,
    DeletesStreams,
    EventStore,
    Repository,
    RetryPolicy,
    UnitOfWork,
    require,
)
from esrc_sqlalchemy import SqlEventStore
from financing.errors import InvoiceNotForSale, InvoiceNotWithdrawn, UnknownAggregate
from financing.events import key_store, registry, use_key_store
from financing.investor import Investor
from financing.invoice import Invoice, InvoiceStatus
from financing.issuer import Issuer

__all__ = ["DEFAULT_RETRY", "Commands"]

A = TypeVar("A", Issuer, Investor, Invoice)

DEFAULT_RETRY = RetryPolicy(attempts=12, base_delay=0.002, max_delay=0.05)
"""How often a command is retried after a concurrency conflict: enough for a dozen
writers racing on one aggregate."""


class Commands:
    """The financing application's write side over one event store.

    Every handler loads the aggregate, applies the command and saves it with
    :meth:`~esrc_core.Repository.update_by_id`, which reloads and tries again when
    another writer saved the aggregate first (optimistic concurrency). A refused command
    raises a :class:`~financing.errors.FinancingError` and saves nothing; a command that
    names a missing aggregate raises :class:`~financing.errors.UnknownAggregate`.

    Saved events carry metadata: ``command`` (the handler's name), ``correlation_id``
    and, for the steps the choreography runs, ``causation_id`` (the message id of the
    event that triggered it, which ``esrc console`` follows from an event to its cause;
    see :mod:`esrc_core.correlation`: the steps run inside the context the consumer's
    ``Projection`` opens for the event it handles).
    Investors are snapshotted every ``investor_snapshot_every`` events. Safe to use from
    many threads.

    Investors' names are encrypted with ``keys`` (see :mod:`esrc_core.personal_data`);
    by default, for a (sync) SQL store, the keys table beside its tables (same database
    and table prefix), else keys in memory. The registry is the module's, so its key
    store becomes this one (:func:`~financing.events.use_key_store`).
    """

    def __init__(
        self,
        store: EventStore,
        *,
        investor_snapshot_every: int = 5,
        retry: RetryPolicy = DEFAULT_RETRY,
        keys: KeyStore | None = None,
    ) -> None:
        if keys is None:
            keys = MemoryKeyStore()
            if isinstance(store, SqlEventStore) and not store.engine.dialect.is_async:
                keys = SqlKeyStore(store.engine, table_prefix=store.table_prefix)
        use_key_store(keys)
        self.store = store
        self.issuers: Repository[Issuer] = Repository(store, Issuer, registry, retry=retry)
        self.investors: Repository[Investor] = Repository(
            store, Investor, registry, snapshot_every=investor_snapshot_every, retry=retry
        )
        self.invoices: Repository[Invoice] = Repository(store, Invoice, registry, retry=retry)
        self._conflicts = 0
        self._lock = threading.Lock()

    @property
    def conflicts(self) -> int:
        """How many times a handler lost a race to another writer and retried."""
        with self._lock:
            return self._conflicts

    # Issuers

    def register_issuer(self, name: str, *, issuer_id: uuid.UUID | None = None) -> uuid.UUID:
        """Register a new issuer; returns its id."""
        issuer = Issuer(issuer_id or uuid.uuid4(), name)
        self.issuers.add(issuer, metadata={"command": "register_issuer"})
        return issuer.id

    def suspend_issuer(self, issuer_id: uuid.UUID, reason: str) -> None:
        """Stop the issuer from selling invoices."""
        self._update(self.issuers, issuer_id, lambda i: i.suspend(reason), "suspend_issuer")

    def put_invoice_for_sale(
        self,
        issuer_id: uuid.UUID,
        number: str,
        face_value: Decimal | int | str,
        asking_price: Decimal | int | str,
    ) -> uuid.UUID:
        """Put the issuer's invoice ``number`` up for sale; returns the invoice id.

        Raises :class:`~financing.errors.IssuerNotActive` for a suspended issuer and
        :class:`~esrc_core.AggregateAlreadyExists` when the issuer already sold an
        invoice with this number.
        """
        issuer = self._find(self.issuers, issuer_id, f"put invoice {number} up for sale")
        invoice = issuer.put_invoice_for_sale(number, face_value, asking_price)
        self.invoices.add(invoice, metadata={"command": "put_invoice_for_sale"})
        return invoice.id

    # Investors

    def register_investor(self, name: str, *, investor_id: uuid.UUID | None = None) -> uuid.UUID:
        """Register a new investor with no funds; returns its id."""
        investor = Investor(investor_id or uuid.uuid4(), name)
        self.investors.add(investor, metadata={"command": "register_investor"})
        return investor.id

    def forget_investor(self, investor_id: uuid.UUID) -> None:
        """Forget the investor's personal data for good (crypto-shredding): record
        ``InvestorForgotten`` (read models erase their copies of the name), then delete
        the investor's key, after which every stored copy of the name, in events and
        snapshots, reads as ``"<forgotten>"``. Balances and bids stay. Running it again
        is harmless (a step that failed half-way is finished)."""
        self._update(self.investors, investor_id, lambda i: i.forget(), "forget_investor")
        key_store().forget(str(investor_id))

    def deposit(self, investor_id: uuid.UUID, amount: Decimal | int | str) -> None:
        """Add funds to the investor's available balance."""
        self._update(self.investors, investor_id, lambda i: i.deposit(amount), "deposit")

    def place_bid(
        self,
        investor_id: uuid.UUID,
        invoice_id: uuid.UUID,
        amount: Decimal | int | str,
        *,
        bid_id: uuid.UUID | None = None,
        on_attempt: Callable[[int], object] | None = None,
    ) -> uuid.UUID:
        """Bid ``amount`` on an invoice: reserves the investor's funds and returns the
        bid id. The invoice accepts or rejects the bid later, when the choreography
        hands it the relayed ``BidPlaced``.

        Raises :class:`~financing.errors.InvoiceNotForSale` when the invoice is financed
        (as far as this handler can see: a bid that crosses a concurrent one is
        rejected by the invoice instead), and what :meth:`Investor.place_bid
        <financing.investor.Investor.place_bid>` raises. ``on_attempt`` is called
        with the attempt number (1, 2, ...) each time the handler runs the command,
        after loading the investor.
        """
        doing = f"bid on invoice {invoice_id} by investor {investor_id}"
        invoice = self._find(self.invoices, invoice_id, doing)
        if invoice.status is InvoiceStatus.FINANCED:
            raise InvoiceNotForSale(f"{doing}: invoice {invoice.number} is already financed")
        if invoice.status is InvoiceStatus.WITHDRAWN:
            raise InvoiceNotForSale(f"{doing}: invoice {invoice.number} was withdrawn")
        bid = bid_id or uuid.uuid4()
        self._update(
            self.investors,
            investor_id,
            lambda i: i.place_bid(bid, invoice_id, amount),
            "place_bid",
            on_attempt=on_attempt,
        )
        return bid

    # Invoices

    def withdraw_invoice(self, invoice_id: uuid.UUID, reason: str) -> None:
        """Take an invoice that is not financed off the market (``InvoiceWithdrawn``);
        bids decided afterwards are rejected. Its stream may be deleted with
        :meth:`delete_withdrawn_invoice` once every reader has seen the withdrawal."""
        self._update(self.invoices, invoice_id, lambda i: i.withdraw(reason), "withdraw_invoice")

    def delete_withdrawn_invoice(self, invoice_id: uuid.UUID) -> None:
        """Delete a withdrawn invoice's stream for good (the store's ``delete-streams``
        capability): it can no longer be loaded, bid on or changed, and relays never
        publish its events they had not reached. Call it after the withdrawal was
        relayed, so that the read models saw the invoice go. A bid whose
        ``BidPlaced`` arrives afterwards gets its reserved funds released by the
        choreography.

        Raises :class:`~financing.errors.InvoiceNotWithdrawn` for an invoice that was
        not withdrawn, :class:`~financing.errors.UnknownAggregate` for one that does
        not exist (or was deleted already), and
        :class:`~esrc_core.NotSupportedError` on a store that cannot delete streams.
        """
        doing = f"delete withdrawn invoice {invoice_id}"
        deleting = require(self.store, Capability.DELETE_STREAMS, doing, DeletesStreams)
        invoice = self._find(self.invoices, invoice_id, doing)
        if invoice.status is not InvoiceStatus.WITHDRAWN:
            raise InvoiceNotWithdrawn(
                f"{doing}: invoice {invoice.number} is {invoice.status.value}; withdraw it first"
            )
        deleting.delete_stream(self.invoices.aggregate_type, invoice_id)

    def reverse_financing(self, invoice_id: uuid.UUID, reason: str) -> None:
        """Undo an invoice's financing: put it up for sale again and return the
        investor's committed funds, in one unit of work (both aggregates are saved, or
        neither; a concurrent change to either reloads both and tries again). The
        choreography's compensation for ``FinancingReversed`` then finds the funds
        returned already and does nothing.

        Raises :class:`~financing.errors.InvoiceNotFinanced` unless the invoice is
        financed, and :class:`~financing.errors.UnknownAggregate` for an unknown
        invoice. Needs a store with the ``units-of-work`` capability.
        """
        doing = f"reverse the financing of invoice {invoice_id}"
        metadata = {"command": "reverse_financing"}

        def reverse(unit: UnitOfWork) -> None:
            try:
                invoice = unit.load(self.invoices, invoice_id)
            except AggregateNotFound as err:
                raise UnknownAggregate(f"{doing}: there is no Invoice {invoice_id}") from err
            accepted = invoice.financed_by
            invoice.reverse_financing(reason)
            assert accepted is not None  # reverse_financing raised otherwise
            investor = unit.load(self.investors, accepted.investor_id)
            investor.return_committed_funds(accepted.bid_id, f"financing reversed: {reason}")
            unit.update(invoice, metadata=metadata)
            unit.update(investor, metadata=metadata)

        UnitOfWork(self.invoices, self.investors).run(reverse)

    # Steps of the choreography (see financing.process)

    def decide_bid(
        self,
        invoice_id: uuid.UUID,
        bid_id: uuid.UUID,
        investor_id: uuid.UUID,
        amount: Decimal,
    ) -> None:
        """Let the invoice accept or reject a placed bid (idempotent)."""
        self._update(
            self.invoices,
            invoice_id,
            lambda i: i.decide_bid(bid_id, investor_id, amount),
            "decide_bid",
        )

    def commit_funds(self, investor_id: uuid.UUID, bid_id: uuid.UUID) -> None:
        """Commit an accepted bid's reserved funds (idempotent)."""
        self._update(
            self.investors,
            investor_id,
            lambda i: i.commit_funds(bid_id),
            "commit_funds",
        )

    def release_reserved_funds(
        self,
        investor_id: uuid.UUID,
        bid_id: uuid.UUID,
        reason: str,
    ) -> None:
        """Release a rejected bid's reserved funds (idempotent compensation)."""
        self._update(
            self.investors,
            investor_id,
            lambda i: i.release_reserved_funds(bid_id, reason),
            "release_reserved_funds",
        )

    def return_committed_funds(
        self,
        investor_id: uuid.UUID,
        bid_id: uuid.UUID,
        reason: str,
    ) -> None:
        """Return the committed funds of a reversed financing (idempotent
        compensation)."""
        self._update(
            self.investors,
            investor_id,
            lambda i: i.return_committed_funds(bid_id, reason),
            "return_committed_funds",
        )

    def _find(self, repository: Repository[A], aggregate_id: uuid.UUID, doing: str) -> A:
        try:
            return repository.find_by_id(aggregate_id)
        except AggregateNotFound as err:
            raise UnknownAggregate(
                f"{doing}: there is no {repository.aggregate_type} {aggregate_id}"
            ) from err

    def _update(
        self,
        repository: Repository[A],
        aggregate_id: uuid.UUID,
        command: Callable[[A], None],
        name: str,
        *,
        on_attempt: Callable[[int], object] | None = None,
    ) -> A:
        attempts = 0

        def attempt(aggregate: A) -> None:
            nonlocal attempts
            attempts += 1
            if on_attempt is not None:
                on_attempt(attempts)
            command(aggregate)

        metadata = {"command": name}
        try:
            return repository.update_by_id(aggregate_id, attempt, metadata=metadata)
        except AggregateNotFound as err:
            raise UnknownAggregate(
                f"{name}: there is no {repository.aggregate_type} {aggregate_id}"
            ) from err
        finally:
            if attempts > 1:
                with self._lock:
                    self._conflicts += attempts - 1
