"""The exceptions esrc raises. Every one derives from :class:`EsrcError`.

Backends translate their driver's errors into these classes at the boundary and chain
the original with ``raise ... from err``, so callers never have to catch a driver type.

The tree::

    EsrcError
    ├── AggregateNotFound (LookupError)
    ├── AggregateAlreadyExists
    ├── AggregateRequiresEvents (ValueError)
    ├── OptimisticConcurrencyError          retry: re-read, decide again, append again
    ├── StreamDeletedError                  the stream was deleted: never retried
    ├── EventsTruncatedError (LookupError)  read from the latest snapshot instead
    ├── SnapshotVersionError (ValueError)
    ├── SnapshotNotSupported
    ├── InvalidAggregateIdError (TypeError)
    ├── InvalidEventError (ValueError)
    ├── OutOfRangeError (ValueError)        an int argument outside what stores take
    ├── UnknownEventError (LookupError)
    ├── SerializationError (ValueError)
    │   ├── MissingUpcasterError            a stored schema version has no way to the current
    │   └── PersonalDataError               encrypted personal data cannot be read or written
    │       ├── TamperedDataError           a ciphertext fails authentication
    │       ├── SubjectKeyMissingError      no key, never had one: the wrong key store
    │       └── SubjectForgottenError       writing personal data of a forgotten subject
    ├── UnknownBackendError (LookupError)
    ├── AmbiguousBackendError (LookupError)
    ├── BackendUnavailableError (ImportError)
    ├── BackendConfigError (ValueError)     never retried: fix the URL or options
    ├── NotSupportedError (TypeError)       the backend lacks a capability
    ├── StoreUnavailableError (ConnectionError)   transient: retry with backoff
    ├── StoreClosedError (RuntimeError)     a store used after close()
    ├── BrokerUnavailableError (ConnectionError)  transient: retry with backoff
    └── PublishError

Configuration errors and transient errors are different classes because a caller
retries one and never the other: a relay runner backs off and retries
``StoreUnavailableError``/``BrokerUnavailableError``/``PublishError``, and stops at once
on ``BackendConfigError``. :data:`CONFIGURATION_ERRORS` is the one list of what is
never retried.
"""

from __future__ import annotations

