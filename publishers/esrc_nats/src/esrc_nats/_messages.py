"""How the JetStream store lays events out in messages, and reads them back.

A stream's subject is ``<prefix>.<type token>.<id token>``: the type token is the
aggregate type itself when it is letters, digits, ``_`` and ``-``, else ``~`` and its
base64url form; the id token is the base64url form of
:func:`~esrc_core.ids.encode_id` (so ``42`` and ``"42"`` are different subjects). An
event's name, metadata, schema version and stream version travel in headers, its data
is the message body.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from esrc_core.errors import StoreUnavailableError
from esrc_core.events import RawEvent
from esrc_core.ids import AggregateId, decode_id, encode_id

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
DELETED = "Esrc-Deleted"
"""The header of a deleted stream's tombstone message."""
HEAD = "Esrc-Head"
"""The header of the message that stands for a stream's last event once retention
removed every event (it carries the stream's version)."""


def b64(text: str) -> str:
    """``text`` as unpadded base64url: only letters, digits, ``-`` and ``_``."""
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def unb64(token: str) -> str:
    """Invert :func:`b64`."""
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode(
        "utf-8", "surrogatepass"
    )


def subject_token(aggregate_type: str) -> str:
    """The subject token of an aggregate type: itself when it is letters, digits, ``_``
    and ``-``, else ``~`` and its base64url form."""
    return aggregate_type if _TOKEN.fullmatch(aggregate_type) else "~" + b64(aggregate_type)


def subject(prefix: str, aggregate_type: str, aggregate_id: AggregateId) -> str:
    """The subject of a stream's events."""
    return f"{prefix}.{subject_token(aggregate_type)}.{b64(encode_id(aggregate_id))}"


@functools.lru_cache(maxsize=4096)
def stream_of(subject_: str) -> tuple[str, AggregateId]:
    """The (aggregate type, id) whose subject is ``subject_`` (see :func:`subject`);
    the latest thousands are cached, as a relay reads many events of one stream."""
    _, token, id_token = subject_.rsplit(".", 2)
    aggregate_type = unb64(token[1:]) if token.startswith("~") else token
    return aggregate_type, decode_id(unb64(id_token))


def event_headers(event: RawEvent, version: int) -> dict[str, str]:
    """The headers that carry ``event``'s fields besides its data, at ``version``."""
    return {
        "Esrc-Name": json.dumps(event.name),
        "Esrc-Metadata": json.dumps(dict(event.metadata), sort_keys=True),
        "Esrc-Schema-Version": str(event.schema_version),
        "Esrc-Version": str(version),
    }


def raw_event(headers: Mapping[str, str], data: bytes) -> RawEvent:
    """The event a message holds (see :func:`event_headers`)."""
    return RawEvent(
        json.loads(headers["Esrc-Name"]),
        data,
        json.loads(headers["Esrc-Metadata"]),
        int(headers["Esrc-Schema-Version"]),
    )


def recorded_at(headers: Mapping[str, str]) -> dt.datetime | None:
    """When the server stored a message read by a direct get (``Nats-Time-Stamp``)."""
    stamp = headers.get("Nats-Time-Stamp")
    if not stamp:
        return None
    # RFC 3339 with nanoseconds: Python keeps microseconds.
    match = re.fullmatch(r"(.*?T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp)
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    text = whole + (f".{(fraction or '0')[:6]:0<6}") + ("+00:00" if zone == "Z" else zone)
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class Message:
    """One stored message read by a direct get."""

    seq: int
    subject: str
    headers: Mapping[str, str]
    data: bytes

    @property
    def version(self) -> int:
        """The stream version of the event it holds."""
        return int(self.headers["Esrc-Version"])


class Watermark:
    """The highest stream sequence a store has seen: in its publish acknowledgements
    and in the answers to its reads. Every read asks for it as ``min_last_seq``
    (nats-server 2.12 and later), so a replica that has not applied that far does not
    answer (a follower hands the read to the stream leader): a store reads its own
    writes, and never reads older state than it read before. Used on one event loop."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def see(self, seq: int) -> None:
        """Raise the watermark to ``seq`` if it is higher."""
        self.value = max(self.value, seq)


def _status(headers: Mapping[str, str]) -> str | None:
    return headers.get("Status")


async def direct_last(
    nc: Any, stream: str, subject_: str, *, watermark: Watermark, timeout: float
) -> Message | None:
    """The last message on ``subject_``, ``None`` when it has none, by one direct get
    asking for the ``watermark``. Raises
    :class:`~esrc_core.errors.StoreUnavailableError` for an error status."""
    request = {"last_by_subj": subject_}
    if watermark.value:
        request["min_last_seq"] = watermark.value  # type: ignore[assignment]
    msg = await nc.request(
        f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), timeout=timeout
    )
    headers = msg.headers or {}
    status = _status(headers)
    if status == "404":
        return None
    if status:
        raise StoreUnavailableError(
            f"direct get of the last message on {subject_} of stream {stream}: status "
            f"{status} {headers.get('Description', '')}"
        )
    found = Message(int(headers["Nats-Sequence"]), subject_, headers, msg.data or b"")
    watermark.see(found.seq)
    return found


async def direct_get(
    nc: Any,
    stream: str,
    filter_subject: str,
    start: int,
    count: int,
    *,
    watermark: Watermark,
    timeout: float,
) -> list[Message]:
    """Up to ``count`` messages on ``filter_subject`` (wildcards allowed) from stream
    sequence ``start`` on, in sequence order, by one batched direct get (nats-server
    2.11 or later) asking for the ``watermark``: the server sends them to an inbox and
    ends with a ``204`` status. Raises
    :class:`~esrc_core.errors.StoreUnavailableError` for another status."""
    page: list[Message] = []
    ended: asyncio.Future[Mapping[str, str]] = asyncio.get_running_loop().create_future()

    async def collect(msg: Any) -> None:
        # Collected here, awaited once per page: a wait per message costs a third more.
        headers = msg.headers or {}
        if not _status(headers):
            page.append(
                Message(
                    int(headers["Nats-Sequence"]), headers["Nats-Subject"], headers, msg.data or b""
                )
            )
        elif not ended.done():
            ended.set_result(headers)

    inbox = nc.new_inbox()
    subscription = await nc.subscribe(inbox, cb=collect)
    try:
        request = {"seq": start, "next_by_subj": filter_subject, "batch": count}
        if watermark.value:
            request["min_last_seq"] = watermark.value
        await nc.publish(f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox)
        headers = await asyncio.wait_for(ended, timeout)
    finally:
        await subscription.unsubscribe()
    status = _status(headers)
    if status not in {"204", "404"}:
        raise StoreUnavailableError(
            f"direct get of {filter_subject} from {start} on stream {stream}: "
            f"status {status} {headers.get('Description', '')}"
        )
    if page:
        watermark.see(page[-1].seq)
    last = headers.get("Nats-Last-Sequence")
    if last:
        watermark.see(int(last))
    return page
