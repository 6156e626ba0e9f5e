"""``esrc streams``, ``esrc events`` and ``esrc relays``: looking inside a store.

Each command opens the store a URL names, requires the ``inspect`` capability
(:class:`~esrc_core.inspection.Inspectable`), writes its report to ``out`` and returns
the exit status. A long operation shows a progress line on ``err`` when that is a
terminal. Problems are raised as :class:`~esrc_core.errors.EsrcError` with a
one-line message that masks passwords, for the command line to print.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TextIO, get_args

from esrc_core.capabilities import Capability, offered
from esrc_core.cli._arguments import (
    STORE_ENVIRONMENT,
    output_arguments,
    store_arguments,
    store_url,
    whole,
)
from esrc_core.cli._command import Command, UsageError
from esrc_core.cli._json import event_document, json_id, json_time, write_document
from esrc_core.cli._show import IdType, count, format_data, id_type_of, show_id, when
from esrc_core.cli._stores import inspectable
from esrc_core.cli.console import Column, Progress, output_width, printable, render_table
from esrc_core.errors import AggregateNotFound
from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId
from esrc_core.inspection import RecordedEvent, correlated_events
from esrc_core.locks import HasRelayLock
from esrc_core.urls import mask_url

__all__ = [
    "COMMANDS",
    "IdType",
    "forget_relays",
    "id_candidates",
    "id_type_of",
    "list_relays",
    "list_streams",
    "show_events",
]


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


def _metadata(event: RawEvent) -> str:
    return ", ".join(f"{k}={v}" for k, v in event.metadata.items()) or "-"


def _write_table(
    out: TextIO, columns: Sequence[Column | str], rows: Sequence[Sequence[object]]
) -> None:
    for line in render_table(columns, rows, width=output_width(out)):
        out.write(line + "\n")


def list_streams(
    url: str,
    *,
    aggregate_type: str | None = None,
    limit: int | None = None,
    options: Mapping[str, Any] | None = None,
    as_json: bool = False,
    quiet: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``esrc streams``: a table of the streams in ``url`` (of ``aggregate_type`` only,
    when given; the first ``limit``, when given) with type, id, id type, version (which
    is the number of events) and when the last event was recorded, then a total line
    (not when ``quiet``). With ``as_json``, one JSON document instead: ``{"store",
    "streams": [{"aggregate_type", "aggregate_id", "id_type", "version",
    "last_recorded_at"}], "limited"}``. Returns 0."""
    out = out or sys.stdout
    with inspectable(url, options) as store, _progress(err, quiet or as_json) as progress:
        progress.update(f"reading streams of {mask_url(url)}…", force=True)
        found = store.streams(aggregate_type, limit=limit)
    limited = limit is not None and len(found) == limit
    if as_json:
        streams = [
            {
                "aggregate_type": s.aggregate_type,
                "aggregate_id": json_id(s.aggregate_id),
                "id_type": id_type_of(s.aggregate_id),
                "version": s.version,
                "last_recorded_at": json_time(s.last_recorded_at),
            }
            for s in found
        ]
        write_document(out, {"store": mask_url(url), "streams": streams, "limited": limited})
        return 0
    if not found:
        if quiet:
            return 0
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
            show_id(s.aggregate_id),
            id_type_of(s.aggregate_id),
            s.version,
            when(s.last_recorded_at),
        )
        for s in found
    ]
    _write_table(out, columns, rows)
    if quiet:
        return 0
    events = count(sum(s.version for s in found), "event")
    cut = f" (the first {limit:,} only)" if limited else ""
    out.write(f"{count(len(found), 'stream')}, {events}{cut}\n")
    return 0


def _recorded_document(e: RecordedEvent) -> dict[str, Any]:
    """An event of ``esrc events --json``: version, position, time, name, metadata,
    data and the stored schema version."""
    document = event_document(
        e.event, version=e.version, position=e.position, recorded_at=e.recorded_at
    )
    return {**document, "schema_version": e.event.schema_version}


