"""How the ``esrc`` commands show values: counts, ids, times and event data."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Literal

from esrc_core.cli.console import shorten
from esrc_core.ids import AggregateId

__all__ = ["DATA_CHARS", "IdType", "count", "format_data", "id_type_of", "show_id", "when"]

IdType = Literal["uuid", "int", "str"]
"""The name of an aggregate id's type, as the ``--id-type`` option spells it."""

DATA_CHARS = 1000
"""About how many characters of an event's data a command shows."""


def count(number: int, noun: str) -> str:
    """``number`` with thousands separators and ``noun``, plural unless it is 1."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def show_id(aggregate_id: AggregateId) -> str:
    """An aggregate id as text: a str id as it is, others as ``str`` writes them."""
    return aggregate_id if isinstance(aggregate_id, str) else str(aggregate_id)


def id_type_of(aggregate_id: AggregateId) -> IdType:
    """``"uuid"``, ``"int"`` or ``"str"``: the type of ``aggregate_id``."""
    if isinstance(aggregate_id, uuid.UUID):
        return "uuid"
    return "str" if isinstance(aggregate_id, str) else "int"


def when(moment: dt.datetime | None) -> str:
    """``moment`` in UTC to the second (a naive time is taken as UTC); ``-`` for none."""
    if moment is None:
        return "-"
    if moment.tzinfo is None:  # a store that returns naive times means UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_data(data: bytes, *, limit: int = DATA_CHARS) -> str:
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
