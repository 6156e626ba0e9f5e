"""esrc testkit: the acceptance suite every esrc backend runs against itself.

Subclass :class:`EventStoreAcceptance` in a test module, give it a ``store_factory``
fixture and the backend's capabilities (:func:`capabilities_of`), and pytest runs the
contract tests, the thread races and the hypothesis state machine.

Names are imported on first use, so that loading the pytest plugin (which imports this
package) stays cheap in test runs that never touch the suite.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esrc_testkit.acceptance import EventStoreAcceptance
    from esrc_testkit.aggregates import DEFAULT_AGGREGATE_ID, Given, Outcome, given
    from esrc_testkit.async_publishers import (
        AsyncPublisherAcceptance,
        AwaitingBatchPublisher,
        AwaitingPublisher,
    )
    from esrc_testkit.async_suite import (
        AsyncEventStoreAcceptance,
        AsyncStoreFactory,
        AsyncStoreSuite,
        AwaitingRepository,
        AwaitingStore,
        LoopThread,
    )
    from esrc_testkit.capabilities import capabilities_of, requires
    from esrc_testkit.fixtures import StoreFactory, StoreSuite
    from esrc_testkit.histories import (
        LinearizabilityAcceptance,
        StoreModel,
        check_store_history,
        record_history,
        record_history_async,
    )
    from esrc_testkit.inspection import InspectionAcceptance
    from esrc_testkit.keys import KeyStoreAcceptance
    from esrc_testkit.late_commits import LateCommitAcceptance
    from esrc_testkit.locks import RelayLockAcceptance
    from esrc_testkit.machines import (
        EventStoreMachine,
        StateMachineAcceptance,
        run_event_store_machine,
    )
    from esrc_testkit.outbox import OutboxAcceptance
    from esrc_testkit.publishers import PublisherAcceptance, Received, relay_events
    from esrc_testkit.races import ConcurrencyAcceptance, run_in_threads
    from esrc_testkit.repository import RepositoryAcceptance
    from esrc_testkit.retention import RetentionAcceptance
    from esrc_testkit.servers import in_ci, reachable_url, server_unreachable, server_url
    from esrc_testkit.snapshots import SnapshotAcceptance
    from esrc_testkit.streaming import StreamingAcceptance
    from esrc_testkit.streams import StreamAcceptance
    from esrc_testkit.units_of_work import UnitOfWorkAcceptance

__all__ = [
    "DEFAULT_AGGREGATE_ID",
    "AsyncEventStoreAcceptance",
    "AsyncPublisherAcceptance",
    "AsyncStoreFactory",
    "AsyncStoreSuite",
    "AwaitingBatchPublisher",
    "AwaitingPublisher",
    "AwaitingRepository",
    "AwaitingStore",
    "ConcurrencyAcceptance",
    "EventStoreAcceptance",
    "EventStoreMachine",
    "Given",
    "InspectionAcceptance",
    "KeyStoreAcceptance",
    "LateCommitAcceptance",
    "LinearizabilityAcceptance",
    "LoopThread",
    "OutboxAcceptance",
    "Outcome",
    "PublisherAcceptance",
    "Received",
    "RelayLockAcceptance",
    "RepositoryAcceptance",
    "RetentionAcceptance",
    "SnapshotAcceptance",
    "StateMachineAcceptance",
    "StoreFactory",
    "StoreModel",
    "StoreSuite",
    "StreamAcceptance",
    "StreamingAcceptance",
    "UnitOfWorkAcceptance",
    "capabilities_of",
    "check_store_history",
    "given",
    "in_ci",
    "reachable_url",
    "record_history",
    "record_history_async",
    "relay_events",
    "requires",
    "run_event_store_machine",
    "run_in_threads",
    "server_unreachable",
    "server_url",
]

_HOME = {
    "AsyncPublisherAcceptance": "async_publishers",
    "AwaitingBatchPublisher": "async_publishers",
    "AwaitingPublisher": "async_publishers",
    "AsyncEventStoreAcceptance": "async_suite",
    "AsyncStoreFactory": "async_suite",
    "AsyncStoreSuite": "async_suite",
    "AwaitingRepository": "async_suite",
    "AwaitingStore": "async_suite",
    "LoopThread": "async_suite",
    "DEFAULT_AGGREGATE_ID": "aggregates",
    "Given": "aggregates",
    "Outcome": "aggregates",
    "given": "aggregates",
    "ConcurrencyAcceptance": "races",
    "EventStoreAcceptance": "acceptance",
    "EventStoreMachine": "machines",
    "InspectionAcceptance": "inspection",
    "KeyStoreAcceptance": "keys",
    "LateCommitAcceptance": "late_commits",
    "LinearizabilityAcceptance": "histories",
    "StoreModel": "histories",
    "check_store_history": "histories",
    "record_history": "histories",
    "record_history_async": "histories",
    "OutboxAcceptance": "outbox",
    "PublisherAcceptance": "publishers",
    "Received": "publishers",
    "RelayLockAcceptance": "locks",
    "RepositoryAcceptance": "repository",
    "RetentionAcceptance": "retention",
    "SnapshotAcceptance": "snapshots",
    "StateMachineAcceptance": "machines",
    "StoreFactory": "fixtures",
    "StoreSuite": "fixtures",
    "StreamAcceptance": "streams",
    "StreamingAcceptance": "streaming",
    "UnitOfWorkAcceptance": "units_of_work",
    "capabilities_of": "capabilities",
    "in_ci": "servers",
    "reachable_url": "servers",
    "requires": "capabilities",
    "relay_events": "publishers",
    "run_event_store_machine": "machines",
    "run_in_threads": "races",
    "server_unreachable": "servers",
    "server_url": "servers",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, including the public ones not imported yet."""
    return sorted([*globals(), *__all__])
