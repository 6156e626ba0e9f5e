"""Encoding events to bytes and back.

:class:`JsonMarshaler` is the default. It encodes dataclasses (nested ones too) and the
values they commonly hold (``datetime``, ``date``, ``time``, ``UUID``, ``Decimal``, enums,
lists, tuples, sets, dicts, ``None``), and decodes them back into the annotated types.
Pydantic models and msgspec structs are handled by their own libraries when those are
installed; neither is required. When msgspec is installed, it also encodes and decodes
the dataclasses whose every field type it writes byte for byte as the hand-written code
does (see :mod:`esrc_core._json_exact`); the others, and any value msgspec refuses, take
the hand-written path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import json
import math
import sys
import types
import typing
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol, TypeVar, runtime_checkable

from esrc_core._json_exact import msgspec_codec, value_check
from esrc_core.errors import SerializationError

__all__ = ["CompilesDecoders", "EventMarshaler", "JsonMarshaler"]

T = TypeVar("T")


@runtime_checkable
class EventMarshaler(Protocol):
    """Turns an event object into bytes and back.

    ``unmarshal(marshal(e), type(e))`` must equal ``e``. Both methods raise
    :class:`~esrc_core.errors.SerializationError` for values they cannot handle.
    Implementations must be safe to call from many threads.
    """

    def marshal(self, event: object) -> bytes:
        """Encode ``event`` to bytes."""
        ...

    def unmarshal(self, data: bytes, cls: type[T]) -> T:
        """Decode ``data`` into an instance of ``cls``."""
        ...


@runtime_checkable
class CompilesDecoders(Protocol):
    """A marshaler capability: prepare a decoder for a class once, then call it per event.

    ``decoder_for(cls)(data)`` must equal ``unmarshal(data, cls)``, raising the same
    errors. :class:`~esrc_core.events.EventRegistry` uses it to replay streams without
    looking the class up again for every event.
    """

    def decoder_for(self, cls: type[T]) -> Callable[[bytes], T]:
        """A function that decodes bytes into an instance of ``cls``; thread-safe."""
        ...


def _is_pydantic(cls: type[Any]) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)


def _is_msgspec(cls: type[Any]) -> bool:
    msgspec = sys.modules.get("msgspec")
    return msgspec is not None and isinstance(cls, type) and issubclass(cls, msgspec.Struct)


class JsonMarshaler:
    """The default :class:`EventMarshaler`: compact UTF-8 JSON.

    Decoding is driven by the class's type annotations, so a ``UUID`` field comes
    back as a ``UUID`` and a ``Decimal`` as a ``Decimal`` (encoded as a string, never a
    float, so no precision is lost). A ``timedelta`` is a number of seconds, or a
    decimal string of seconds when a float cannot hold it to the microsecond.

    A field annotated ``Any`` or ``object`` (or a list item or dict value so annotated)
    round-trips exactly or not at all: it may hold ``str``, ``int``, ``float``,
    ``bool``, ``None`` and lists and str-keyed dicts of them; anything else (a tuple, a
    set, bytes, a ``Decimal``, a dataclass...) would come back as another type, so
    encoding it raises :class:`~esrc_core.errors.SerializationError` naming the field.

    With ``use_msgspec`` (the default) and msgspec installed, dataclasses whose field
    types msgspec writes exactly as this class does are encoded and decoded by msgspec:
    the same bytes, the same decoded values, several times faster. ``use_msgspec=False``
    always takes the hand-written path.
    """

    _fast = True
    _encoders: dict[type[Any], Callable[[Any], bytes] | None]
    """The encoders of the classes this path has seen (shared by its instances; the
    class's own is the msgspec path's, for subclasses that skip ``__init__``)."""

    def __init__(self, *, use_msgspec: bool = True) -> None:
        self._fast = bool(use_msgspec)
        self._encoders = _ENCODERS[self._fast]

    def marshal(self, event: object) -> bytes:
        """Encode a dataclass, pydantic model or msgspec struct as JSON bytes (with an
        encoder prepared once per class)."""
        cls: type[Any] = type(event)
        try:
            encode = self._encoders[cls]
        except KeyError:
            encode = _encoder_for(typing.cast(Any, cls), self._fast)
            if len(self._encoders) >= _MAX_CLASSES:
                self._encoders.clear()
            self._encoders[cls] = encode
        if encode is None:
            raise SerializationError(
                f"cannot encode {cls.__qualname__}: JsonMarshaler encodes dataclasses, "
                "pydantic models and msgspec structs"
            )
        try:
            return encode(event)
        except Exception as err:
            raise SerializationError(f"cannot encode {cls.__qualname__}: {err}") from err

    def unmarshal(self, data: bytes, cls: type[T]) -> T:
        """Decode JSON bytes into ``cls`` using its annotations."""
        decode: Callable[[bytes], T] = _prepared_decoder(cls, self._fast)
        return decode(data)

    def decoder_for(self, cls: type[T]) -> Callable[[bytes], T]:
        """The decoder of ``cls``, compiled once per class from its annotations; it
        raises :class:`~esrc_core.errors.SerializationError` for bytes it cannot decode
        into ``cls``, and so does this method for a class it cannot prepare a decoder
        for (an annotation that does not resolve, say)."""
        if type(self).unmarshal is not JsonMarshaler.unmarshal:
            # A subclass that decodes its own way: its unmarshal is the contract.
            unmarshal = self.unmarshal
            return lambda data: unmarshal(data, cls)
        return _prepared_decoder(cls, self._fast)


_MAX_CLASSES = 1024
"""How many classes' encoders a path keeps before it starts again."""
_ENCODERS: dict[bool, dict[type[Any], Callable[[Any], bytes] | None]] = {True: {}, False: {}}
"""The encoders of each path (msgspec allowed, or not), by class."""
JsonMarshaler._encoders = _ENCODERS[True]


