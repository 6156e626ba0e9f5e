"""What ``esrc streams``, ``esrc events``, ``esrc tail`` and ``esrc relays`` do.

Each command opens the store a URL names, requires the ``inspect`` capability
(:class:`~esrc_core.inspection.Inspectable`), writes its report to ``out`` and returns
the exit status. A long operation shows a progress line on ``err`` when that is a
terminal. Problems are raised as :class:`~esrc_core.errors.EsrcError` with a
one-line message that masks passwords, for the command line to print.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any, Literal, Protocol, TextIO, cast, get_args

from esrc_core.console import Column, Progress, output_width, printable, render_table, shorten
from esrc_core.errors import AggregateNotFound, EsrcError
from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId
from esrc_core.inspection import Inspectable
from esrc_core.locks import HasRelayLock
from esrc_core.plugins import Capability, plugins
from esrc_core.relay import EventStoreOutbox, HasOutbox, RelayEvent
from esrc_core.store import EventStore
from esrc_core.urls import mask_url

__all__ = [
    "IdType",
    "forget_relays",
    "format_data",
    "id_candidates",
    "id_type_of",
    "list_relays",
    "list_streams",
    "show_events",
    "tail",
]

IdType = Literal["uuid", "int", "str"]
"""The name of an aggregate id's type, as the ``--id-type`` option spells it."""

_DATA_CHARS = 1000
_TAIL_PREFIX = "esrc-tail-"


def id_type_of(aggregate_id: AggregateId) -> IdType:
    """``"uuid"``, ``"int"`` or ``"str"``: the type of ``aggregate_id``."""
    if isinstance(aggregate_id, uuid.UUID):
        return "uuid"
    return "str" if isinstance(aggregate_id, str) else "int"


def id_candidates(text: str, id_type: IdType | None = None) -> list[AggregateId]:
    """The ids ``text`` (typed on a command line) may name, in the order to try them.

    With ``id_type``, only that reading, or ``ValueError`` when ``text`` is not an id of
    that type. Without, every reading that fits: a UUID (in any form ``uuid.UUID``
    accepts), an int (only when written as ``str(int)`` writes it, so ``"007"`` stays
    text), and ``text`` itself as a str id. Empty ``text`` raises ``ValueError``.
    """
    if not text:
        raise ValueError("an aggregate id must not be empty")
    if id_type is not None and id_type not in get_args(IdType):
        raise ValueError(f"unknown id type {id_type!r}; use uuid, int or str")
    found: list[AggregateId] = []
    if id_type in (None, "uuid"):
        with contextlib.suppress(ValueError):
            found.append(uuid.UUID(text))
    if id_type in (None, "int"):
        with contextlib.suppress(ValueError):
            number = int(text)
            if id_type == "int" or str(number) == text:
                found.append(number)
    if id_type in (None, "str"):
        found.append(text)
    if not found:
        article = "an" if id_type == "int" else "a"
        raise ValueError(f"{text!r} is not {article} {id_type} id")
    return found


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def _show_id(aggregate_id: AggregateId) -> str:
    return aggregate_id if isinstance(aggregate_id, str) else str(aggregate_id)


