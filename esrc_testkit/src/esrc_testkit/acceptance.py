"""The whole acceptance suite in one base class."""

from __future__ import annotations

from esrc_testkit.histories import LinearizabilityAcceptance
from esrc_testkit.inspection import InspectionAcceptance
from esrc_testkit.late_commits import LateCommitAcceptance
from esrc_testkit.locks import RelayLockAcceptance
from esrc_testkit.machines import StateMachineAcceptance
from esrc_testkit.outbox import OutboxAcceptance
from esrc_testkit.races import ConcurrencyAcceptance
from esrc_testkit.repository import RepositoryAcceptance
from esrc_testkit.retention import RetentionAcceptance
from esrc_testkit.snapshots import SnapshotAcceptance
from esrc_testkit.streaming import StreamingAcceptance
from esrc_testkit.streams import StreamAcceptance
from esrc_testkit.units_of_work import UnitOfWorkAcceptance

__all__ = ["EventStoreAcceptance"]


class EventStoreAcceptance(
    StreamAcceptance,
    SnapshotAcceptance,
    StreamingAcceptance,
    OutboxAcceptance,
    ConcurrencyAcceptance,
    LateCommitAcceptance,
    LinearizabilityAcceptance,
    RepositoryAcceptance,
    UnitOfWorkAcceptance,
    RetentionAcceptance,
    RelayLockAcceptance,
    InspectionAcceptance,
    StateMachineAcceptance,
):
    """Every acceptance test of an event store backend. Subclass it in a test module::

        import pytest
        from esrc_core import open_event_store
        from esrc_testkit import EventStoreAcceptance, capabilities_of

        class TestMyStore(EventStoreAcceptance):
            capabilities = capabilities_of("my://")

            @pytest.fixture
            def store_factory(self):
                stores = []

                def open_empty():
                    stores.append(open_event_store("my://"))
                    return stores[-1]

                yield open_empty
                for store in stores:
                    store.close()

    ``store_factory`` returns a callable; each call gives a new, empty store, and the
    fixture cleans up after its ``yield``. Tests of a capability missing from
    ``capabilities`` are skipped with a reason naming it. A backend that declares
    ``"persistent"`` also overrides ``reopen(store)``; ``state_machine_settings``
    tunes the hypothesis run. The parts (``StreamAcceptance``, ``SnapshotAcceptance``,
    ``StreamingAcceptance``, ``OutboxAcceptance``, ``ConcurrencyAcceptance``,
    ``LateCommitAcceptance``, ``LinearizabilityAcceptance``, ``RepositoryAcceptance``,
    ``UnitOfWorkAcceptance``, ``RetentionAcceptance``, ``RelayLockAcceptance``,
    ``InspectionAcceptance``, ``StateMachineAcceptance``) can also be subclassed one by one.
    """