def _prepared_decoder(cls: type[T], fast: bool) -> Callable[[bytes], T]:
    try:
        decoder: Callable[[bytes], T] = _checked_decoder(typing.cast(Any, cls), fast)
    except Exception as err:
        raise SerializationError(f"cannot decode {cls.__qualname__}: {err}") from err
    return decoder


_dump_json: Callable[[Any], str] = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False
).encode


@functools.lru_cache(maxsize=1024)
def _encoder_for(cls: type[Any], fast: bool) -> Callable[[Any], bytes] | None:
    """How instances of ``cls`` are encoded, chosen once per class (and per choice of
    msgspec for dataclasses, ``fast``); ``None`` for a class :class:`JsonMarshaler`
    does not encode."""
    if _is_pydantic(cls):
        return lambda event: event.model_dump_json().encode()
    if _is_msgspec(cls):
        import msgspec

        encoder = msgspec.json.Encoder()
        return encoder.encode
    if not dataclasses.is_dataclass(cls):
        return None
    fields = _dataclass_fields(cls)
    dump = _dump_json
    try:
        check = value_check(cls)
        codec = msgspec_codec(cls) if fast else None
    except Exception:  # annotations that do not resolve: nothing to check them by
        check, codec = None, None

    def plain(event: Any) -> bytes:
        return dump(fields(event)).encode()

    if codec is None:
        if check is None:
            return plain

        def checked(event: Any) -> bytes:
            check(event)
            return plain(event)

        return checked
    encode_fast = codec[0]
    if check is None:

        def encode(event: Any) -> bytes:
            try:
                return encode_fast(event)
            except Exception:  # a value msgspec refuses (an int beyond 64 bits): the
                return plain(event)  # hand-written path encodes it or says why not

        return encode

    def encode_checked(event: Any) -> bytes:
        if check(event):
            try:
                return encode_fast(event)
            except Exception:
                pass
        return plain(event)

    return encode_checked


