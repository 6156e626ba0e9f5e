"""esrc: event sourcing for Python.

The event store protocol, aggregates, the repository, the ordered relay and the
backend plugin system. Backends (``esrc-memory``, ``esrc-sqlalchemy``, third parties')
are separate distributions found through the ``esrc`` entry point group.
"""

from esrc_core.aggregate import (
    Aggregate,
    AggregateFactory,
    EventRaiserAggregate,
    StreamingFactory,
)
from esrc_core.async_outbox import (
    AsyncEventStoreOutbox,
    AsyncHasOutbox,
    AsyncHasRelayLock,
    AsyncReadAheadOutbox,
    AsyncRelayLock,
    AsyncWaitingOutbox,
)
from esrc_core.async_relay import AsyncRelay, InlinePublisher
from esrc_core.async_repository import AsyncRepository
from esrc_core.async_store import (
    AsyncAtomicAppends,
    AsyncDeletesStreams,
    AsyncEventStore,
    AsyncStreamingStore,
    Bridged,
    BridgedEventStore,
)
from esrc_core.atomic_appends import AtomicAppends, StreamAppend, check_appends
from esrc_core.backoff import Backoff
from esrc_core.bridge import GREENLETS, Bridge, GreenletBridge
from esrc_core.capabilities import (
    Capability,
    offered,
    outbox_of,
    require,
    supports,
)
from esrc_core.closing import AsyncCloseable, Closeable
from esrc_core.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    AggregateRequiresEvents,
    AmbiguousBackendError,
    BackendConfigError,
    BackendUnavailableError,
    BrokerUnavailableError,
    EsrcError,
    EventsTruncatedError,
    InvalidAggregateIdError,
    InvalidEventError,
    MissingUpcasterError,
    NotSupportedError,
    OptimisticConcurrencyError,
    OutOfRangeError,
    PublishError,
    SerializationError,
    SnapshotNotSupported,
    SnapshotVersionError,
    StoreClosedError,
    StoreUnavailableError,
    StreamDeletedError,
    UnknownBackendError,
    UnknownEventError,
)
from esrc_core.events import EventRegistry, RawEvent, RawSnapshot, check_events
from esrc_core.ids import AggregateId, check_id, decode_id, encode_id
from esrc_core.inspection import Inspectable, RecordedEvent, RelayProgress, StreamInfo
from esrc_core.late_commits import CommitHold, HoldsCommits
from esrc_core.locks import HasRelayLock, RelayLock
from esrc_core.marshaling import CompilesDecoders, EventMarshaler, JsonMarshaler
from esrc_core.migrations import Migratable, MigrationOutcome, MigrationResult, SchemaState
from esrc_core.plugins import (
    Backend,
    Plugins,
    hookimpl,
    open_async_event_store,
    open_async_publisher,
    open_event_store,
    open_publisher,
    plugins,
)
from esrc_core.relay import (
    AsyncBatchPublisher,
    AsyncPublisher,
    BatchPublisher,
    EventStoreOutbox,
    HasOutbox,
    Publisher,
    Relay,
    RelayEvent,
    WaitingOutbox,
    message_id,
)
from esrc_core.repository import Repository, RetryPolicy
from esrc_core.retention import DeletesStreams
from esrc_core.store import EventStore, StreamingStore
from esrc_core.unit_of_work import AsyncUnitOfWork, UnitOfWork
from esrc_core.urls import mask_url

__all__ = [
    "GREENLETS",
    "Aggregate",
    "AggregateAlreadyExists",
    "AggregateFactory",
    "AggregateId",
    "AggregateNotFound",
    "AggregateRequiresEvents",
    "AmbiguousBackendError",
    "AsyncAtomicAppends",
    "AsyncBatchPublisher",
    "AsyncCloseable",
    "AsyncDeletesStreams",
    "AsyncEventStore",
    "AsyncEventStoreOutbox",
    "AsyncHasOutbox",
    "AsyncHasRelayLock",
    "AsyncPublisher",
    "AsyncReadAheadOutbox",
    "AsyncRelay",
    "AsyncRelayLock",
    "AsyncRepository",
    "AsyncStreamingStore",
    "AsyncUnitOfWork",
    "AsyncWaitingOutbox",
    "AtomicAppends",
    "Backend",
    "BackendConfigError",
    "BackendUnavailableError",
    "Backoff",
    "BatchPublisher",
    "Bridge",
    "Bridged",
    "BridgedEventStore",
    "BrokerUnavailableError",
    "Capability",
    "Closeable",
    "CommitHold",
    "CompilesDecoders",
    "DeletesStreams",
    "EsrcError",
    "EventMarshaler",
    "EventRaiserAggregate",
    "EventRegistry",
    "EventStore",
    "EventStoreOutbox",
    "EventsTruncatedError",
    "GreenletBridge",
    "HasOutbox",
    "HasRelayLock",
    "HoldsCommits",
    "InlinePublisher",
    "Inspectable",
    "InvalidAggregateIdError",
    "InvalidEventError",
    "JsonMarshaler",
    "Migratable",
    "MigrationOutcome",
    "MigrationResult",
    "MissingUpcasterError",
    "NotSupportedError",
    "OptimisticConcurrencyError",
    "OutOfRangeError",
    "Plugins",
    "PublishError",
    "Publisher",
    "RawEvent",
    "RawSnapshot",
    "RecordedEvent",
    "Relay",
    "RelayEvent",
    "RelayLock",
    "RelayProgress",
    "Repository",
    "RetryPolicy",
    "SchemaState",
    "SerializationError",
    "SnapshotNotSupported",
    "SnapshotVersionError",
    "StoreClosedError",
    "StoreUnavailableError",
    "StreamAppend",
    "StreamDeletedError",
    "StreamInfo",
    "StreamingFactory",
    "StreamingStore",
    "UnitOfWork",
    "UnknownBackendError",
    "UnknownEventError",
    "WaitingOutbox",
    "check_appends",
    "check_events",
    "check_id",
    "decode_id",
    "encode_id",
    "hookimpl",
    "mask_url",
    "message_id",
    "offered",
    "open_async_event_store",
    "open_async_publisher",
    "open_event_store",
    "open_publisher",
    "outbox_of",
    "plugins",
    "require",
    "supports",
]
