"""Aggregate ids: the accepted types and the text codec stores use to key streams.

An id is a ``uuid.UUID``, a non-empty ``str`` or an ``int`` (not ``bool``). Stores key a
stream by (aggregate type, :func:`encode_id` of the id), so ``42`` and ``"42"`` are two
different streams, and :func:`decode_id` gives back the id in the type it was given.
"""

from __future__ import annotations

import uuid
from typing import TypeAlias

from esrc_core.errors import InvalidAggregateIdError

__all__ = ["AggregateId", "check_aggregate_type", "check_id", "decode_id", "encode_id"]

AggregateId: TypeAlias = uuid.UUID | str | int
"""The types an aggregate id may have."""

_UUID, _STR, _INT = "u:", "s:", "i:"


def check_id(aggregate_id: object, *, doing: str = "use aggregate id") -> AggregateId:
    """Return ``aggregate_id`` unchanged if it is a valid id, else raise
    :class:`InvalidAggregateIdError` saying what was being done."""
    if isinstance(aggregate_id, bool) or not isinstance(aggregate_id, uuid.UUID | str | int):
        raise InvalidAggregateIdError(
            f"{doing}: aggregate id {aggregate_id!r} has type {type(aggregate_id).__name__}; "
            "ids must be uuid.UUID, str or int"
        )
    if isinstance(aggregate_id, str) and not aggregate_id:
        raise InvalidAggregateIdError(f"{doing}: aggregate id must not be an empty string")
    return aggregate_id


def check_aggregate_type(aggregate_type: object, *, doing: str = "use aggregate type") -> str:
    """Return ``aggregate_type`` if it is a non-empty ``str``, else raise ``TypeError``
    (wrong type) or ``ValueError`` (empty)."""
    if not isinstance(aggregate_type, str):
        raise TypeError(
            f"{doing}: aggregate type must be a str, got {type(aggregate_type).__name__}"
        )
    if not aggregate_type:
        raise ValueError(f"{doing}: aggregate type must not be empty")
    return aggregate_type


def encode_id(aggregate_id: AggregateId) -> str:
    """Encode an id as text that keeps its type: ``u:<uuid>``, ``s:<str>`` or ``i:<int>``."""
    # The exact types first: every relayed event and every read encodes an id.
    kind = type(aggregate_id)
    if kind is uuid.UUID:
        return _UUID + str(aggregate_id)
    if kind is str and aggregate_id:
        return _STR + aggregate_id  # type: ignore[operator]
    if kind is int:
        return _INT + str(aggregate_id)
    check_id(aggregate_id, doing="encode aggregate id")
    if isinstance(aggregate_id, uuid.UUID):
        return _UUID + str(aggregate_id)
    if isinstance(aggregate_id, str):
        return _STR + aggregate_id
    return _INT + str(aggregate_id)


def decode_id(text: str) -> AggregateId:
    """Invert :func:`encode_id`; raise ``ValueError`` for text it did not produce."""
    prefix, body = text[:2], text[2:]
    value: AggregateId | None = None
    try:
        if prefix == _UUID:
            value = uuid.UUID(body)
        elif prefix == _STR and body:
            value = body
        elif prefix == _INT:
            value = int(body)
    except ValueError as err:
        raise ValueError(f"decode aggregate id {text!r}: {err}") from err
    # int() and UUID() also accept "05", " 5", "1_000", upper case and braces: only the
    # one text encode_id writes for a value is that value's id.
    if value is None or encode_id(value) != text:
        raise ValueError(f"decode aggregate id {text!r}: not produced by encode_id")
    return value
