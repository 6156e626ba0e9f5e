"""The choreography: the steps that run when relayed events arrive.

No component orchestrates a bid from start to end. Each step reacts to one event and
runs one command on one aggregate, whose event in turn triggers the next step:

========================  ==========================================================
relayed event             next step (command)
========================  ==========================================================
``BidPlaced``             the invoice accepts or rejects the bid (``decide_bid``); if
                          the invoice was withdrawn and deleted, the investor's
                          reserved funds are released instead
``BidAccepted``           the investor commits the reserved funds (``commit_funds``)
``BidRejected``           compensation: the investor's reserved funds are released
``FinancingReversed``     compensation: the investor's committed funds are returned
========================  ==========================================================

Every step is idempotent (the aggregates ignore a step already taken), so a duplicated
message changes nothing, and a step that failed is simply retried when its message is
delivered again.
"""

from __future__ import annotations

import uuid

from esrc_core.correlation import handling
from esrc_faststream.consumer import MemorySeenMessages, Projection, SeenMessages

from esrc_core import RelayEvent
from financing.commands import Commands
from financing.errors import UnknownAggregate
from financing.events import (
    BidAccepted,
    BidPlaced,
    BidRejected,
    FinancingReversed,
    registry,
)

__all__ = ["FinancingProcess"]


def _uuid(event: RelayEvent) -> uuid.UUID:
    if not isinstance(event.aggregate_id, uuid.UUID):
        raise TypeError(
            f"{event.message_id}: expected a UUID aggregate id, got {event.aggregate_id!r}"
        )
    return event.aggregate_id


class FinancingProcess:
    """Runs the next step of the choreography for each relayed event.

    :attr:`projection` receives every event of the domain (events that start no step
    are acknowledged and ignored); feed it from a publisher (``publisher.subscribe(
    process.projection.handle)`` in process) or a broker subscription
    (:meth:`esrc_faststream.destination.Destination.subscribe`). ``seen``
    remembers the message ids handled; the default keeps them in memory, which is
    enough because the steps are idempotent.
    """

    def __init__(self, commands: Commands, seen: SeenMessages | None = None) -> None:
        self.commands = commands
        self.projection = Projection(seen if seen is not None else MemorySeenMessages())
        self.projection.on(*sorted(registry.names))(self.handle)

    def handle(self, event: RelayEvent) -> None:
        """Run the step ``event`` triggers, if any, inside
        :func:`esrc_core.correlation.handling`: the step's events carry ``event``'s
        correlation id, and its message id as their ``causation_id``."""
        with handling(event):
            self._step(event)

    def _step(self, event: RelayEvent) -> None:
        decoded = registry.from_raw(event.event, aggregate_type=event.aggregate_type)
        match decoded:
            case BidPlaced(bid_id=bid_id, invoice_id=invoice_id, amount=amount):
                investor_id = _uuid(event)
                try:
                    self.commands.decide_bid(invoice_id, bid_id, investor_id, amount)
                except UnknownAggregate:  # withdrawn and deleted: nobody will decide
                    self.commands.release_reserved_funds(
                        investor_id, bid_id, "the invoice was withdrawn"
                    )
            case BidAccepted(bid_id=bid_id, investor_id=investor_id):
                self.commands.commit_funds(investor_id, bid_id)
            case BidRejected(bid_id=bid_id, investor_id=investor_id, reason=reason):
                self.commands.release_reserved_funds(investor_id, bid_id, reason)
            case FinancingReversed(bid_id=bid_id, investor_id=investor_id, reason=reason):
                self.commands.return_committed_funds(
                    investor_id, bid_id, f"financing reversed: {reason}"
                )
