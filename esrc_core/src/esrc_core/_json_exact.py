"""What :class:`~esrc_core.marshaling.JsonMarshaler` may hand to msgspec, and what a
field annotated ``Any`` or ``object`` may hold.

Two questions, both answered once per class from its annotations:

- :func:`value_check`: a function that walks the values of an event that sit under an
  ``Any``/``object`` annotation (a field, a list item, a dict value) and raises
  ``TypeError`` naming the path for one JSON would not give back as it was (a tuple
  comes back as a list, a set as a list, bytes as text, a ``Decimal`` as a ``str``...).
  It returns whether msgspec writes every value it checked byte for byte as the
  hand-written encoder does (false for a float msgspec prints in another notation).
- :func:`msgspec_codec`: an encoder and a decoder from msgspec for a class whose every
  field type msgspec writes exactly as the hand-written path and reads back to equal
  values, or ``None``: ``datetime``/``time`` (msgspec writes UTC as ``Z``),
  ``timedelta`` and ``bytes`` (other formats), sets (other order) and ``bool`` dict
  keys are left to the hand-written path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import types
import typing
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

__all__ = ["ValueCheck", "msgspec_codec", "value_check"]

ValueCheck = Callable[[Any], bool]
"""Raises ``TypeError`` for a value JSON cannot give back under an ``Any`` annotation;
returns whether msgspec writes every checked value as the hand-written encoder does."""

_PLAIN_FLOAT_LOW = 1e-4
_PLAIN_FLOAT_HIGH = 1e16
"""Python's ``repr`` writes a float without an exponent from 1e-4 up to 1e16, and there
msgspec writes the same digits; outside it their exponents are spelled differently
(``1e+16`` and ``1e16``)."""


def _same_float_text(value: float) -> bool:
    magnitude = abs(value)
    return magnitude == 0.0 or _PLAIN_FLOAT_LOW <= magnitude < _PLAIN_FLOAT_HIGH


def _unwrap(hint: Any) -> Any:
    while isinstance(hint, typing.NewType):
        hint = hint.__supertype__
    return hint


def _is_any(hint: Any) -> bool:
    return hint is Any or hint is object


def _refuse(value: Any, path: str, comes_back_as: str) -> typing.NoReturn:
    raise TypeError(
        f"{path} is annotated Any or object and holds a {type(value).__name__}, which "
        f"JSON gives back as {comes_back_as}; there it keeps only str, int, float, bool, "
        "None, and lists and str-keyed dicts of them (annotate the field with its type)"
    )


def _check_json_value(value: Any, path: str) -> bool:
    """Raise ``TypeError`` unless JSON gives ``value`` back as it is; return whether
    msgspec writes it as the hand-written encoder does."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        # Non-finite floats are refused by the encoder itself, with its own message.
        return math.isfinite(value) and _same_float_text(value)
    if kind is list:
        same = True
        for index, item in enumerate(value):
            same = _check_json_value(item, f"{path}[{index}]") and same
        return same
    if kind is dict:
        same = True
        for key, item in value.items():
            if type(key) is not str:
                _refuse(key, f"{path} key {key!r}", "a str")
            same = _check_json_value(item, f"{path}[{key!r}]") and same
        return same
    if isinstance(value, list | tuple | set | frozenset):
        _refuse(value, path, "a list")
    if isinstance(value, dict):
        _refuse(value, path, "a dict")
    if dataclasses.is_dataclass(value) or isinstance(value, enum.Enum):
        _refuse(value, path, "its fields or value")
    if isinstance(value, str | int | float):
        _refuse(value, path, f"a plain {kind.__mro__[1].__name__}")
    _refuse(value, path, "a str, or not at all")


def _runtime_class(hint: Any) -> type[Any] | None:
    hint = _unwrap(hint)
    origin = typing.get_origin(hint) or hint
    if origin is typing.Literal or origin is typing.Union or origin is types.UnionType:
        return None
    return origin if isinstance(origin, type) else None


def _hint_check(
    hint: Any, building: dict[type[Any], list[Any]]
) -> Callable[[Any, str], bool] | None:
    """A check of the values a ``hint`` annotates, or ``None`` when they need none."""
    hint = _unwrap(hint)
    if _is_any(hint):
        return _check_json_value
    if hint is float:

        def same_float(value: Any, path: str) -> bool:
            return type(value) is not float or _same_float_text(value)

        return same_float
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        if any(_is_any(_unwrap(a)) for a in args):
            return _check_json_value
        members = [(_runtime_class(a), _hint_check(a, building)) for a in args]
        checked = [(cls, check) for cls, check in members if check is not None]
        if not checked:
            return None

        def union(value: Any, path: str) -> bool:
            for cls, check in checked:
                if cls is not None and isinstance(value, cls):
                    return check(value, path)
            return True

        return union
    if hint in (list, tuple, set, frozenset, dict):
        origin, args = hint, ()
    if origin in (list, set, frozenset) or (origin is tuple and len(args) != 0):
        items = args if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis) else None
        if items is not None:
            checks = [_hint_check(a, building) for a in items]
            if all(c is None for c in checks):
                return None

            def fixed(value: Any, path: str) -> bool:
                same = True
                for index, (check, item) in enumerate(zip(checks, value, strict=False)):
                    if check is not None:
                        same = check(item, f"{path}[{index}]") and same
                return same

            return fixed
        item_check = _hint_check(args[0] if args else Any, building)
        if item_check is None:
            return None

        def sequence(value: Any, path: str) -> bool:
            same = True
            for index, item in enumerate(value):
                same = item_check(item, f"{path}[{index}]") and same
            return same

        return sequence
    if origin is tuple:  # a bare tuple: tuple[Any, ...]
        return _hint_check(tuple[Any, ...], building)
    if origin is dict:
        key_hint, value_hint = args if args else (Any, Any)
        key_check = _check_json_value if _is_any(_unwrap(key_hint)) else None
        value_check = _hint_check(value_hint, building)
        if key_check is None and value_check is None:
            return None

        def mapping(value: Any, path: str) -> bool:
            same = True
            for key, item in value.items():
                if key_check is not None and type(key) is not str:
                    _refuse(key, f"{path} key {key!r}", "a str")
                if value_check is not None:
                    same = value_check(item, f"{path}[{key!r}]") and same
            return same

        return mapping
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_check(hint, building)
    return None