__all__ = [
    "CONFIGURATION_ERRORS",
    "AggregateAlreadyExists",
    "AggregateNotFound",
    "AggregateRequiresEvents",
    "AmbiguousBackendError",
    "BackendConfigError",
    "BackendUnavailableError",
    "BrokerUnavailableError",
    "EsrcError",
    "EventsTruncatedError",
    "InvalidAggregateIdError",
    "InvalidEventError",
    "MissingUpcasterError",
    "NotSupportedError",
    "OptimisticConcurrencyError",
    "OutOfRangeError",
    "PersonalDataError",
    "PublishError",
    "SerializationError",
    "SnapshotNotSupported",
    "SnapshotVersionError",
    "StoreClosedError",
    "StoreUnavailableError",
    "StreamDeletedError",
    "SubjectForgottenError",
    "SubjectKeyMissingError",
    "TamperedDataError",
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

    ``attempts`` is how many tries ended in a conflict: 1 for a single append, and for
    :meth:`Repository.update_by_id <esrc_core.repository.Repository.update_by_id>`
    giving up, every try its retry policy allowed (the message then says so and quotes
    the last conflict, which is the chained cause).
    """

    def __init__(self, message: str = "", *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class StreamDeletedError(EsrcError):
    """An append to (or the creation of) a stream that was deleted
    (:meth:`~esrc_core.retention.DeletesStreams.delete_stream`): a deleted stream's
    id stays taken and its stream refuses events for good. Retrying cannot help."""


class EventsTruncatedError(EsrcError, LookupError):
    """A read asked for events that retention removed
    (:meth:`~esrc_core.retention.DeletesStreams.truncate_stream`): the stream's events
    up to ``truncated_to`` are gone, and only a read after that version (from the
    latest snapshot, as the repository loads) can be answered."""

    def __init__(self, message: str = "", *, truncated_to: int = 0) -> None:
        super().__init__(message)
        self.truncated_to = truncated_to


class SnapshotVersionError(EsrcError, ValueError):
    """A snapshot's version is below 1 or above the aggregate's current version."""


class SnapshotNotSupported(EsrcError):
    """The aggregate does not implement snapshots; the repository then skips them."""


class InvalidAggregateIdError(EsrcError, TypeError):
    """An aggregate id is not a ``uuid.UUID``, a non-empty ``str`` or an ``int``."""


class InvalidEventError(EsrcError, ValueError):
    """A raw event is malformed: empty or non-text name, data not bytes, bad metadata,
    or a value larger than the backend accepts."""


class OutOfRangeError(EsrcError, ValueError):
    """An integer argument of a store, outbox or relay (a version, an expected version,
    a limit, a page size, a batch size) is outside what it takes: below its smallest
    value (0 for an expected version, 1 for a limit) or beyond a signed 64-bit integer,
    which is what databases store. Raised before anything is read or written, by every
    backend alike (:func:`esrc_core.store.check_int`); the message names the argument,
    its range and the operation."""


class UnknownEventError(EsrcError, LookupError):
    """An event name (or class) is not registered in the :class:`EventRegistry`."""


class SerializationError(EsrcError, ValueError):
    """An event or snapshot could not be encoded to, or decoded from, bytes."""


class MissingUpcasterError(SerializationError):
    """A stored event's schema version cannot be brought to its class's current one: an
    upcaster step is missing, or the stored version is newer than the current one. The
    message names the event, the aggregate type when known, the stored version and the
    current one."""


class PersonalDataError(SerializationError):
    """Personal data (fields marked :class:`~esrc_core.personal_data.PersonalData`)
    cannot be encrypted or decrypted. Messages name the event class, the field and the
    data subject, never a key or the data."""


class TamperedDataError(PersonalDataError):
    """A stored ciphertext fails authentication: its bytes, key id, subject or field
    were changed after it was written, or it was encrypted with another key."""


class SubjectKeyMissingError(PersonalDataError):
    """A stored ciphertext names a data subject the key store never had a key for (as
    opposed to a forgotten one): the key store is not the one the events were written
    with, or its table prefix or database is wrong."""


class SubjectForgottenError(PersonalDataError):
    """Personal data of a forgotten data subject was to be written: its key is gone,
    and a new one would bring back data the subject asked to erase."""


class UnknownBackendError(EsrcError, LookupError):
    """No installed plugin claims the URL scheme; the message lists what is installed."""


class AmbiguousBackendError(EsrcError, LookupError):
    """Two or more installed backends claim the URL scheme; prefix the URL with
    ``name+`` to choose one."""


class BackendUnavailableError(EsrcError, ImportError):
    """A backend is known but cannot be used, usually because its driver is missing;
    the message says what to install."""


class BackendConfigError(EsrcError, ValueError):
    """A backend's URL, an option, or the server-side setup it needs cannot work.

    Raised by stores and publishers for a malformed URL, an unknown or badly typed
    option, an unsupported driver, or a broker/store configuration that no retry will
    fix (a NATS stream bound to other subjects, a missing stream with
    ``create_stream=false``). Callers must not retry it: the relay runner and
    ``esrc relay`` stop at once (exit status 2) with the message. Messages name the
    URL with its password masked and the option at fault.
    """


class StoreUnavailableError(EsrcError, ConnectionError):
    """The store's server could not be reached or went away during an operation."""


class StoreClosedError(EsrcError, RuntimeError):
    """A method of a store, sync or async (or of a repository or relay on it), was
    called after the store's ``close()`` or the end of its ``with`` block: a bug in
    the caller, never retried."""


class BrokerUnavailableError(EsrcError, ConnectionError):
    """A publisher's broker could not be reached when opening the publisher, or failed
    in a way a retry may fix; a setup that cannot work (an exchange or stream declared
    otherwise) is a :class:`BackendConfigError`."""


class PublishError(EsrcError):
    """A publisher failed to deliver an event.

    ``published`` is the number of leading events of the batch that the broker did
    confirm before the failure; the relay marks exactly those as published.
    """

    def __init__(self, message: str, *, published: int = 0) -> None:
        super().__init__(message)
        self.published = published


class NotSupportedError(EsrcError, TypeError):
    """An operation needs a capability the store or publisher does not offer (for
    example ``esrc relays`` on a store without inspection); see
    :mod:`esrc_core.capabilities`."""


CONFIGURATION_ERRORS: tuple[type[EsrcError], ...] = (
    BackendConfigError,
    BackendUnavailableError,
    UnknownBackendError,
    AmbiguousBackendError,
    NotSupportedError,
    StoreClosedError,
)
"""The errors that mean "this cannot work as configured": a bad URL or option, a setup
that cannot work, a missing driver, an unknown or ambiguous backend, a missing
capability. The relay runner never retries them and ``esrc`` exits with status 2 for
them; everything else that is an :class:`EsrcError` may pass and is retried or reported
as a failure (status 1)."""
