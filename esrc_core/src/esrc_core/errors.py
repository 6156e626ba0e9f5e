"""The exceptions esrc raises. Every one derives from :class:`EsrcError`.

Backends translate their driver's errors into these classes at the boundary and chain
the original with ``raise ... from err``, so callers never have to catch a driver type.
"""

from __future__ import annotations

__all__ = [
    "AggregateAlreadyExists",
    "AggregateNotFound",
    "AggregateRequiresEvents",
    "AmbiguousBackendError",
    "BackendUnavailableError",
    "BrokerUnavailableError",
    "EsrcError",
    "InvalidAggregateIdError",
    "InvalidEventError",
    "OptimisticConcurrencyError",
    "PublishError",
    "SerializationError",
    "SnapshotNotSupported",
    "SnapshotVersionError",
    "StoreUnavailableError",
    "UnknownBackendError",
    "UnknownEventError",
]


class EsrcError(Exception):
    """Base class of every error esrc raises on purpose."""


class AggregateNotFound(EsrcError, LookupError):
    """The stream (aggregate type, aggregate id) does not exist in the store."""


class AggregateAlreadyExists(EsrcError):
    """``add_aggregate`` was called for a stream that already exists."""


class AggregateRequiresEvents(EsrcError, ValueError):
    """An aggregate was added (or events appended) with an empty list of events."""


class OptimisticConcurrencyError(EsrcError):
    """The expected version of an append does not match the stream's version.

    Raised when another writer appended first, and when appending to a stream that
    does not exist (there is no version to match). Nothing of the failed append is stored.
    """


class SnapshotVersionError(EsrcError, ValueError):
    """A snapshot's version is below 1 or above the aggregate's current version."""


class SnapshotNotSupported(EsrcError):
    """The aggregate does not implement snapshots; the repository then skips them."""


class InvalidAggregateIdError(EsrcError, TypeError):
    """An aggregate id is not a ``uuid.UUID``, a non-empty ``str`` or an ``int``."""


class InvalidEventError(EsrcError, ValueError):
    """A raw event is malformed: empty or non-text name, data not bytes, bad metadata,
    or a value larger than the backend accepts."""


class UnknownEventError(EsrcError, LookupError):
    """An event name (or class) is not registered in the :class:`EventRegistry`."""


class SerializationError(EsrcError, ValueError):
    """An event or snapshot could not be encoded to, or decoded from, bytes."""


class UnknownBackendError(EsrcError, LookupError):
    """No installed plugin claims the URL scheme; the message lists what is installed."""


class AmbiguousBackendError(EsrcError, LookupError):
    """Two or more installed backends claim the URL scheme; prefix the URL with
    ``name+`` to choose one."""


class BackendUnavailableError(EsrcError, ImportError):
    """A backend is known but cannot be used, usually because its driver is missing;
    the message says what to install."""


class StoreUnavailableError(EsrcError, ConnectionError):
    """The store's server could not be reached or went away during an operation."""


class BrokerUnavailableError(EsrcError, ConnectionError):
    """A publisher's broker could not be reached (when opening the publisher) or the
    broker refused the setup it needs (an exchange or stream it declares)."""


class PublishError(EsrcError):
    """A publisher failed to deliver an event.

    ``published`` is the number of leading events of the batch that the broker did
    confirm before the failure; the relay marks exactly those as published.
    """

    def __init__(self, message: str, *, published: int = 0) -> None:
        super().__init__(message)
        self.published = published
