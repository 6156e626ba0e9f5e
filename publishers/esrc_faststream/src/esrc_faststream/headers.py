"""How a relayed event travels: the headers every esrc publisher sets, and the
routing rule that names a routing key, subject or stream from an event.

Every publisher sends the raw event bytes as the message body and these headers
(RabbitMQ message headers, NATS headers, Redis stream entry fields):

=====================  =====================================================
header                 value
=====================  =====================================================
``esrc-message-id``    :attr:`RelayEvent.message_id` (``type/encoded id/version``)
``esrc-aggregate-type`` the aggregate type
``esrc-aggregate-id``  the aggregate id, encoded with :func:`esrc_core.ids.encode_id`
``esrc-version``       the event's version in its stream (decimal)
``esrc-position``      the event's global position in the store (decimal)
``esrc-event-name``    the event name
``esrc-metadata``      the event's metadata as a JSON object (str to str)
=====================  =====================================================

:func:`relay_event_from` turns them (and the body) back into the
:class:`~esrc_core.relay.RelayEvent` that was published.

Header values are ASCII on every transport: characters outside printable ASCII, and
``%`` itself, are percent-encoded as UTF-8 (``order-42/é`` travels as
``order-42/%C3%A9``; plain ASCII ids travel unchanged). NATS, for one, does not carry
other bytes in headers intact.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Callable, Mapping
from typing import TypeAlias
from urllib.parse import quote, unquote

from esrc_core.errors import BackendConfigError, InvalidEventError
from esrc_core.events import RawEvent
from esrc_core.ids import decode_id, encode_id
from esrc_core.relay import RelayEvent

__all__ = [
    "AGGREGATE_ID",
    "AGGREGATE_TYPE",
    "BODY_FIELD",
    "EVENT_NAME",
    "HEADERS",
    "MESSAGE_ID",
    "METADATA",
    "POSITION",
    "VERSION",
    "RoutingRule",
    "check_routing_rule",
    "header_value",
    "metadata_json",
    "relay_event_from",
    "relay_headers",
    "route",
]

MESSAGE_ID = "esrc-message-id"
"""Header with the event's deterministic message id."""
AGGREGATE_TYPE = "esrc-aggregate-type"
"""Header with the aggregate type."""
AGGREGATE_ID = "esrc-aggregate-id"
"""Header with the aggregate id encoded by :func:`esrc_core.ids.encode_id`."""
VERSION = "esrc-version"
"""Header with the event's version in its stream."""
POSITION = "esrc-position"
"""Header with the event's global position in the store."""
EVENT_NAME = "esrc-event-name"
"""Header with the event name."""
METADATA = "esrc-metadata"
"""Header with the event's metadata as a JSON object."""

BODY_FIELD = "data"
"""The Redis stream entry field that holds the event bytes (other transports carry
them as the message body)."""

HEADERS = (MESSAGE_ID, AGGREGATE_TYPE, AGGREGATE_ID, VERSION, POSITION, EVENT_NAME, METADATA)
"""Every header an esrc publisher sets, in a fixed order."""

RoutingRule: TypeAlias = str | Callable[[RelayEvent], str]
"""Names the destination of an event: a format string with the fields
``aggregate_type``, ``event_name``, ``aggregate_id`` (encoded) and ``version``, e.g.
``"{aggregate_type}.{event_name}"``, or a function of the event."""


_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def header_value(text: str) -> str:
    """``text`` as an ASCII header value: percent-encode what is not printable ASCII
    (and ``%``). The encoding :func:`relay_headers` applies to every value."""
    if text.isascii() and text.isprintable() and "%" not in text:
        return text  # what quote() returns for it, without its cost
    return quote(text, safe=_SAFE)


_json_string = json.encoder.encode_basestring_ascii
_last_metadata: list[tuple[dict[str, str], str]] = [({}, "{}")]
"""The last metadata :func:`metadata_json` encoded, and its JSON: events of one command
share it."""


def metadata_json(metadata: Mapping[str, str]) -> str:
    """The ``esrc-metadata`` header value before :func:`header_value`: a JSON object
    with sorted keys, no spaces, non-ASCII characters escaped (what ``json.dumps(...,
    sort_keys=True, separators=(",", ":"))`` writes). Raises ``TypeError`` for a key or
    value that is not a ``str``."""
    last = _last_metadata[0]
    if metadata == last[0]:
        return last[1]
    items = sorted(metadata.items())
    text = "{" + ",".join([f"{_json_string(k)}:{_json_string(v)}" for k, v in items]) + "}"
    _last_metadata[0] = (dict(items), text)
    return text


def relay_headers(event: RelayEvent) -> dict[str, str]:
    """The esrc headers of ``event`` (see the module docstring)."""
    raw = event.event
    value = header_value
    return {
        MESSAGE_ID: value(event.message_id),
        AGGREGATE_TYPE: value(event.aggregate_type),
        AGGREGATE_ID: value(encode_id(event.aggregate_id)),
        VERSION: str(event.version),
        POSITION: str(event.position),
        EVENT_NAME: value(raw.name),
        METADATA: value(metadata_json(raw.metadata)),
    }


