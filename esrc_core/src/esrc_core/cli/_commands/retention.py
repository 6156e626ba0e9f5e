"""``esrc delete-stream`` and ``esrc truncate-stream``: deleting a stream for good, and
removing the events before its latest snapshot.

Both need the ``delete-streams`` capability
(:class:`~esrc_core.retention.DeletesStreams`) and refuse to run without ``--yes``:
neither can be undone. The stream is named by its type and id as ``esrc events``
names it; an id that names streams of several id types must be given ``--id-type``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TextIO, get_args

from esrc_core.capabilities import Capability, require
from esrc_core.cli._arguments import (
    STORE_ENVIRONMENT,
    output_arguments,
    store_arguments,
    store_url,
)
from esrc_core.cli._command import Command, UsageError
from esrc_core.cli._commands.inspect import id_candidates
from esrc_core.cli._json import json_id, write_document
from esrc_core.cli._show import IdType, id_type_of, show_id
from esrc_core.cli._stores import open_store
from esrc_core.errors import AggregateNotFound
from esrc_core.ids import AggregateId
from esrc_core.retention import DeletesStreams
from esrc_core.urls import mask_url

__all__ = ["COMMANDS", "remove_stream"]

Action = Literal["delete", "truncate"]


def remove_stream(
    url: str,
    action: Action,
    aggregate_type: str,
    ids: Sequence[AggregateId],
    *,
    options: Mapping[str, Any] | None = None,
    as_json: bool = False,
    quiet: bool = False,
    out: TextIO | None = None,
) -> int:
    """``esrc delete-stream`` (``action="delete"``) or ``esrc truncate-stream``: find
    the one stream ``ids`` (the readings of the id to try, see
    :func:`~esrc_core.cli._commands.inspect.id_candidates`) name, then delete it, or
    remove its events up to its latest snapshot that every known relay has passed.

    Opens the store without creating anything. Raises
    :class:`~esrc_core.errors.NotSupportedError` when the backend lacks the
    ``delete-streams`` capability, :class:`~esrc_core.errors.AggregateNotFound` when no
    reading names a stream, and :class:`UsageError` when several do. Writes one line
    (nothing when ``quiet``) or, with ``as_json``, ``{"aggregate_type",
    "aggregate_id", "id_type", "action", "removed"}`` (``removed``: events removed by
    a truncation, ``null`` for a deletion). Returns 0.
    """
    out = out or sys.stdout
    doing = f"{action} {aggregate_type} {show_id(ids[0])!r} in {mask_url(url)}"
    store = open_store(url, options, inspecting=True)
    try:
        removing = require(store, Capability.DELETE_STREAMS, doing, DeletesStreams)
        existing = [i for i in ids if store.contains_aggregate(aggregate_type, i)]
        if not existing:
            tried = " or ".join(f"{id_type_of(i)} id {show_id(i)!r}" for i in ids)
            raise AggregateNotFound(f"{doing}: no such stream (tried it as {tried})")
        if len(existing) > 1:
            found = ", ".join(id_type_of(i) for i in existing)
            raise UsageError(
                f"{doing}: streams with this id exist as {found} ids; choose one with --id-type"
            )
        chosen = existing[0]
        removed: int | None = None
        if action == "delete":
            removing.delete_stream(aggregate_type, chosen)
        else:
            removed = removing.truncate_stream(aggregate_type, chosen)
    finally:
        store.close()
    if as_json:
        document = {
            "aggregate_type": aggregate_type,
            "aggregate_id": json_id(chosen),
            "id_type": id_type_of(chosen),
            "action": action,
            "removed": removed,
        }
        write_document(out, document)
    elif not quiet:
        named = f"{aggregate_type} {show_id(chosen)} ({id_type_of(chosen)} id)"
        if removed is None:
            out.write(f"deleted {named}: its events and snapshots are gone for good\n")
        else:
            out.write(f"truncated {named}: {removed} event(s) before its latest snapshot removed\n")
    return 0


def _runner(action: Action) -> Any:
    def run(args: argparse.Namespace) -> int:
        if not args.yes:
            raise UsageError(
                f"refusing to {action} {args.type} {args.id!r} without --yes: it cannot be undone"
            )
        try:
            ids = id_candidates(args.id, args.id_type)
        except ValueError as err:
            raise UsageError(str(err)) from err
        return remove_stream(
            store_url(args),
            action,
            args.type,
            ids,
            options=dict(args.store_option),
            as_json=args.json,
            quiet=args.quiet,
        )

    return run


def _arguments(parser: argparse.ArgumentParser) -> None:
    store_arguments(parser)
    parser.add_argument("type", help="the aggregate type")
    parser.add_argument("id", help="the aggregate id, as text")
    parser.add_argument(
        "--id-type",
        choices=get_args(IdType),
        help="read ID as this type (default: try uuid, then int, then str)",
    )
    parser.add_argument("--yes", action="store_true", help="really do it (it cannot be undone)")
    output_arguments(parser, json_help="print one JSON document instead of the line")


COMMANDS = (
    Command(
        "delete-stream",
        "delete a stream for good (needs --yes)",
        _arguments,
        _runner("delete"),
        STORE_ENVIRONMENT,
        "Delete one stream for good: its events and snapshots are removed, reads find no\n"
        "such stream, and appends to it are refused from then on. Relays never publish\n"
        "its events they had not reached. Refuses to run without --yes.",
    ),
    Command(
        "truncate-stream",
        "remove a stream's events before its latest snapshot (needs --yes)",
        _arguments,
        _runner("truncate"),
        STORE_ENVIRONMENT,
        "Remove the events of one stream up to its latest snapshot that every relay with\n"
        "progress in the store has published (retention); loading the aggregate still\n"
        "works from the snapshot. Refuses to run without --yes.",
    ),
)
"""``esrc delete-stream`` and ``esrc truncate-stream``."""
