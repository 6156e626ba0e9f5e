"""The event store protocol: the contract every backend keeps."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from esrc_core.closing import Closeable
from esrc_core.errors import OutOfRangeError
from esrc_core.events import RawEvent, RawSnapshot
from esrc_core.ids import AggregateId

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "INT64_MAX",
    "INT64_MIN",
    "EventStore",
    "StreamingStore",
    "check_int",
    "check_page_size",
]

DEFAULT_PAGE_SIZE = 1000
"""The number of events a :class:`StreamingStore` reads per query unless told otherwise."""


INT64_MAX = 2**63 - 1
"""The largest version, limit, page size or position a store takes: a signed 64-bit
integer's, which is what databases store."""
INT64_MIN = -(2**63)
"""The smallest ``from_version`` a read takes (any negative one reads from the start)."""


def check_int(
    value: int, what: str, *, doing: str, minimum: int = 0, maximum: int = INT64_MAX
) -> int:
    """``value`` when it is an ``int`` (not a ``bool``) from ``minimum`` to ``maximum``.

    The one check of the integers the store, outbox and relay APIs take (versions,
    expected versions, limits, page sizes, batch sizes), so that every backend refuses
    the same values the same way, before anything is read or written. Raises
    ``TypeError`` for a value that is not an ``int`` and
    :class:`~esrc_core.errors.OutOfRangeError` naming ``what``, the range and
    ``doing`` for one outside it.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{doing}: {what} must be an int, got {value!r}")
    if not minimum <= value <= maximum:
        raise OutOfRangeError(f"{doing}: {what} must be from {minimum} to {maximum}, got {value}")
    return value


def check_page_size(page_size: int | None, *, doing: str) -> int:
    """``page_size`` as a :class:`StreamingStore` uses it: :data:`DEFAULT_PAGE_SIZE`
    for ``None``; raises ``TypeError`` (not an ``int``) or
    :class:`~esrc_core.errors.OutOfRangeError` (below 1 or above :data:`INT64_MAX`),
    saying ``doing``, otherwise."""
    if page_size is None:
        return DEFAULT_PAGE_SIZE
    return check_int(page_size, "page_size", doing=doing, minimum=1)


@runtime_checkable
class EventStore(Closeable, Protocol):
    """Stores event streams keyed by (aggregate type, aggregate id), and snapshots.

    Contract, checked by ``esrc_testkit``:

    - Versions start at 1: a stream of n events has version n.
    - An append is atomic: all of its events are stored, or none.
    - A read returns exactly what was appended: same names, bytes and metadata,
      in version order.
    - Ids are ``uuid.UUID``, ``str`` or ``int`` and keep their type; ``42`` and ``"42"``
      are different streams. Any other type raises
      :class:`~esrc_core.errors.InvalidAggregateIdError`.
    - Malformed events raise :class:`~esrc_core.errors.InvalidEventError` before
      anything is written.
    - Integers out of range raise :class:`~esrc_core.errors.OutOfRangeError` before
      anything is read or written (:func:`check_int`): an expected version below 0 or
      one the append would take past :data:`INT64_MAX`, a read's ``from_version``
      outside :data:`INT64_MIN`..:data:`INT64_MAX`, a limit or page size below 1 or
      above :data:`INT64_MAX`. A snapshot version no stream reaches raises
      :class:`~esrc_core.errors.SnapshotVersionError`, as any version above the stream's.
    - Driver errors are translated into :class:`~esrc_core.errors.EsrcError` subclasses
      (a lost connection into :class:`~esrc_core.errors.StoreUnavailableError`) with the
      cause chained.
    - Every method is safe to call from several threads at once unless the backend
      documents otherwise (and does not declare the ``threads`` capability).
    - ``close()`` may be called twice; any other method called after it raises
      :class:`~esrc_core.errors.StoreClosedError`. ``with store:`` closes it (a
      backend that names this protocol as a base inherits ``__enter__``/``__exit__``
      from :class:`~esrc_core.closing.Closeable`).

    Not part of the protocol: a ``url`` attribute. Nothing in esrc reads one; a store
    may offer it for messages and ``repr`` (the SQL store does), and then it holds
    the URL with its password masked (:func:`~esrc_core.urls.mask_url`). Reopening a
    store in tests is the acceptance class's ``reopen(store)``, not ``store.url``.
    """

    def add_aggregate(
        self, aggregate_type: str, aggregate_id: AggregateId, events: Sequence[RawEvent]
    ) -> None:
        """Create a new stream holding ``events`` at versions 1..n.

        Raises :class:`~esrc_core.errors.AggregateRequiresEvents` when ``events`` is
        empty and :class:`~esrc_core.errors.AggregateAlreadyExists` when the stream exists.
        """
        ...

    def append_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int,
        events: Sequence[RawEvent],
    ) -> None:
        """Append ``events`` to a stream that is at ``from_version``.

        Raises :class:`~esrc_core.errors.OptimisticConcurrencyError` when the stream's
        version is not ``from_version`` or the stream does not exist, and
        :class:`~esrc_core.errors.AggregateRequiresEvents` when ``events`` is empty.
        Nothing is stored when it raises.
        """
        ...

    def events(
        self, aggregate_type: str, aggregate_id: AggregateId, from_version: int = 0
    ) -> list[RawEvent]:
        """The stream's events with version greater than ``from_version``, in order.

        Raises :class:`~esrc_core.errors.AggregateNotFound` when the stream does not exist.
        """
        ...

    def contains_aggregate(self, aggregate_type: str, aggregate_id: AggregateId) -> bool:
        """Whether the stream exists."""
        ...

    def add_snapshot(
        self, aggregate_type: str, aggregate_id: AggregateId, snapshot: RawSnapshot
    ) -> None:
        """Store a snapshot; a second one at the same version replaces the first.

        Raises :class:`~esrc_core.errors.AggregateNotFound` when the stream does not
        exist and :class:`~esrc_core.errors.SnapshotVersionError` when the snapshot's
        version is below 1 or above the stream's version.
        """
        ...

    def latest_snapshot(self, aggregate_type: str, aggregate_id: AggregateId) -> RawSnapshot | None:
        """The snapshot with the highest version, or ``None`` if there is none (also
        when the stream does not exist)."""
        ...

    def close(self) -> None:
        """Release connections and other resources. Calling it twice is harmless;
        calling any other method afterwards raises
        :class:`~esrc_core.errors.StoreClosedError`."""
        ...


@runtime_checkable
class StreamingStore(Protocol):
    """An :class:`EventStore` that reads a stream page by page (capability
    ``streaming``), so a stream of any length is replayed holding one page of events
    at a time. The :class:`~esrc_core.repository.Repository` loads through it when the
    store offers it, and through :meth:`EventStore.latest_snapshot` and
    :meth:`EventStore.events` otherwise.

    Contract, checked by ``esrc_testkit``:

    - Both methods read the first page when called, so a stream that does not exist
      raises :class:`~esrc_core.errors.AggregateNotFound` before an iterator is
      returned.
    - The iterator yields the events after the start version up to the version the
      stream had when the first page was read, in version order, each exactly once,
      as :meth:`EventStore.events` would return them. Events appended meanwhile are
      not yielded and do not disturb it (a stream's stored events never change, so
      further pages need no transaction held open between them).
    - It reads at most ``page_size`` events per query (the store's default when
      ``None``; a positive ``int``) and holds no more than one page of them; a stream
      no longer than a page costs one query.
    - Errors while reading a later page (a lost connection) are raised from the
      iterator, translated as every other store error.
    """

    def iter_events(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        from_version: int = 0,
        *,
        page_size: int | None = None,
    ) -> Iterator[RawEvent]:
        """The stream's events with version greater than ``from_version``, in order,
        read one page at a time.

        Raises :class:`~esrc_core.errors.AggregateNotFound` when the stream does not
        exist (when called, not from the iterator).
        """
        ...

    def load_stream(
        self,
        aggregate_type: str,
        aggregate_id: AggregateId,
        *,
        snapshot: bool = True,
        page_size: int | None = None,
    ) -> tuple[RawSnapshot | None, Iterator[RawEvent]]:
        """The latest snapshot (``None`` if there is none, or when ``snapshot`` is
        false) and an iterator over the events after it (after version 0 without a
        snapshot), as :meth:`iter_events` reads them.

        Reads the snapshot and the first page in one round trip where the database
        allows. Raises :class:`~esrc_core.errors.AggregateNotFound` when the stream
        does not exist.
        """
        ...
