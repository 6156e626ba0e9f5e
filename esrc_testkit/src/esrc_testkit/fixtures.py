"""The base every acceptance class shares: the declared capabilities, the ``store``
fixture and small helpers for reading a store's outbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar, TypeAlias

import pytest
from esrc_core.capabilities import Capability, Holder
from esrc_core.relay import EventStoreOutbox, HasOutbox, RelayEvent
from esrc_core.store import EventStore

from esrc_testkit.capabilities import check_declared, declared_capabilities, skip_unless_declared

__all__ = ["EVERYTHING", "StoreFactory", "StoreSuite"]

StoreFactory: TypeAlias = Callable[[], EventStore]
"""What a backend's ``store_factory`` fixture returns: each call opens a new, empty store."""

EVERYTHING = 1_000_000
"""A limit larger than any number of events a test writes, to read a whole outbox."""


class StoreSuite:
    """Base of the acceptance classes; see :class:`esrc_testkit.EventStoreAcceptance`.

    A subclass provides a ``store_factory`` fixture (each call of the callable it
    returns gives a new, empty store; the fixture cleans up after its ``yield``), sets
    :attr:`capabilities`, and, if it declares ``"persistent"``, overrides :meth:`reopen`.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()
    """The capabilities the backend claims (:class:`esrc_core.plugins.Capability`
    names); tests of the others are skipped."""

    def reopen(self, store: EventStore) -> EventStore:
        """Open the data of ``store`` again, as a new store object, after
        ``store.close()``. Needed only for the ``"persistent"`` capability; the test
        closes the store it gets back."""
        raise NotImplementedError(
            f"{type(self).__qualname__} declares the 'persistent' capability but does not "
            "override reopen(store) to open the same data again"
        )

    @pytest.fixture
    def store(
        self, request: pytest.FixtureRequest, store_factory: StoreFactory
    ) -> Iterator[EventStore]:
        """A new, empty store from ``store_factory``, closed after the test.

        Skips, before opening anything, when the test needs a capability the class
        does not declare.
        """
        skip_unless_declared(self, request.function)
        store = store_factory()
        try:
            yield store
        finally:
            store.close()

    def has(self, capability: str) -> bool:
        """Whether the class declares ``capability``."""
        return capability in declared_capabilities(self)

    def test_declared_capabilities_are_implemented(self, store_factory: StoreFactory) -> None:
        """Every capability the class declares is implemented: the store (and its
        outbox, for ``wait``) has the capability's protocol. A declared capability
        without it fails here; it is never skipped."""
        store = store_factory()
        try:
            objects: dict[Holder, object] = {"store": store}
            if isinstance(store, HasOutbox):
                objects["outbox"] = store.outbox("esrc-capability-check")
            check_declared(self, objects)
        finally:
            store.close()

    def outbox(self, store: EventStore, name: str = "default") -> EventStoreOutbox:
        """``store``'s outbox of relay ``name``; fails the test if the store has none."""
        if not isinstance(store, HasOutbox):
            pytest.fail(
                f"{type(self).__qualname__} declares the 'outbox' capability but "
                f"{type(store).__qualname__} has no outbox(name) method"
            )
        return store.outbox(name)

    def unpublished(self, store: EventStore, name: str = "default") -> list[RelayEvent]:
        """Every event relay ``name`` has not marked, in the outbox's order."""
        return self.outbox(store, name).unpublished_events(EVERYTHING)

    def unpublished_if_outbox(self, store: EventStore, name: str = "default") -> list[RelayEvent]:
        """Like :meth:`unpublished`, or ``[]`` when the class does not declare an outbox;
        tests use it to check that a failed call wrote nothing."""
        if not self.has(Capability.OUTBOX):
            return []
        return self.unpublished(store, name)