def _dataclass_check(
    cls: type[Any], building: dict[type[Any], list[Any]]
) -> Callable[[Any, str], bool] | None:
    if cls in building:  # a class that holds itself: look its check up when it runs
        pending = building[cls]
        return lambda value, path: pending[0] is None or bool(pending[0](value, path))
    holder: list[Any] = [None]
    building[cls] = holder
    hints = typing.get_type_hints(cls)
    checks = []
    for f in dataclasses.fields(cls):
        check = _hint_check(hints.get(f.name, Any), building)
        if check is not None:
            checks.append((f.name, check))
    del building[cls]

    def fields(value: Any, path: str) -> bool:
        if not dataclasses.is_dataclass(value):
            return True
        same = True
        for name, check in checks:
            same = check(getattr(value, name), f"{path}.{name}") and same
        return same

    holder[0] = fields if checks else None
    return holder[0]  # type: ignore[no-any-return]


def value_check(cls: type[Any]) -> ValueCheck | None:
    """The check of an event class's values (see the module docstring), or ``None``
    when it has no float and no ``Any``/``object`` annotation anywhere."""
    check = _dataclass_check(cls, {})
    if check is None:
        return None
    path = cls.__qualname__
    return lambda event: check(event, path)


_EXACT_SCALARS = (str, int, bool, float, type(None), uuid.UUID, Decimal, dt.date)
"""Annotations whose values msgspec writes and reads exactly as the hand-written path
(``date`` only: ``datetime`` is refused separately)."""


def _exact(hint: Any, seen: set[type[Any]]) -> bool:
    """Whether msgspec writes every value ``hint`` allows exactly as the hand-written
    encoder does, and reads it back to an equal value."""
    hint = _unwrap(hint)
    if _is_any(hint):
        return True
    if hint in (dt.datetime, dt.time, dt.timedelta, bytes):
        return False
    if hint in _EXACT_SCALARS:  # floats: the value check falls back for other notations
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return all(type(a) in (str, int) or a is None for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return all(_exact(a, seen) for a in args)
    if hint in (list, tuple, dict):
        return True  # their items are Any
    if origin in (list, tuple):
        items = [a for a in args if a is not Ellipsis]
        return all(_exact(a, seen) for a in items)
    if origin is dict:
        key, value = args
        key = _unwrap(key)
        key_ok = key in (str, int, uuid.UUID) or _is_any(key) or _plain_enum(key)
        return key_ok and _exact(value, seen)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _plain_enum(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _exact_dataclass(hint, seen)
    return False


def _plain_enum(hint: Any) -> bool:
    if not (isinstance(hint, type) and issubclass(hint, enum.Enum)):
        return False
    if issubclass(hint, enum.Flag):
        return False
    kinds = {type(member.value) for member in hint}
    return kinds in ({str}, {int})


def _exact_dataclass(cls: type[Any], seen: set[type[Any]]) -> bool:
    if cls in seen:
        return True
    seen.add(cls)
    params = cls.__dataclass_params__
    fields = dataclasses.fields(cls)
    if not params.init or len(fields) != len(cls.__dataclass_fields__):
        return False  # init=False, InitVar or ClassVar: __init__ is not just the fields
    if any(not f.init for f in fields):
        return False
    hints = typing.get_type_hints(cls)
    return all(_exact(hints.get(f.name, Any), seen) for f in fields)


def msgspec_codec(
    cls: type[Any],
) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]] | None:
    """msgspec's encoder and decoder of the dataclass ``cls`` when msgspec is installed
    and handles every type it annotates exactly as the hand-written path, else
    ``None``. The encoder raises for values msgspec refuses (an int beyond 64 bits);
    the decoder raises ``msgspec.ValidationError`` or ``msgspec.DecodeError`` for data
    it does not accept, which the hand-written path then decodes (or refuses) as it
    always did."""
    try:
        import msgspec
    except ImportError:
        return None
    if not _exact_dataclass(cls, set()):
        return None
    try:
        decoder = msgspec.json.Decoder(cls)
    except TypeError:  # a union msgspec cannot tell apart, say
        return None
    return msgspec.json.Encoder().encode, decoder.decode