def _dataclass_fields(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    """A dataclass instance's fields as JSON values, as :func:`_to_json` gives them:
    the field names are read once, and plain ``str``, ``int``, ``bool`` and ``None``
    values are taken as they are."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    path = cls.__qualname__

    def fields(value: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            item = getattr(value, name)
            kind = type(item)
            if kind is str or kind is int or kind is bool or item is None:
                out[name] = item
            else:
                out[name] = _to_json(item, f"{path}.{name}")
        return out

    return fields


_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _json_loads(data: bytes) -> Any:
    # json.loads for the compact UTF-8 JSON this module writes, minus its per-call
    # encoding detection and whitespace checks (half of its time on a small event).
    # Anything else -- another encoding, surrounding whitespace, an error -- goes to
    # json.loads itself, so results and error messages are json.loads' own.
    try:
        text = data.decode()
        value, end = _scan_json(text, 0)
    except Exception:
        return json.loads(data)
    if end != len(text):
        return json.loads(data)
    return value


@functools.lru_cache(maxsize=1024)
def _checked_decoder(cls: type[Any], fast: bool) -> Callable[[bytes], Any]:
    decode = _class_decoder(cls, fast)
    what = f"cannot decode {cls.__qualname__}"

    def checked(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as err:
            raise SerializationError(f"{what}: {err}") from err

    return checked


def _class_decoder(cls: type[Any], fast: bool) -> Callable[[bytes], Any]:
    # Chosen once per class: which library decodes it, and the compiled converter.
    if _is_pydantic(cls):
        validate: Callable[[bytes], Any] = cls.model_validate_json
        return validate
    if _is_msgspec(cls):
        import msgspec

        decoder = msgspec.json.Decoder(cls)
        return decoder.decode
    convert = _converter(cls)
    path = cls.__qualname__
    loads = _json_loads

    def plain(data: bytes) -> Any:
        return convert(loads(data), path)

    codec = msgspec_codec(cls) if fast and dataclasses.is_dataclass(cls) else None
    if codec is None:
        return plain
    decode_fast = codec[1]

    def decode(data: bytes) -> Any:
        try:
            return decode_fast(data)
        except Exception:  # data msgspec does not take: decoded, or refused with the
            return plain(data)  # reason, as the hand-written path always did

    return decode


def _to_json(value: Any, path: str) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, enum.Enum):
        return _to_json(value.value, path)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _timedelta_to_json(value)
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _to_json(getattr(value, f.name), f"{path}.{f.name}")
            for f in dataclasses.fields(value)
        }
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = raw_key.value if isinstance(raw_key, enum.Enum) else raw_key
            if not isinstance(key, str | int | uuid.UUID):
                raise TypeError(f"{path} has a key of type {type(key).__name__}")
            out[str(key)] = _to_json(item, f"{path}[{key!r}]")
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_to_json(item, f"{path}[{i}]") for i, item in enumerate(items)]
    raise TypeError(f"{path} has a value of type {type(value).__name__}, which JSON cannot hold")


def _timedelta_to_json(value: dt.timedelta) -> float | str:
    # Seconds as a number, unless a float cannot hold every microsecond (beyond about
    # 142 years): then the exact seconds as a decimal string.
    seconds = value.total_seconds()
    try:
        if dt.timedelta(seconds=seconds) == value:
            return seconds
    except OverflowError:
        pass
    return str(Decimal(value // dt.timedelta(microseconds=1)).scaleb(-6))


def _key_from_json(key: str, hint: Any, path: str) -> Any:
    # JSON keys are text: _to_json wrote int and bool keys, and enum keys' values, with str().
    while isinstance(hint, typing.NewType):
        hint = hint.__supertype__
    if hint is bool and key in ("True", "False"):
        return key == "True"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        for member in hint:
            if str(member.value) == key:
                return member
        raise ValueError(f"{path}: key {key!r} is not a value of {hint.__qualname__}")
    if isinstance(hint, type) and issubclass(hint, int) and not issubclass(hint, bool):
        return int(key)
    return _from_json(key, hint, path)


Converter = Callable[[Any, str], Any]
"""Turns a decoded JSON value into the annotated type; the str is the value's path,
used only in error messages."""


def _from_json(raw: Any, hint: Any, path: str) -> Any:
    return _converter(hint)(raw, path)


def _converter(hint: Any) -> Converter:
    # Decoding is compiled once per annotation: inspecting types (get_type_hints above
    # all) costs far more than converting a value, and a stream replays the same few
    # event classes thousands of times.
    try:
        return _cached_converter(hint)
    except TypeError:  # an unhashable annotation: build it every time
        return _build_converter(hint)


@functools.lru_cache(maxsize=1024)
def _cached_converter(hint: Any) -> Converter:
    return _build_converter(hint)


def _identity(raw: Any, path: str) -> Any:
    return raw


def _build_converter(hint: Any) -> Converter:
    while isinstance(hint, typing.NewType):
        hint = hint.__supertype__
    if hint is Any or hint is object:
        return _identity
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return _union_converter(hint, args)
    if origin is typing.Literal:

        def literal(raw: Any, path: str) -> Any:
            if raw not in args:
                raise ValueError(f"{path}: {raw!r} is not one of {args}")
            return raw

        return literal
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple, set, frozenset):
        return _sequence_converter(origin or hint, args)
    if origin is dict or hint is dict:
        key_hint, value_hint = args if args else (Any, Any)
        value_conv = _converter(value_hint)

        def mapping(raw: Any, path: str) -> Any:
            if not isinstance(raw, dict):
                raise TypeError(f"{path}: expected an object, got {type(raw).__name__}")
            return {
                _key_from_json(k, key_hint, path): value_conv(v, f"{path}[{k!r}]")
                for k, v in raw.items()
            }

        return mapping
    if not isinstance(hint, type):
        return _identity
    if dataclasses.is_dataclass(hint):
        return _dataclass_converter(hint)
    return _scalar_converter(hint)


def _union_converter(hint: Any, args: tuple[Any, ...]) -> Converter:
    optional = type(None) in args
    options = [_converter(arg) for arg in args if arg is not type(None)]

    def union(raw: Any, path: str) -> Any:
        if raw is None and optional:
            return None
        errors = []
        for option in options:
            try:
                return option(raw, path)
            except Exception as err:
                errors.append(str(err))
        raise ValueError(f"{path}: {raw!r} matches none of {hint}: {'; '.join(errors)}")

    return union


def _sequence_converter(container: Any, args: tuple[Any, ...]) -> Converter:
    if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        items = [_converter(a) for a in args]

        def fixed_tuple(raw: Any, path: str) -> Any:
            if not isinstance(raw, list):
                raise TypeError(f"{path}: expected a list, got {type(raw).__name__}")
            if len(items) != len(raw):
                raise ValueError(f"{path}: expected {len(items)} items, got {len(raw)}")
            return tuple(
                conv(v, f"{path}[{i}]") for i, (conv, v) in enumerate(zip(items, raw, strict=True))
            )

        return fixed_tuple
    item = _converter(args[0] if args else Any)

    def sequence(raw: Any, path: str) -> Any:
        if not isinstance(raw, list):
            raise TypeError(f"{path}: expected a list, got {type(raw).__name__}")
        if item is _identity:
            return raw if container is list else container(raw)
        return container(item(v, f"{path}[{i}]") for i, v in enumerate(raw))

    return sequence


_EXACT_JSON_TYPES = (str, int, float, bool)
"""Annotations whose JSON value of exactly that type needs no conversion."""

_MISSING = object()


def _dataclass_converter(cls: type[Any]) -> Converter:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    # (name, converter or None for "no conversion", the type a JSON value may have to
    # skip the converter (a value of another type goes through it, to be converted or
    # refused), required, passed to __init__, the field's path for error messages)
    # -- all worked out once here rather than for every value.
    plan = []
    for f in fields:
        hint = hints.get(f.name, Any)
        while isinstance(hint, typing.NewType):
            hint = hint.__supertype__
        plan.append(
            (
                f.name,
                _field_converter(hint),
                hint if hint in _EXACT_JSON_TYPES else None,
                f.init
                and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING,
                f.init,
                f"{cls.__qualname__}.{f.name}",
            )
        )
    has_non_init = any(not init for _, _, _, _, init, _ in plan)

    def dataclass(raw: Any, path: str) -> Any:
        if not isinstance(raw, dict):
            raise TypeError(f"{path}: expected an object, got {type(raw).__name__}")
        kwargs = {}
        late = {}
        for name, conv, exact, required, init, field_path in plan:
            value = raw.get(name, _MISSING)
            if value is _MISSING:
                if required:
                    raise KeyError(f"{path}.{name} is missing")
                continue
            if conv is not None and type(value) is not exact:
                value = conv(value, field_path)
            if init:
                kwargs[name] = value
            else:
                late[name] = value
        obj = cls(**kwargs)
        if has_non_init:
            for name, value in late.items():
                object.__setattr__(obj, name, value)
        return obj

    return dataclass


def _field_converter(hint: Any) -> Converter | None:
    # None when the JSON value is used as it is (Any), to keep the hot loop short.
    conv = _converter(hint)
    return None if conv is _identity else conv


def _scalar_converter(hint: type[Any]) -> Converter:
    if issubclass(hint, enum.Enum):
        return lambda raw, path: hint(raw)
    if issubclass(hint, bool):

        def boolean(raw: Any, path: str) -> Any:
            if not isinstance(raw, bool):
                raise TypeError(f"{path}: expected a bool, got {raw!r}")
            return raw

        return boolean
    if issubclass(hint, dt.datetime):
        return lambda raw, path: dt.datetime.fromisoformat(raw)
    if issubclass(hint, dt.date):
        return lambda raw, path: dt.date.fromisoformat(raw)
    if issubclass(hint, dt.time):
        return lambda raw, path: dt.time.fromisoformat(raw)
    if issubclass(hint, dt.timedelta):

        def timedelta(raw: Any, path: str) -> Any:
            if isinstance(raw, str):
                return dt.timedelta(microseconds=int(Decimal(raw).scaleb(6)))
            return dt.timedelta(seconds=raw)

        return timedelta
    if issubclass(hint, uuid.UUID):
        return lambda raw, path: uuid.UUID(raw)
    if issubclass(hint, Decimal):
        return lambda raw, path: Decimal(raw)
    if issubclass(hint, bytes):
        return lambda raw, path: bytes.fromhex(raw)
    if issubclass(hint, float):

        def real(raw: Any, path: str) -> Any:
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                return float(raw)
            raise TypeError(f"{path}: expected {hint.__name__}, got {type(raw).__name__} {raw!r}")

        return real
    if hint is type(None):

        def none(raw: Any, path: str) -> Any:
            if raw is None:
                return None
            raise TypeError(f"{path}: expected None, got {type(raw).__name__} {raw!r}")

        return none

    def exact(raw: Any, path: str) -> Any:
        if isinstance(raw, hint) and not isinstance(raw, bool):
            return raw
        raise TypeError(f"{path}: expected {hint.__name__}, got {type(raw).__name__} {raw!r}")

    return exact