def show_events(
    url: str,
    aggregate_type: str,
    ids: Sequence[AggregateId],
    *,
    from_version: int = 0,
    options: Mapping[str, Any] | None = None,
    as_json: bool = False,
    quiet: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``esrc events``: the events of one stream after ``from_version``, as a table of
    version, position, recording time, name, stored schema version, metadata and data
    (see :func:`format_data`), under a line naming the stream.

    ``ids`` are the readings of the id to try, in order (see :func:`id_candidates`):
    the first that names an existing stream is shown, and a note on ``err`` names
    any other that also exists (not when ``quiet``). Raises
    :class:`~esrc_core.errors.AggregateNotFound`, saying which id types were tried,
    when none does. With ``as_json``, one JSON document instead: ``{"aggregate_type",
    "aggregate_id", "id_type", "events": [{"version", "position", "recorded_at",
    "name", "metadata", "data", "schema_version"}]}`` (``data`` is the event's JSON,
    or ``null`` with ``data_base64`` for other bytes). Returns 0.
    """
    if not ids:
        raise ValueError("show_events needs at least one id to try")
    out, err = out or sys.stdout, err or sys.stderr
    with inspectable(url, options) as store, _progress(err, quiet or as_json) as progress:
        progress.update(f"looking for {aggregate_type} {show_id(ids[0])}…", force=True)
        existing = [i for i in ids if store.contains_aggregate(aggregate_type, i)]
        if not existing:
            tried = " or ".join(f"{id_type_of(i)} id {show_id(i)!r}" for i in ids)
            raise AggregateNotFound(
                f"read {aggregate_type} {show_id(ids[0])!r} in {mask_url(url)}: "
                f"no such stream (tried it as {tried})"
            )
        chosen = existing[0]
        progress.update(f"reading {aggregate_type} {show_id(chosen)}…", force=True)
        recorded = store.recorded_events(aggregate_type, chosen, from_version)
    progress.clear()
    for other in existing[1:] if not quiet else ():
        err.write(
            f"esrc events: note: {aggregate_type} also has a stream with {id_type_of(other)} "
            f"id {show_id(other)!r}; choose one with --id-type\n"
        )
    if as_json:
        events = [_recorded_document(e) for e in recorded]
        document = {
            "aggregate_type": aggregate_type,
            "aggregate_id": json_id(chosen),
            "id_type": id_type_of(chosen),
            "events": events,
        }
        write_document(out, document)
        return 0
    heading = f"{aggregate_type} {show_id(chosen)} ({id_type_of(chosen)} id)"
    if not recorded:
        if quiet:
            return 0
        out.write(printable(f"{heading}: no events after version {from_version}") + "\n")
        return 0
    after = f" after version {from_version}" if from_version else ""
    if not quiet:
        out.write(printable(f"{heading}: {count(len(recorded), 'event')}{after}") + "\n")
    columns = [
        Column("version", "right", shrink=False),
        Column("position", "right", shrink=False),
        Column("recorded (UTC)", shrink=False),
        Column("name"),
        Column("schema", "right", shrink=False),
        Column("metadata"),
        Column("data"),
    ]
    rows = [
        (
            e.version,
            e.position,
            when(e.recorded_at),
            e.event.name,
            e.event.schema_version,
            _metadata(e.event),
            format_data(e.event.data),
        )
        for e in recorded
    ]
    _write_table(out, columns, rows)
    return 0


def show_correlation(
    url: str,
    correlation_id: str,
    *,
    options: Mapping[str, Any] | None = None,
    as_json: bool = False,
    quiet: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``esrc events --correlation ID``: every event whose ``correlation_id`` is
    ``correlation_id``, across streams, by position, as a table of position, recording
    time, stream, version, name, causation id and data, under a line counting them
    (see :func:`esrc_core.inspection.correlated_events`: a scan of the store). With
    ``as_json``, one JSON document: ``{"correlation_id", "events": [{"aggregate_type",
    "aggregate_id", "id_type", "version", "position", "recorded_at", "name",
    "metadata", "data", "schema_version"}]}``. Returns 0, also when no event matches
    (the line then says so)."""
    out, err = out or sys.stdout, err or sys.stderr
    with inspectable(url, options) as store, _progress(err, quiet or as_json) as progress:
        progress.update(f"looking for correlation {correlation_id}…", force=True)
        found = correlated_events(store, correlation_id)
    progress.clear()
    if as_json:
        events = [
            {
                "aggregate_type": e.aggregate_type,
                "aggregate_id": json_id(e.aggregate_id),
                "id_type": id_type_of(e.aggregate_id),
                **_recorded_document(e),
            }
            for e in found
        ]
        write_document(out, {"correlation_id": correlation_id, "events": events})
        return 0
    streams = {(e.aggregate_type, e.aggregate_id) for e in found}
    if not quiet:
        summary = (
            f"{count(len(found), 'event')} in {count(len(streams), 'stream')}"
            if found
            else "no events"
        )
        out.write(printable(f"correlation {correlation_id}: {summary}") + "\n")
    if not found:
        return 0
    columns = [
        Column("position", "right", shrink=False),
        Column("recorded (UTC)", shrink=False),
        Column("stream"),
        Column("version", "right", shrink=False),
        Column("name"),
        Column("caused by"),
        Column("data"),
    ]
    rows = [
        (
            e.position,
            when(e.recorded_at),
            f"{e.aggregate_type} {show_id(e.aggregate_id)}",
            e.version,
            e.event.name,
            e.event.metadata.get("causation_id", "-"),
            format_data(e.event.data),
        )
        for e in found
    ]
    _write_table(out, columns, rows)
    return 0


def list_relays(
    url: str,
    *,
    options: Mapping[str, Any] | None = None,
    as_json: bool = False,
    quiet: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``esrc relays``: a table of every relay name with progress in ``url``: events
    published, events pending (its lag in events), when the oldest pending event was
    recorded, and how many seconds ago that was. With ``as_json``, one JSON document
    instead: ``{"store", "relays": [{"name", "published", "pending",
    "oldest_pending_at", "lag_seconds"}]}``. Returns 0."""
    out = out or sys.stdout
    with inspectable(url, options) as store, _progress(err, quiet or as_json) as progress:
        progress.update(f"reading relays of {mask_url(url)}…", force=True)
        found = store.relays()
    now = dt.datetime.now(dt.UTC)
    if as_json:
        relays = [
            {
                "name": relay.name,
                "published": relay.published,
                "pending": relay.pending,
                "oldest_pending_at": json_time(relay.oldest_pending_at),
                "lag_seconds": relay.lag_seconds(now),
            }
            for relay in found
        ]
        write_document(out, {"store": mask_url(url), "relays": relays})
        return 0
    if not found:
        if not quiet:
            out.write(f"no relay has marked progress in {mask_url(url)}\n")
        return 0
    columns = [
        Column("relay"),
        Column("published", "right", shrink=False),
        Column("pending", "right", shrink=False),
        Column("oldest pending (UTC)", shrink=False),
        Column("lag (s)", "right", shrink=False),
    ]
    rows = []
    for relay in found:
        lag = relay.lag_seconds(now)
        shown = f"{lag:,.1f}" if lag is not None else "-"
        rows.append(
            (
                relay.name,
                f"{relay.published:,}",
                f"{relay.pending:,}",
                when(relay.oldest_pending_at),
                shown,
            )
        )
    _write_table(out, columns, rows)
    return 0


def _progress(err: TextIO | None, quiet: bool) -> Progress:
    """The progress line on ``err`` (standard error by default), silent when ``quiet``."""
    return Progress(err or sys.stderr, enabled=not quiet)


def forget_relays(
    url: str,
    names: Sequence[str],
    *,
    options: Mapping[str, Any] | None = None,
    as_json: bool = False,
    quiet: bool = False,
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
    Writes a line per name (refusals only, when ``quiet``), or with ``as_json`` one
    document: ``{"forgotten": [{"name", "published", "pending"}], "refused": [{"name",
    "reason"}]}``.
    """
    out = out or sys.stdout
    forgotten: list[dict[str, Any]] = []
    refused: list[dict[str, str]] = []
    with inspectable(url, options) as store:
        locking = offered(store, Capability.RELAY_LOCK, HasRelayLock)
        known = {relay.name: relay for relay in store.relays()}
        for name in dict.fromkeys(names):
            relay = known.get(name)
            if relay is None:
                refused.append({"name": name, "reason": "no progress"})
                if not as_json:
                    out.write(
                        f"relay {name!r} has no progress in {mask_url(url)}; nothing to forget\n"
                    )
                continue
            lock = locking.relay_lock(name) if locking is not None else None
            if lock is not None and not lock.acquire(0):
                refused.append({"name": name, "reason": "running"})
                if not as_json:
                    out.write(f"relay {name!r} is running (its lock is held); not forgotten\n")
                continue
            try:
                store.forget_relay(name)
            finally:
                if lock is not None:
                    lock.release()
            forgotten.append({"name": name, "published": relay.published, "pending": relay.pending})
            if not as_json and not quiet:
                out.write(
                    f"forgot relay {name!r} ({relay.published:,} published, "
                    f"{relay.pending:,} pending)\n"
                )
    if as_json:
        write_document(out, {"forgotten": forgotten, "refused": refused})
    return 1 if refused else 0


def _streams(args: argparse.Namespace) -> int:
    return list_streams(
        store_url(args),
        aggregate_type=args.type,
        limit=args.limit,
        options=dict(args.store_option),
        as_json=args.json,
        quiet=args.quiet,
    )


def _streams_arguments(parser: argparse.ArgumentParser) -> None:
    store_arguments(parser)
    parser.add_argument("--type", help="only streams of this aggregate type")
    parser.add_argument("--limit", type=whole(1), metavar="N", help="at most N streams")
    output_arguments(parser, json_help="print one JSON document instead of the table")


def _events(args: argparse.Namespace) -> int:
    if args.correlation is not None:
        if args.type is not None or args.id is not None:
            raise UsageError("give TYPE and ID, or --correlation, not both")
        if not args.correlation:
            raise UsageError("--correlation needs a correlation id")
        return show_correlation(
            store_url(args),
            args.correlation,
            options=dict(args.store_option),
            as_json=args.json,
            quiet=args.quiet,
        )
    if args.type is None or args.id is None:
        raise UsageError("give the stream's TYPE and ID (or --correlation ID)")
    try:
        ids = id_candidates(args.id, args.id_type)
    except ValueError as err:
        raise UsageError(str(err)) from err
    return show_events(
        store_url(args),
        args.type,
        ids,
        from_version=args.from_version,
        options=dict(args.store_option),
        as_json=args.json,
        quiet=args.quiet,
    )


def _events_arguments(parser: argparse.ArgumentParser) -> None:
    store_arguments(parser)
    parser.add_argument("type", nargs="?", help="the aggregate type")
    parser.add_argument("id", nargs="?", help="the aggregate id, as text")
    parser.add_argument(
        "--correlation",
        metavar="ID",
        help="instead of one stream: every event whose correlation_id is ID, across "
        "streams, by position (a scan of the store)",
    )
    parser.add_argument(
        "--from",
        dest="from_version",
        type=whole(0),
        default=0,
        metavar="N",
        help="only events after version N",
    )
    parser.add_argument(
        "--id-type",
        choices=get_args(IdType),
        help="read ID as this type (default: try uuid, then int, then str)",
    )
    output_arguments(parser, json_help="print one JSON document instead of the table")


def _relays(args: argparse.Namespace) -> int:
    url, options = store_url(args), dict(args.store_option)
    if args.forget:
        return forget_relays(url, args.forget, options=options, as_json=args.json, quiet=args.quiet)
    return list_relays(url, options=options, as_json=args.json, quiet=args.quiet)


def _relays_arguments(parser: argparse.ArgumentParser) -> None:
    store_arguments(parser)
    parser.add_argument(
        "--forget",
        action="append",
        metavar="NAME",
        help="delete relay NAME's progress instead of listing (repeatable; refused while "
        "`esrc relay` runs under NAME)",
    )
    output_arguments(parser, json_help="print one JSON document instead of the table")


COMMANDS = (
    Command(
        "streams",
        "list streams: type, id, version, last event time",
        _streams_arguments,
        _streams,
        STORE_ENVIRONMENT,
        "List the streams (aggregates) in a store: type, id, id type, version (the number\n"
        "of events) and when the last event was recorded.",
    ),
    Command(
        "events",
        "show one stream's events, data decoded",
        _events_arguments,
        _events,
        STORE_ENVIRONMENT,
        "Show the events of one stream, named by its aggregate type and id: version,\n"
        "position, recording time, name, metadata and data (JSON shown decoded); or,\n"
        "with --correlation ID, every event of one correlation across streams.",
    ),
    Command(
        "relays",
        "list relays: published, pending, lag",
        _relays_arguments,
        _relays,
        STORE_ENVIRONMENT,
        "List every relay name with progress in a store: events published, events\n"
        "pending, and how old the oldest pending event is; or forget a relay's progress.",
    ),
)
"""``esrc streams``, ``esrc events`` and ``esrc relays``."""
