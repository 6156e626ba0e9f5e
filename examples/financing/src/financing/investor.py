"""The ``Investor`` aggregate: a balance, and the bids that hold parts of it.

An investor's money is in one of three places: **available** (free to bid with),
**reserved** (held by a bid the invoice has not decided on) or **committed** (paying for
an invoice the investor financed). A bid moves its amount from available to reserved;
then the choreography either commits it (the invoice accepted the bid) or releases it
(the invoice rejected it); committed funds are returned when a financing is reversed.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Self

from esrc_core.personal_data import FORGOTTEN, PersonalData

from esrc_core import AggregateId, EventRaiserAggregate, SerializationError
from financing.errors import BidStateError, DuplicateBid, InsufficientFunds, UnknownBid
from financing.events import (
    BidPlaced,
    CommittedFundsReturned,
    FundsCommitted,
    FundsDeposited,
    InvestorForgotten,
    InvestorRegistered,
    ReservedFundsReleased,
    registry,
)
from financing.money import format_money, money

__all__ = ["Bid", "BidState", "Investor", "InvestorState"]

_ZERO = Decimal("0.00")


class BidState(enum.Enum):
    """Where a bid's funds are: the only moves are reserved → committed → returned and
    reserved → released."""

    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"
    RETURNED = "returned"


@dataclass
class Bid:
    """One bid of the investor and where its funds are."""

    bid_id: uuid.UUID
    invoice_id: uuid.UUID
    amount: Decimal
    state: BidState = BidState.RESERVED

    @property
    def is_open(self) -> bool:
        """Whether the bid still holds funds (reserved or committed)."""
        return self.state in (BidState.RESERVED, BidState.COMMITTED)


@dataclass
class InvestorState:
    """Everything an investor knows, as :meth:`Investor.snapshot` stores it: the name
    encrypted as the events' personal data is (``None`` once forgotten)."""

    name: Annotated[str | None, PersonalData(subject="investor_id")]
    available: Decimal = _ZERO
    reserved: Decimal = _ZERO
    committed: Decimal = _ZERO
    bids: list[Bid] = field(default_factory=list)
    investor_id: uuid.UUID | None = None


