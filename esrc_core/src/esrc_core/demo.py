"""A short demonstration: an account aggregate saved, reloaded and updated, and its
events relayed in order. Run it with ``esrc demo [--store URL]``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from esrc_core.aggregate import EventRaiserAggregate
from esrc_core.capabilities import Capability, offered
from esrc_core.events import EventRegistry
from esrc_core.plugins import open_event_store, open_publisher
from esrc_core.relay import HasOutbox, Relay, RelayEvent
from esrc_core.repository import Repository

__all__ = ["Account", "AccountOpened", "MoneyDeposited", "MoneyWithdrawn", "registry", "run"]

registry = EventRegistry()
"""The demo's event registry."""


@registry.register
@dataclass(frozen=True)
class AccountOpened:
    """An account was opened for ``owner``."""

    account_id: uuid.UUID
    owner: str


@registry.register
@dataclass(frozen=True)
class MoneyDeposited:
    """``amount`` was paid into the account."""

    amount: Decimal


@registry.register
@dataclass(frozen=True)
class MoneyWithdrawn:
    """``amount`` was taken out of the account."""

    amount: Decimal


class Account(EventRaiserAggregate):
    """A bank account that never goes below zero."""

    balance = Decimal(0)

    def __init__(self, account_id: uuid.UUID, owner: str) -> None:
        super().__init__()
        self.raise_event(AccountOpened(account_id, owner))

    def deposit(self, amount: Decimal) -> None:
        """Pay ``amount`` (positive) in."""
        if amount <= 0:
            raise ValueError("a deposit must be positive")
        self.raise_event(MoneyDeposited(amount))

    def withdraw(self, amount: Decimal) -> None:
        """Take ``amount`` out; raises ``ValueError`` if the balance is too low."""
        if amount > self.balance:
            raise ValueError(f"balance {self.balance} is below {amount}")
        self.raise_event(MoneyWithdrawn(amount))

    def on_event(self, event: object) -> None:
        """Apply one event to the balance."""
        match event:
            case AccountOpened(account_id=account_id, owner=owner):
                self.id = account_id
                self.owner = owner
            case MoneyDeposited(amount=amount):
                self.balance += amount
            case MoneyWithdrawn(amount=amount):
                self.balance -= amount


def run(store_url: str = "memory://", out: Callable[[str], object] = print) -> list[RelayEvent]:
    """Run the demo on the store at ``store_url``, printing through ``out``; returns
    the events the relay delivered, in order."""
    store = open_event_store(store_url)
    publisher = open_publisher("memory://")
    try:
        accounts = Repository(store, Account, registry)
        account = Account(uuid.uuid4(), "Ada")
        account.deposit(Decimal("100.00"))
        accounts.add(account)
        out(f"added account {account.id} at version {account.initial_version}")

        loaded = accounts.find_by_id(account.id)
        out(f"reloaded: owner {loaded.owner}, balance {loaded.balance}")

        saved = accounts.update_by_id(account.id, lambda a: a.withdraw(Decimal("30.50")))
        out(f"withdrew 30.50: balance {saved.balance}, version {saved.initial_version}")

        delivered: list[RelayEvent] = []
        has_outbox = offered(store, Capability.OUTBOX, HasOutbox)
        if has_outbox is None:
            out(f"{store_url} has no outbox; nothing to relay")
            return delivered
        publisher.subscribe(delivered.append)  # type: ignore[attr-defined]
        relay = Relay(has_outbox.outbox("demo"), publisher)
        while relay.run_once():
            pass
        out("relayed, in order:")
        for event in delivered:
            raw = event.event
            out(f"  #{event.position} {event.message_id} {raw.name} {raw.data.decode()}")
        return delivered
    finally:
        publisher.close()
        store.close()