def relay_event_from(headers: Mapping[str, object], body: bytes) -> RelayEvent:
    """Rebuild the :class:`RelayEvent` an esrc publisher sent with ``headers`` and
    ``body``. Header values may be ``str`` or UTF-8 ``bytes``; other headers are ignored.

    Raises :class:`~esrc_core.errors.InvalidEventError` naming the message id (when
    present) if a header is missing or malformed, or if the message id does not match
    the other headers.
    """
    text: dict[str, str] = {}
    for name in HEADERS:
        value = headers.get(name)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if value is not None:
            text[name] = str(value)
    where = f"decode relayed message {text.get(MESSAGE_ID, '(no message id)')!r}"
    missing = [name for name in HEADERS if name not in text]
    if missing:
        raise InvalidEventError(f"{where}: missing headers {', '.join(missing)}")
    try:
        text = {name: unquote(value, errors="strict") for name, value in text.items()}
        aggregate_id = decode_id(text[AGGREGATE_ID])
        version = int(text[VERSION])
        position = int(text[POSITION])
        metadata = json.loads(text[METADATA])
    except ValueError as err:
        raise InvalidEventError(f"{where}: {err}") from err
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise InvalidEventError(f"{where}: {METADATA} is not a JSON object of strings")
    event = RelayEvent(
        aggregate_type=text[AGGREGATE_TYPE],
        aggregate_id=aggregate_id,
        version=version,
        position=position,
        event=RawEvent(text[EVENT_NAME], bytes(body), metadata),
    )
    if event.message_id != text[MESSAGE_ID]:
        raise InvalidEventError(
            f"{where}: the message id does not match the headers (expected {event.message_id!r})"
        )
    return event


def route(rule: RoutingRule, event: RelayEvent) -> str:
    """The destination ``rule`` names for ``event``.

    Raises ``ValueError`` if a format string names an unknown field or the result is
    empty.
    """
    if callable(rule):
        name = rule(event)
    else:
        fields = _rule_fields(rule)
        if fields <= _TYPE_AND_NAME:
            # The usual rules name the aggregate type and the event name only: one
            # destination per pair, worked out once.
            key = (rule, event.aggregate_type, event.event.name)
            known = _routes.get(key)
            if known is None:
                known = _format(rule, event, fields)
                if len(_routes) >= _MAX_ROUTES:
                    _routes.clear()
                _routes[key] = known
            name = known
        else:
            name = _format(rule, event, fields)
    if not isinstance(name, str) or not name:
        raise ValueError(f"routing rule {rule!r} gave {name!r} for {event.message_id}")
    return name


def check_routing_rule(rule: RoutingRule, *, option: str, where: str) -> None:
    """Check a format-string ``rule`` before anything is published: raise
    :class:`~esrc_core.errors.BackendConfigError` naming ``option`` and ``where`` (the
    masked URL) when it is malformed or names an unknown field. A function is taken as
    it is."""
    if callable(rule):
        return
    sample = {"aggregate_type": "A", "event_name": "E", "aggregate_id": "s:a", "version": 1}
    try:
        unknown = _rule_fields(rule) - sample.keys()
        if not unknown:
            rule.format(**sample)
    except (ValueError, IndexError, KeyError) as err:
        raise BackendConfigError(f"{option} rule {rule!r} for {where}: {err}") from err
    if unknown:
        raise BackendConfigError(
            f"{option} rule {rule!r} for {where} names unknown fields "
            f"{', '.join(sorted(unknown))}; use aggregate_type, event_name, aggregate_id "
            "or version"
        )


_TYPE_AND_NAME = frozenset({"aggregate_type", "event_name"})
_MAX_ROUTES = 4096
_routes: dict[tuple[str, str, str], str] = {}
"""Destinations of rules that name only the aggregate type and the event name."""


@functools.lru_cache(maxsize=256)
def _rule_fields(rule: str) -> frozenset[str]:
    """The field names a format string uses, also inside format specs such as
    ``{event_name:>{version}}`` (``ValueError`` if it is malformed)."""
    fields: set[str] = set()
    for _, field, spec, _ in string.Formatter().parse(rule):
        if field is not None:
            fields.add(field.split(".")[0].split("[")[0])
        if spec and "{" in spec:
            fields |= _rule_fields(spec)
    return frozenset(fields)


def _format(rule: str, event: RelayEvent, fields: frozenset[str]) -> str:
    values: dict[str, object] = {
        "aggregate_type": event.aggregate_type,
        "event_name": event.event.name,
        "version": event.version,
    }
    if "aggregate_id" in fields:
        values["aggregate_id"] = encode_id(event.aggregate_id)
    try:
        return rule.format(**values)
    except (KeyError, IndexError) as err:
        raise ValueError(
            f"routing rule {rule!r} names an unknown field {err}; use aggregate_type, "
            "event_name, aggregate_id or version"
        ) from err