class Investor(EventRaiserAggregate):
    """An investor who deposits funds and bids on invoices.

    Invariants: a bid never exceeds the available balance; an investor has at most one
    open bid per invoice; a bid's funds move only reserved → committed → returned or
    reserved → released. The steps the choreography drives (:meth:`commit_funds`,
    :meth:`release_reserved_funds`, :meth:`return_committed_funds`) are idempotent: a
    step already taken raises no event, so a duplicated message changes nothing.
    """

    id: uuid.UUID
    name = ""
    available = _ZERO
    reserved = _ZERO
    committed = _ZERO
    _bids: dict[uuid.UUID, Bid]

    def __init__(self, investor_id: uuid.UUID, name: str) -> None:
        super().__init__()
        if not name.strip():
            raise ValueError("an investor needs a name")
        self.raise_event(InvestorRegistered(investor_id, name.strip()))

    @property
    def bids(self) -> dict[uuid.UUID, Bid]:
        """The investor's bids by id (do not modify: raise events instead)."""
        return self._bids

    def deposit(self, amount: Decimal | int | str) -> None:
        """Add ``amount`` (positive, whole cents) to the available balance."""
        self.raise_event(FundsDeposited(money(amount)))

    @property
    def forgotten(self) -> bool:
        """Whether the investor asked to be forgotten."""
        return self.name == FORGOTTEN

    def forget(self) -> None:
        """Forget the investor's personal data (their name); no-op if already done.
        Deleting their key is the command handler's part."""
        if not self.forgotten:
            self.raise_event(InvestorForgotten())

    def place_bid(
        self, bid_id: uuid.UUID, invoice_id: uuid.UUID, amount: Decimal | int | str
    ) -> None:
        """Reserve ``amount`` for a bid on ``invoice_id``.

        Raises :class:`~financing.errors.InsufficientFunds` when ``amount`` exceeds the
        available balance and :class:`~financing.errors.DuplicateBid` when the investor
        already has an open bid on the invoice (or a bid with this id).
        """
        amount = money(amount, what="bid")
        doing = f"bid {amount} by investor {self.name} ({self.id}) on invoice {invoice_id}"
        if bid_id in self._bids:
            raise DuplicateBid(f"{doing}: bid id {bid_id} is already used")
        if any(b.is_open and b.invoice_id == invoice_id for b in self._bids.values()):
            raise DuplicateBid(f"{doing}: there is already an open bid on this invoice")
        if amount > self.available:
            raise InsufficientFunds(f"{doing}: only {format_money(self.available)} is available")
        self.raise_event(BidPlaced(bid_id, invoice_id, amount))

    def commit_funds(self, bid_id: uuid.UUID) -> None:
        """The bid was accepted: commit its reserved funds. No-op if already committed
        (or committed and since returned)."""
        bid = self._bid(bid_id, "commit funds")
        if bid.state in (BidState.COMMITTED, BidState.RETURNED):
            return
        if bid.state is not BidState.RESERVED:
            raise BidStateError(
                f"commit funds of bid {bid_id} of investor {self.id}: the bid was {bid.state.value}"
            )
        self.raise_event(FundsCommitted(bid_id, bid.invoice_id, bid.amount))

    def release_reserved_funds(self, bid_id: uuid.UUID, reason: str) -> None:
        """The bid was rejected: make its reserved funds available again. No-op if
        already released."""
        bid = self._bid(bid_id, "release reserved funds")
        if bid.state is BidState.RELEASED:
            return
        if bid.state is not BidState.RESERVED:
            raise BidStateError(
                f"release reserved funds of bid {bid_id} of investor {self.id}: "
                f"the bid was {bid.state.value}"
            )
        self.raise_event(ReservedFundsReleased(bid_id, bid.invoice_id, bid.amount, reason))

    def return_committed_funds(self, bid_id: uuid.UUID, reason: str) -> None:
        """The financing was reversed: make the committed funds available again. No-op
        if already returned."""
        bid = self._bid(bid_id, "return committed funds")
        if bid.state is BidState.RETURNED:
            return
        if bid.state is not BidState.COMMITTED:
            raise BidStateError(
                f"return committed funds of bid {bid_id} of investor {self.id}: "
                f"the bid was {bid.state.value}"
            )
        self.raise_event(CommittedFundsReturned(bid_id, bid.invoice_id, bid.amount, reason))

    def _bid(self, bid_id: uuid.UUID, doing: str) -> Bid:
        try:
            return self._bids[bid_id]
        except KeyError:
            raise UnknownBid(f"{doing}: investor {self.id} has no bid {bid_id}") from None

    def on_event(self, event: object) -> None:
        """Apply one investor event to the balances and bids."""
        match event:
            case InvestorRegistered(investor_id=investor_id, name=name):
                self.id = investor_id
                self.name = name
                self._bids = {}
            case InvestorForgotten():
                self.name = FORGOTTEN
            case FundsDeposited(amount=amount):
                self.available += amount
            case BidPlaced(bid_id=bid_id, invoice_id=invoice_id, amount=amount):
                self._bids[bid_id] = Bid(bid_id, invoice_id, amount)
                self.available -= amount
                self.reserved += amount
            case FundsCommitted(bid_id=bid_id, amount=amount):
                self._bids[bid_id].state = BidState.COMMITTED
                self.reserved -= amount
                self.committed += amount
            case ReservedFundsReleased(bid_id=bid_id, amount=amount):
                self._bids[bid_id].state = BidState.RELEASED
                self.reserved -= amount
                self.available += amount
            case CommittedFundsReturned(bid_id=bid_id, amount=amount):
                self._bids[bid_id].state = BidState.RETURNED
                self.committed -= amount
                self.available += amount

    def snapshot(self) -> bytes:
        """The state as JSON (see :class:`InvestorState`)."""
        name = None if self.forgotten else self.name
        bids = list(self._bids.values())
        state = InvestorState(name, self.available, self.reserved, self.committed, bids, self.id)
        return registry.marshaler.marshal(state)

    @classmethod
    def restore(cls, aggregate_id: AggregateId, data: bytes) -> Self:
        """Rebuild an investor from :meth:`snapshot` bytes."""
        if not isinstance(aggregate_id, uuid.UUID):
            raise SerializationError(f"restore investor {aggregate_id!r}: investor ids are UUIDs")
        state = registry.marshaler.unmarshal(data, InvestorState)
        investor = cls.blank()
        investor.id = aggregate_id
        investor.name = FORGOTTEN if state.name is None else state.name
        investor.available = state.available
        investor.reserved = state.reserved
        investor.committed = state.committed
        investor._bids = {bid.bid_id: bid for bid in state.bids}
        return investor
