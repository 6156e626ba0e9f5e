"""How the ``esrc`` commands write ``--json``: one document (``plugins``, ``streams``,
``events``, ``relays``, ``migrate``) or one line per event (``tail``).

The field names are part of the command line's interface, documented in docs/cli.md:
times are ISO 8601 in UTC, aggregate ids keep their type (a UUID as its text, an int
as a number) beside an ``id_type`` field, and an event's data is its JSON value when it
holds JSON, else ``null`` with the bytes in ``data_base64``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any, TextIO

from esrc_core.cli._show import id_type_of
from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId

__all__ = ["event_document", "json_id", "json_time", "write_document", "write_line"]


def write_document(out: TextIO, document: Mapping[str, Any]) -> None:
    """Write ``document`` to ``out`` as one indented JSON document and a newline."""
    out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")


def write_line(out: TextIO, document: Mapping[str, Any]) -> None:
    """Write ``document`` to ``out`` as one line of JSON (JSON lines)."""
    out.write(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n")


def json_time(moment: dt.datetime | None) -> str | None:
    """``moment`` in ISO 8601, in UTC (a naive time is taken as UTC); ``None`` stays."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat()


def json_id(aggregate_id: AggregateId) -> str | int:
    """An aggregate id as JSON: a UUID as its text, an int or a str as it is."""
    return str(aggregate_id) if isinstance(aggregate_id, uuid.UUID) else aggregate_id


def _data_fields(data: bytes) -> dict[str, Any]:
    try:
        return {"data": json.loads(data)}
    except (ValueError, RecursionError):
        return {"data": None, "data_base64": base64.b64encode(data).decode("ascii")}


def event_document(
    event: RawEvent,
    *,
    version: int,
    position: int | None,
    recorded_at: dt.datetime | None = None,
    stream: tuple[str, AggregateId] | None = None,
) -> dict[str, Any]:
    """One event as a JSON object: its stream (``aggregate_type``, ``aggregate_id``,
    ``id_type``; when ``stream`` is given), ``version``, ``position``,
    ``recorded_at``, ``name``, ``metadata`` and its data (see the module docstring)."""
    document: dict[str, Any] = {}
    if stream is not None:
        aggregate_type, aggregate_id = stream
        document |= {
            "aggregate_type": aggregate_type,
            "aggregate_id": json_id(aggregate_id),
            "id_type": id_type_of(aggregate_id),
        }
    document |= {
        "version": version,
        "position": position,
        "recorded_at": json_time(recorded_at),
        "name": event.name,
        "metadata": dict(event.metadata),
    }
    return document | _data_fields(event.data)
