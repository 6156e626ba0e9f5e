"""The repository: persists aggregates as events and rehydrates them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from esrc_core import _telemetry as otel
from esrc_core._telemetry import TELEMETRY, Instruments, id_attribute
from esrc_core.aggregate import Aggregate, AggregateFactory, StreamingFactory
from esrc_core.backoff import Backoff
from esrc_core.capabilities import Capability, offered
from esrc_core.correlation import correlation_metadata
from esrc_core.errors import (
    AggregateAlreadyExists,
    AggregateRequiresEvents,
    OptimisticConcurrencyError,
    SnapshotNotSupported,
)
from esrc_core.events import EventRegistry, RawEvent, RawSnapshot
from esrc_core.ids import AggregateId, check_aggregate_type, check_id
from esrc_core.store import EventStore, StreamingStore

__all__ = ["Repository", "RetryPolicy"]

T = TypeVar("T", bound=Aggregate)

log = logging.getLogger("esrc.repository")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy(Backoff):
    """A :class:`~esrc_core.backoff.Backoff` with the defaults of
    :meth:`Repository.update_by_id`'s retries after an
    :class:`~esrc_core.errors.OptimisticConcurrencyError`: 3 tries in all (the first
    one included; ``attempts=1`` disables retries), and before retry k a random sleep
    in ``[0, min(max_delay, base_delay * 2**(k-1))]`` with ``base_delay`` 5 ms and
    ``max_delay`` 0.5 s ("full jitter"), so competing writers spread out.
    """

    base_delay: float = 0.005
    max_delay: float = 0.5
    jitter: float = 1.0
    attempts: int | None = 3


class Repository(Generic[T]):
    """Persists and rehydrates aggregates of one type on top of an :class:`EventStore`.

    ``factory`` rebuilds aggregates from history; an
    :class:`~esrc_core.aggregate.EventRaiserAggregate` subclass is its own factory.
    ``aggregate_type`` names the streams and defaults to the factory's class name.

    Snapshots are taken by policy: after a save that crosses a multiple of
    ``snapshot_every`` versions (default 200; 0 disables), in the caller's thread. A
    failed snapshot is logged and does not fail the save. Loading reads the latest
    snapshot and the events after it; with ``load_snapshots=False`` it ignores
    snapshots and replays every event (the result is the same when the aggregate's
    ``snapshot``/``restore`` are faithful; it saves the snapshot lookup where none are
    kept, and bypasses snapshots that cannot be trusted). Snapshots are taken at
    ``snapshot_schema`` (default 1); raise it when the form of ``snapshot()`` changes,
    and older snapshots are passed over for a replay from the events.
    ``load_snapshots`` is separate from ``snapshot_every``: a repository that takes no
    snapshots still uses those other writers took.

    On a store with the ``streaming`` capability
    (:class:`~esrc_core.store.StreamingStore`) a load reads the snapshot and the first
    page of events in one round trip and further pages only for a longer stream; with
    a :class:`~esrc_core.aggregate.StreamingFactory` (such as an
    :class:`~esrc_core.aggregate.EventRaiserAggregate`) events are decoded and applied
    as they are read, so a stream of any length loads holding the aggregate and one
    page of events. Other stores and factories get the whole stream as a list.

    A repository holds no per-aggregate state and is safe to share between threads if
    its store is.
    """

    def __init__(
        self,
        store: EventStore,
        factory: AggregateFactory[T],
        registry: EventRegistry,
        *,
        aggregate_type: str | None = None,
        snapshot_every: int = 200,
        retry: Backoff | None = None,
        metadata: Mapping[str, str] | None = None,
        load_snapshots: bool = True,
        snapshot_schema: int = 1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if aggregate_type is None:
            aggregate_type = getattr(factory, "__name__", None)
            if aggregate_type is None:
                raise ValueError("Repository needs aggregate_type= when the factory is not a class")
        self.aggregate_type = check_aggregate_type(aggregate_type, doing="create Repository")
        if snapshot_every < 0:
            raise ValueError(f"snapshot_every must be 0 (off) or positive, got {snapshot_every}")
        self.store = store
        self.factory = factory
        self.registry = registry
        self.snapshot_every = snapshot_every
        self.retry: Backoff = retry if retry is not None else RetryPolicy()
        self.metadata: Mapping[str, str] = dict(metadata or {})
        self.load_snapshots = load_snapshots
        """Whether loads start from the latest snapshot (see the class docstring)."""
        if type(snapshot_schema) is not int or snapshot_schema < 1:
            raise ValueError(
                f"snapshot_schema must be an int of 1 or more, got {snapshot_schema!r}"
            )
        self.snapshot_schema = snapshot_schema
        """The schema version of the aggregate's snapshot form: snapshots are taken at
        it, and a stored snapshot of another version is not used (the aggregate is
        replayed from its events instead)."""
        self.sleep = sleep
        """How :meth:`update_by_id` waits between tries (``time.sleep``; the
        :class:`~esrc_core.async_repository.AsyncRepository` passes one that awaits)."""
        self._streaming_of: tuple[EventStore, StreamingStore | None] | None = None
        self._iterables_of: tuple[AggregateFactory[T], bool] | None = None

    def find_by_id(self, aggregate_id: AggregateId) -> T:
        """Load the aggregate: latest snapshot (if any, and if :attr:`load_snapshots`)
        plus the events after it.

        A snapshot the factory cannot restore (its format changed, say) is logged and
        ignored: the aggregate is then replayed from its first event. Errors reading or
        decoding the events are raised as they are, never taken for a bad snapshot.
        Raises :class:`~esrc_core.errors.AggregateNotFound` when it does not exist.
        """
        if TELEMETRY.on and (live := TELEMETRY.instruments()) is not None:
            return self._find_observed(live, aggregate_id)
        return self._find(aggregate_id)[0]

    def _find_observed(self, live: Instruments, aggregate_id: AggregateId) -> T:
        """:meth:`find_by_id` in an ``esrc.load`` span, counting the events replayed."""
        aggregate_type = self.aggregate_type
        attributes = {
            otel.AGGREGATE_TYPE: aggregate_type,
            otel.AGGREGATE_ID: id_attribute(aggregate_id),
        }
        with live.span(otel.LOAD, attributes) as span:
            try:
                aggregate, snapshot_version = self._find(aggregate_id)
            except Exception as err:
                live.failed(span, err)
                raise
            version = aggregate.initial_version
            events = version - snapshot_version
            span.set_attribute(otel.STREAM_VERSION, version)
            span.set_attribute(otel.EVENTS_COUNT, events)
            span.set_attribute(otel.SNAPSHOT_USED, snapshot_version > 0)
        live.load_events.record(events, {otel.AGGREGATE_TYPE: aggregate_type})
        return aggregate

    def _find(self, aggregate_id: AggregateId) -> tuple[T, int]:
        """The aggregate, and the version of the snapshot it was restored from (0 when
        it was replayed from its first event)."""
        check_id(aggregate_id, doing=f"find {self.aggregate_type}")
        aggregate_type, factory = self.aggregate_type, self.factory
        streaming = self._streaming()
        if streaming is not None:
            snapshot, raws = streaming.load_stream(
                aggregate_type, aggregate_id, snapshot=self.load_snapshots
            )
        else:
            snapshot = (
                self.store.latest_snapshot(aggregate_type, aggregate_id)
                if self.load_snapshots
                else None
            )
            raws = iter(
                self.store.events(aggregate_type, aggregate_id, snapshot.version if snapshot else 0)
            )
        if snapshot is not None and snapshot.schema_version != self.snapshot_schema:
            log.info(
                "the snapshot of %s %s at version %d has schema version %d, not %d; "
                "replaying all events instead",
                aggregate_type,
                aggregate_id,
                snapshot.version,
                snapshot.schema_version,
                self.snapshot_schema,
                extra=_fields(aggregate_type, aggregate_id, version=snapshot.version),
            )
            snapshot = None
            if streaming is not None:
                raws = streaming.iter_events(aggregate_type, aggregate_id)
            else:
                raws = iter(self.store.events(aggregate_type, aggregate_id))
        iterables = self._replays_iterables()
        if snapshot is not None:
            failed: list[BaseException] = []
            events = self._read(raws, failed)
            try:
                restored = factory.from_snapshot(
                    aggregate_id, snapshot, cast(Any, events) if iterables else list(events)
                )
            except Exception as err:
                if failed and failed[0] is err:
                    raise
                log.warning(
                    "restoring %s %s from its snapshot at version %d failed; replaying "
                    "all events instead",
                    aggregate_type,
                    aggregate_id,
                    snapshot.version,
                    exc_info=True,
                    extra=_fields(aggregate_type, aggregate_id, version=snapshot.version),
                )
            else:
                return restored, snapshot.version
            if streaming is not None:
                raws = streaming.iter_events(aggregate_type, aggregate_id)
            else:
                raws = iter(self.store.events(aggregate_type, aggregate_id))
        events = self.registry.iter_from_raws(raws, aggregate_type=aggregate_type)
        aggregate = factory.from_events(
            aggregate_id, cast(Any, events) if iterables else list(events)
        )
        return aggregate, 0

    def _streaming(self) -> StreamingStore | None:
        """The store as a :class:`StreamingStore`, or ``None``; asked once per store."""
        known = self._streaming_of
        if known is None or known[0] is not self.store:
            known = self._streaming_of = (
                self.store,
                offered(self.store, Capability.STREAMING, StreamingStore),
            )
        return known[1]

    def _replays_iterables(self) -> bool:
        """Whether the factory is a :class:`StreamingFactory` that says it replays
        iterables; asked once per factory."""
        known = self._iterables_of
        if known is None or known[0] is not self.factory:
            factory = self.factory
            streams = isinstance(factory, StreamingFactory) and factory.replays_iterables is True
            known = self._iterables_of = (factory, streams)
        return known[1]

    def _read(self, raws: Iterable[RawEvent], failed: list[BaseException]) -> Iterator[Any]:
        """Decoded ``raws``, recording in ``failed`` an error reading or decoding them
        (so a factory's failure is told apart from the store's)."""
        try:
            yield from self.registry.iter_from_raws(raws, aggregate_type=self.aggregate_type)
        except BaseException as err:
            failed.append(err)
            raise

    def contains(self, aggregate_id: AggregateId) -> bool:
        """Whether an aggregate with this id exists."""
        check_id(aggregate_id, doing=f"check {self.aggregate_type}")
        return self.store.contains_aggregate(self.aggregate_type, aggregate_id)

    def add(self, aggregate: T, *, metadata: Mapping[str, str] | None = None) -> None:
        """Save a new aggregate's changes as a new stream.

        Raises :class:`~esrc_core.errors.AggregateRequiresEvents` when it has no changes
        and :class:`~esrc_core.errors.AggregateAlreadyExists` when the id is taken.
        """
        if TELEMETRY.on and (live := TELEMETRY.instruments()) is not None:
            self._save_observed(live, aggregate, metadata, doing="add")
            return
        raw = self._raw_changes(aggregate, metadata, doing="add")
        self.store.add_aggregate(self.aggregate_type, aggregate.id, raw)
        self._committed(aggregate, len(raw))

    def update(self, aggregate: T, *, metadata: Mapping[str, str] | None = None) -> None:
        """Append a loaded aggregate's changes at its ``initial_version``.

        No changes is a no-op. Raises
        :class:`~esrc_core.errors.OptimisticConcurrencyError` when the stream moved on.
        """
        if not aggregate.changes:
            return
        if TELEMETRY.on and (live := TELEMETRY.instruments()) is not None:
            self._save_observed(live, aggregate, metadata, doing="update")
            return
        raw = self._raw_changes(aggregate, metadata, doing="update")
        self.store.append_events(self.aggregate_type, aggregate.id, aggregate.initial_version, raw)
        self._committed(aggregate, len(raw))

    def _save_observed(
        self, live: Instruments, aggregate: T, metadata: Mapping[str, str] | None, *, doing: str
    ) -> None:
        """:meth:`add` (``doing="add"``) or :meth:`update` in an ``esrc.append`` span
        whose trace context goes into the events' metadata; the duration and conflicts
        are measured. A snapshot the policy takes follows the span, beside it."""
        aggregate_type = self.aggregate_type
        expected = aggregate.initial_version
        count = len(aggregate.changes)
        attributes = {
            otel.AGGREGATE_TYPE: aggregate_type,
            otel.AGGREGATE_ID: id_attribute(aggregate.id),
            otel.STREAM_VERSION: expected + count,
            otel.EVENTS_COUNT: count,
        }
        with live.span(otel.APPEND, attributes) as span:
            raw = self._raw_changes(
                aggregate, metadata, doing=doing, trace=live.trace_context(span)
            )
            measured = {otel.AGGREGATE_TYPE: aggregate_type}
            started = time.perf_counter()
            try:
                if doing == "add":
                    self.store.add_aggregate(aggregate_type, aggregate.id, raw)
                else:
                    self.store.append_events(aggregate_type, aggregate.id, expected, raw)
            except Exception as err:
                live.failed(span, err)
                measured = {**measured, otel.ERROR_TYPE: type(err).__qualname__}
                if isinstance(err, OptimisticConcurrencyError | AggregateAlreadyExists):
                    live.append_conflicts.add(1, {otel.AGGREGATE_TYPE: aggregate_type})
                raise
            finally:
                live.append_duration.record(time.perf_counter() - started, measured)
        self._committed(aggregate, len(raw))

    def update_by_id(
        self,
        aggregate_id: AggregateId,
        update: Callable[[T], Any],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> T:
        """Load, apply ``update``, save; on a concurrency conflict reload and try again.

        Retries follow :attr:`retry` (a :class:`RetryPolicy` by default; a
        :class:`~esrc_core.backoff.Backoff` without ``attempts`` retries until the
        update is saved). ``update`` may run more than once, so it must
        only change the aggregate. An exception from ``update`` is raised as is and
        nothing is saved. Returns the saved aggregate.

        When the tries run out it raises
        :class:`~esrc_core.errors.OptimisticConcurrencyError` saying so, with
        ``attempts`` set to the number of tries made and the last conflict chained.
        """
        attempt = 1
        while True:
            aggregate = self.find_by_id(aggregate_id)
            update(aggregate)
            try:
                self.update(aggregate, metadata=metadata)
            except OptimisticConcurrencyError as err:
                if self.retry.exhausted(attempt):
                    raise self._gave_up(aggregate_id, attempt, err) from err
                log.debug(
                    "update %s %s: concurrency conflict on attempt %d, retrying",
                    self.aggregate_type,
                    aggregate_id,
                    attempt,
                    extra=_fields(self.aggregate_type, aggregate_id, attempt=attempt),
                )
                self.sleep(self.retry.delay(attempt))
                attempt += 1
            else:
                return aggregate

    def _gave_up(
        self, aggregate_id: AggregateId, attempts: int, last: OptimisticConcurrencyError
    ) -> OptimisticConcurrencyError:
        """The error :meth:`update_by_id` raises when its retries ran out."""
        if attempts == 1:
            tries = "1 attempt (the retry policy allows no retries), lost"
        else:
            tries = f"{attempts} attempts, each lost"
        return OptimisticConcurrencyError(
            f"update {self.aggregate_type} {aggregate_id!r}: gave up after {tries} to a "
            f"concurrent writer; the last conflict: {last}",
            attempts=attempts,
        )

    def _raw_changes(
        self,
        aggregate: T,
        metadata: Mapping[str, str] | None,
        *,
        doing: str,
        trace: Mapping[str, str] | None = None,
    ) -> list[RawEvent]:
        """The changes as raw events with the repository's metadata, then the
        correlation (:func:`~esrc_core.correlation.correlation_metadata`), then
        ``trace`` (the append span's context), then ``metadata``: a key given wins."""
        aggregate_id = check_id(aggregate.id, doing=f"{doing} {self.aggregate_type}")
        changes = aggregate.changes
        if not changes:
            raise AggregateRequiresEvents(
                f"{doing} {self.aggregate_type} {aggregate_id}: the aggregate has no changes"
            )
        meta = {**self.metadata, **correlation_metadata()}
        if trace:
            meta.update(trace)
        if metadata:
            meta.update(metadata)
        return [self.registry.to_raw(event, meta) for event in changes]

    def pending_events(
        self, aggregate: T, *, metadata: Mapping[str, str] | None = None, doing: str = "save"
    ) -> list[RawEvent]:
        """The aggregate's changes as the raw events :meth:`add` or :meth:`update` would
        store (the repository's metadata, then ``metadata``), for code that stores them
        itself, as :class:`~esrc_core.unit_of_work.UnitOfWork` does in one atomic
        append with other aggregates'. Raises
        :class:`~esrc_core.errors.AggregateRequiresEvents` (saying ``doing``) when
        there are none. Stores nothing; call :meth:`mark_saved` once they are stored."""
        return self._raw_changes(aggregate, metadata, doing=doing)

    def mark_saved(self, aggregate: T, count: int) -> None:
        """After ``count`` events of :meth:`pending_events` were stored: what
        :meth:`add` and :meth:`update` do after their append (tell the aggregate its
        changes are committed, take a snapshot when the policy says so; a failed
        snapshot is logged)."""
        self._committed(aggregate, count)

    def _committed(self, aggregate: T, count: int) -> None:
        before = aggregate.initial_version
        aggregate.mark_changes_committed()
        after = before + count
        every = self.snapshot_every
        if every and before // every != after // every:
            self._snapshot(aggregate, after)

    def _snapshot(self, aggregate: T, version: int) -> None:
        if TELEMETRY.on and (live := TELEMETRY.instruments()) is not None:
            attributes = {
                otel.AGGREGATE_TYPE: self.aggregate_type,
                otel.AGGREGATE_ID: id_attribute(aggregate.id),
                otel.STREAM_VERSION: version,
            }
            with live.span(otel.SNAPSHOT, attributes):
                self._take_snapshot(aggregate, version)
        else:
            self._take_snapshot(aggregate, version)

    def _take_snapshot(self, aggregate: T, version: int) -> None:
        try:
            data = aggregate.snapshot()
            self.store.add_snapshot(
                self.aggregate_type, aggregate.id, RawSnapshot(version, data, self.snapshot_schema)
            )
        except SnapshotNotSupported:
            log.debug(
                "%s does not support snapshots; skipped",
                self.aggregate_type,
                extra=_fields(self.aggregate_type, aggregate.id, version=version),
            )
        except Exception:
            log.warning(
                "snapshot of %s %s at version %d failed; the save itself succeeded",
                self.aggregate_type,
                aggregate.id,
                version,
                exc_info=True,
                extra=_fields(self.aggregate_type, aggregate.id, version=version),
            )


def _fields(aggregate_type: str, aggregate_id: AggregateId, **more: int) -> dict[str, object]:
    """The ``extra=`` fields of a repository log record (see :mod:`esrc_core.logs`)."""
    shown = aggregate_id if isinstance(aggregate_id, str | int) else str(aggregate_id)
    return {"aggregate_type": aggregate_type, "aggregate_id": shown, **more}