def _when(moment: dt.datetime | None) -> str:
    if moment is None:
        return "-"
    if moment.tzinfo is None:  # a store that returns naive times means UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_data(data: bytes, *, limit: int = _DATA_CHARS) -> str:
    """Event data as one line of at most about ``limit`` characters.

    JSON is shown re-encoded on one line with a space after each separator and
    non-ASCII text kept (``{"amount": "9.50", "who": "Zoë"}``). Other data is shown as
    a Python bytes literal (``b'\\x08\\x96\\x01 text'``) when it is mostly printable
    ASCII, else as hex (``0x08960100``); what is cut off is counted (``… (2,048
    bytes)``). Empty data is ``(empty)``.
    """
    if not data:
        return "(empty)"
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        pass
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        return shorten(text, limit)
    head = data[: max(limit // 4, 1)]
    plain = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    text = repr(head) if plain >= 0.75 * len(head) else "0x" + head.hex()
    if len(head) < len(data):
        text += f"… ({len(data):,} bytes)"
    return text


def _metadata(event: RawEvent) -> str:
    return ", ".join(f"{k}={v}" for k, v in event.metadata.items()) or "-"


def _write_table(
    out: TextIO, columns: Sequence[Column | str], rows: Sequence[Sequence[object]]
) -> None:
    for line in render_table(columns, rows, width=output_width(out)):
        out.write(line + "\n")


class _InspectableStore(EventStore, Inspectable, Protocol):
    """An event store that offers inspection."""


@contextlib.contextmanager
def _inspectable(url: str, options: Mapping[str, Any] | None) -> Iterator[_InspectableStore]:
    """Open the store ``url`` names, check it offers inspection, close it at the end."""
    registry = plugins()
    backend, _ = registry.resolve(url, "store")
    try:
        store = registry.open_event_store(url, **{**backend.inspect_options, **(options or {})})
    except TypeError as err:  # options the backend does not take
        raise EsrcError(f"open {mask_url(url)} with the {backend.name} backend: {err}") from err
    try:
        if Capability.INSPECT not in backend.capabilities or not isinstance(store, Inspectable):
            able = [
                b.name for b in registry.backends("store") if Capability.INSPECT in b.capabilities
            ]
            raise EsrcError(
                f"cannot inspect {mask_url(url)}: the {backend.name} backend "
                f"({backend.distribution or 'unknown distribution'}) does not offer the "
                f"'{Capability.INSPECT}' capability; backends that do: "
                f"{', '.join(able) or 'none installed'}"
            )
        yield cast(_InspectableStore, store)
    finally:
        store.close()


def list_streams(
    url: str,
    *,
    aggregate_type: str | None = None,
    limit: int | None = None,
    options: Mapping[str, Any] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``esrc streams``: a table of the streams in ``url`` (of ``aggregate_type`` only,
    when given; the first ``limit``, when given) with type, id, id type, version (which
    is the number of events) and when the last event was recorded, then a total line.
    Returns 0."""
    out = out or sys.stdout
    with _inspectable(url, options) as store, Progress(err or sys.stderr) as progress:
        progress.update(f"reading streams of {mask_url(url)}…", force=True)
        found = store.streams(aggregate_type, limit=limit)
    if not found:
        of_type = f" of type {aggregate_type!r}" if aggregate_type else ""
        out.write(f"no streams{of_type} in {mask_url(url)}\n")
        return 0
    columns = [
        Column("type"),
        Column("id", shrink=False),
        Column("id type", shrink=False),
        Column("version", "right", shrink=False),
        Column("last event (UTC)", shrink=False),
    ]
    rows = [
        (
            s.aggregate_type,
            _show_id(s.aggregate_id),
            id_type_of(s.aggregate_id),
            s.version,
            _when(s.last_recorded_at),
        )
        for s in found
    ]
    _write_table(out, columns, rows)
    events = _count(sum(s.version for s in found), "event")
    cut = f" (the first {limit:,} only)" if limit is not None and len(found) == limit else ""
    out.write(f"{_count(len(found), 'stream')}, {events}{cut}\n")
    return 0


def show_events(
    url: str,
    aggregate_type: str,
    ids: Sequence[AggregateId],
    *,
    from_version: int = 0,
    options: Mapping[str, Any] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``esrc events``: the events of one stream after ``from_version``, as a table of
    version, position, recording time, name, metadata and data (see
    :func:`format_data`), under a line naming the stream.

    ``ids`` are the readings of the id to try, in order (see :func:`id_candidates`):
    the first that names an existing stream is shown, and a note on ``err`` names
    any other that also exists. Raises :class:`~esrc_core.errors.AggregateNotFound`,
    saying which id types were tried, when none does. Returns 0.
    """
    if not ids:
        raise ValueError("show_events needs at least one id to try")
    out, err = out or sys.stdout, err or sys.stderr
    with _inspectable(url, options) as store, Progress(err) as progress:
        progress.update(f"looking for {aggregate_type} {_show_id(ids[0])}…", force=True)
        existing = [i for i in ids if store.contains_aggregate(aggregate_type, i)]
        if not existing:
            tried = " or ".join(f"{id_type_of(i)} id {_show_id(i)!r}" for i in ids)
            raise AggregateNotFound(
                f"read {aggregate_type} {_show_id(ids[0])!r} in {mask_url(url)}: "
                f"no such stream (tried it as {tried})"
            )
        chosen = existing[0]
        progress.update(f"reading {aggregate_type} {_show_id(chosen)}…", force=True)
        recorded = store.recorded_events(aggregate_type, chosen, from_version)
    progress.clear()
    for other in existing[1:]:
        err.write(
            f"esrc events: note: {aggregate_type} also has a stream with {id_type_of(other)} "
            f"id {_show_id(other)!r}; choose one with --id-type\n"
        )
    heading = f"{aggregate_type} {_show_id(chosen)} ({id_type_of(chosen)} id)"
    if not recorded:
        out.write(printable(f"{heading}: no events after version {from_version}") + "\n")
        return 0
    after = f" after version {from_version}" if from_version else ""
    out.write(printable(f"{heading}: {_count(len(recorded), 'event')}{after}") + "\n")
    columns = [
        Column("version", "right", shrink=False),
        Column("position", "right", shrink=False),
        Column("recorded (UTC)", shrink=False),
        Column("name"),
        Column("metadata"),
        Column("data"),
    ]
    rows = [
        (
            e.version,
            e.position,
            _when(e.recorded_at),
            e.event.name,
            _metadata(e.event),
            format_data(e.event.data),
        )
        for e in recorded
    ]
    _write_table(out, columns, rows)
    return 0


def list_relays(
    url: str,
    *,
    options: Mapping[str, Any] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``esrc relays``: a table of every relay name with progress in ``url``: events
    published, events pending (its lag in events), when the oldest pending event was
    recorded, and how many seconds ago that was. Returns 0."""
    out = out or sys.stdout
    with _inspectable(url, options) as store, Progress(err or sys.stderr) as progress:
        progress.update(f"reading relays of {mask_url(url)}…", force=True)
        found = store.relays()
    if not found:
        out.write(f"no relay has marked progress in {mask_url(url)}\n")
        return 0
    now = dt.datetime.now(dt.UTC)
    columns = [
        Column("relay"),
        Column("published", "right", shrink=False),
        Column("pending", "right", shrink=False),
        Column("oldest pending (UTC)", shrink=False),
        Column("lag (s)", "right", shrink=False),
    ]
    rows = []
    for relay in found:
        oldest = relay.oldest_pending_at
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        lag = f"{max((now - oldest).total_seconds(), 0.0):,.1f}" if oldest else "-"
        rows.append((relay.name, f"{relay.published:,}", f"{relay.pending:,}", _when(oldest), lag))
    _write_table(out, columns, rows)
    return 0


def forget_relays(
    url: str,
    names: Sequence[str],
    *,
    options: Mapping[str, Any] | None = None,
    out: TextIO | None = None,
) -> int:
    """``esrc relays --forget NAME``: delete the progress of each relay in ``names``
    (e.g. the ``esrc-tail-*`` name of a ``tail`` that was killed), so it no longer
    shows as lagging. A relay that used the name again would start from the first
    event.

    Refuses a name whose relay lock is held (``esrc relay`` is running under it) when
    the store has relay locks, and a name with no progress (a typo); returns 1 if it
    refused any, else 0. The others are forgotten either way. A running ``esrc tail``
    holds no lock: forgetting its name makes it start again from the first event.
    """
    out = out or sys.stdout
    status = 0
    with _inspectable(url, options) as store:
        known = {relay.name: relay for relay in store.relays()}
        for name in dict.fromkeys(names):
            relay = known.get(name)
            if relay is None:
                out.write(f"relay {name!r} has no progress in {mask_url(url)}; nothing to forget\n")
                status = 1
                continue
            lock = store.relay_lock(name) if isinstance(store, HasRelayLock) else None
            if lock is not None and not lock.acquire(0):
                out.write(f"relay {name!r} is running (its lock is held); not forgotten\n")
                status = 1
                continue
            try:
                store.forget_relay(name)
            finally:
                if lock is not None:
                    lock.release()
            out.write(
                f"forgot relay {name!r} ({relay.published:,} published, "
                f"{relay.pending:,} pending)\n"
            )
    return status


def _tail_line(event: RelayEvent, width: int | None) -> str:
    aggregate_id = _show_id(event.aggregate_id)
    if isinstance(event.aggregate_id, str) and (
        not aggregate_id.isprintable() or " " in aggregate_id
    ):
        aggregate_id = repr(aggregate_id)
    line = printable(
        f"#{event.position} {event.aggregate_type} {aggregate_id} v{event.version} "
        f"{event.event.name} {format_data(event.event.data)}"
    )
    return line if width is None else shorten(line, width)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """In the main thread, make the first Ctrl-C (SIGINT) or SIGTERM set ``stop``, so
    the work in hand finishes cleanly, and a second one interrupt it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _PrivateRelay:
    """The relay name a tail reads through: it exists once something was written for
    it, and is forgotten at the end."""

    def __init__(self, store: _InspectableStore, url: str) -> None:
        if not isinstance(store, HasOutbox):
            raise EsrcError(f"cannot follow {mask_url(url)}: the store has no outbox")
        self.name = f"{_TAIL_PREFIX}{secrets.token_hex(4)}"
        self.outbox = store.outbox(self.name)
        self._store = store
        self._written = False

    def start_where(self, relay: str) -> None:
        """Start where relay ``relay`` stands."""
        self._written = True
        self._store.copy_relay(relay, self.name)

    def mark(self, batch: Sequence[RelayEvent]) -> None:
        """Move past ``batch``."""
        self._written = True
        self.outbox.mark_events_as_published(batch)

    def skip_to_end(self, batch_size: int, progress: Progress, stop: threading.Event) -> int:
        """Move past every event committed so far (until ``stop`` is set); return how
        many there were."""
        skipped = 0
        while not stop.is_set() and (batch := self.outbox.unpublished_events(batch_size)):
            self.mark(batch)
            skipped += len(batch)
            progress.update(f"skipping to the end: {skipped:,} events…")
        return skipped

    def forget(self, err: TextIO) -> None:
        """Close the outbox's own connections, if any, and forget the name; a failure
        to forget it is reported on ``err``, not raised."""
        close = getattr(self.outbox, "close", None)
        if callable(close):
            with contextlib.suppress(EsrcError):
                close()
        if not self._written:
            return
        try:
            self._store.forget_relay(self.name)
        except EsrcError as problem:
            err.write(f"esrc tail: could not forget relay {self.name}: {problem}\n")


def _waiter(outbox: EventStoreOutbox, stop: threading.Event) -> Callable[[float], object]:
    wait = getattr(outbox, "wait_for_events", None)
    return wait if callable(wait) else stop.wait


def tail(
    url: str,
    *,
    relay: str | None = None,
    from_start: bool = False,
    poll: float = 0.5,
    batch_size: int = 500,
    options: Mapping[str, Any] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """``esrc tail``: print events as they are committed, in outbox order, one line
    each (``#position type id vVERSION name data``), until ``stop`` is set, Ctrl-C or
    SIGTERM arrives (in the main thread: the batch in hand is finished first; a second
    one interrupts it), or whoever reads ``out`` closes it (a broken pipe). Returns 0
    then.

    It reads through a relay name of its own, ``esrc-tail-<random>``, that starts where
    relay ``relay`` stands (when given; never changing that relay's progress), at the
    first event (``from_start``), or else after the events committed so far. The
    private name is forgotten on the way out; a tail killed outright leaves it behind
    (``esrc relays`` lists it). Waits with the outbox's ``wait_for_events(timeout)``
    when it has one, else polls every ``poll`` seconds.
    """
    if relay is not None and from_start:
        raise ValueError("tail: give relay or from_start, not both")
    if poll <= 0 or batch_size < 1:
        raise ValueError(f"tail: poll ({poll}) and batch_size ({batch_size}) must be positive")
    out, err = out or sys.stdout, err or sys.stderr
    stop = stop or threading.Event()
    shown = 0
    with _inspectable(url, options) as store:
        private = _PrivateRelay(store, url)
        try:
            with _stop_on_signals(stop), Progress(err) as progress:
                if relay is not None:
                    known = {r.name for r in store.relays()}
                    private.start_where(relay)
                    start = f"from where relay {relay!r} stands"
                    if relay not in known:
                        start = f"from the first event (relay {relay!r} has no progress)"
                elif from_start:
                    start = "from the first event"
                else:
                    skipped = private.skip_to_end(batch_size, progress, stop)
                    start = f"from the end ({_count(skipped, 'earlier event')} skipped)"
                progress.clear()
                err.write(
                    f"esrc tail: following {mask_url(url)} {start} as relay {private.name}; "
                    "Ctrl-C stops\n"
                )
                err.flush()
                wait = _waiter(private.outbox, stop)
                width = output_width(out)
                while not stop.is_set():
                    batch = private.outbox.unpublished_events(batch_size)
                    if not batch:
                        wait(poll)
                        continue
                    for event in batch:
                        out.write(_tail_line(event, width) + "\n")
                    out.flush()
                    shown += len(batch)
                    private.mark(batch)
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:  # whoever read the output is gone: `esrc tail | head`
            _discard_output(out)
        finally:
            private.forget(err)
    err.write(f"esrc tail: stopped after {_count(shown, 'event')}\n")
    return 0


def _discard_output(out: TextIO) -> None:
    """Point standard output, if ``out`` is it, at the null device, so that flushing it
    at exit does not fail a second time on the closed pipe."""
    if out is sys.stdout:
        with contextlib.suppress(OSError, ValueError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, out.fileno())
            os.close(null)
