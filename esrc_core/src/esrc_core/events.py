"""Raw events and snapshots as stores keep them, and the registry that maps event
classes to names."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from esrc_core.errors import InvalidEventError, SerializationError, UnknownEventError
from esrc_core.marshaling import CompilesDecoders, EventMarshaler, JsonMarshaler

__all__ = ["EventRegistry", "RawEvent", "RawSnapshot", "check_events"]

E = TypeVar("E")


@dataclass(frozen=True, slots=True, init=False)
class RawEvent:
    """One stored event: a name, opaque payload bytes, and text metadata.

    ``RawEvent(name, data, metadata={})``. A store returns exactly what was appended:
    the same name, bytes and metadata.
    """

    name: str
    data: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __init__(self, name: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        # Stores build one per event read: setting the slots directly costs a third
        # of the frozen dataclass's generated __init__ (object.__setattr__ per field).
        _set_name(self, name)
        _set_data(self, data)
        _set_metadata(self, {} if metadata is None else metadata)


# The slots' own setters, which the frozen class's __setattr__ does not guard.
_set_name: Callable[[RawEvent, str], None] = RawEvent.__dict__["name"].__set__
_set_data: Callable[[RawEvent, bytes], None] = RawEvent.__dict__["data"].__set__
_set_metadata: Callable[[RawEvent, Mapping[str, str]], None] = RawEvent.__dict__["metadata"].__set__


@dataclass(frozen=True, slots=True)
class RawSnapshot:
    """An aggregate's state encoded as bytes, valid at ``version`` (1 or more)."""

    version: int
    data: bytes


def check_events(events: Sequence[RawEvent], *, doing: str) -> None:
    """Raise :class:`InvalidEventError` if any event is malformed.

    A well-formed event has a non-empty ``str`` name, ``bytes`` data and ``str`` to
    ``str`` metadata. ``doing`` says what was being done, for the message. Stores call this
    before they write, so a bad event never leaves half an append behind.
    """
    if isinstance(events, RawEvent | str | bytes) or not isinstance(events, Sequence):
        raise InvalidEventError(f"{doing}: events must be a sequence of RawEvent")
    for index, event in enumerate(events):
        where = f"{doing}: event {index}"
        if not isinstance(event, RawEvent):
            raise InvalidEventError(f"{where} is a {type(event).__name__}, not a RawEvent")
        if not isinstance(event.name, str) or not event.name:
            raise InvalidEventError(f"{where}: name must be a non-empty str, got {event.name!r}")
        if not isinstance(event.data, bytes):
            raise InvalidEventError(
                f"{where} ({event.name}): data must be bytes, got {type(event.data).__name__}"
            )
        if not isinstance(event.metadata, Mapping):
            raise InvalidEventError(f"{where} ({event.name}): metadata must be a mapping")
        for key, value in event.metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidEventError(
                    f"{where} ({event.name}): metadata must map str to str, got {key!r}: {value!r}"
                )


class EventRegistry:
    """Maps event classes to stable names and back, and turns events into
    :class:`RawEvent` and back through an :class:`EventMarshaler`.

    Register each event class once, with :meth:`register` as a call or a decorator;
    the name defaults to the class's ``__name__``. A registry is safe to read from many
    threads once registration is done.
    """

    def __init__(self, marshaler: EventMarshaler | None = None) -> None:
        self._by_name: dict[str, type[Any]] = {}
        self._by_class: dict[type[Any], str] = {}
        self._codec: tuple[EventMarshaler, dict[str, Callable[[bytes], Any]]] = (
            marshaler or JsonMarshaler(),
            {},
        )
        """The marshaler and, per event name, its decoder of that name's class (see
        :meth:`from_raws`): replaced together, so a decoder never outlives its marshaler."""

    @property
    def marshaler(self) -> EventMarshaler:
        """The marshaler that encodes and decodes event payloads; it may be replaced."""
        return self._codec[0]

    @marshaler.setter
    def marshaler(self, marshaler: EventMarshaler) -> None:
        self._codec = (marshaler, {})

    @overload
    def register(self, cls: type[E], /, *, name: str | None = None) -> type[E]: ...
    @overload
    def register(self, /, *, name: str | None = None) -> Callable[[type[E]], type[E]]: ...

    def register(
        self, cls: type[E] | None = None, /, *, name: str | None = None
    ) -> type[E] | Callable[[type[E]], type[E]]:
        """Register ``cls`` under ``name`` (default: ``cls.__name__``) and return it.

        Use as ``registry.register(Cls)``, ``@registry.register`` or
        ``@registry.register(name="...")``. Registering the same class under the same
        name again is a no-op; a name already taken by another class, or a class
        already registered under another name, raises ``ValueError``.
        """

        def add(target: type[E]) -> type[E]:
            if not isinstance(target, type):
                raise TypeError(f"register an event class, got {target!r}")
            event_name = target.__name__ if name is None else name
            if not isinstance(event_name, str) or not event_name:
                raise ValueError(f"event name for {target.__qualname__} must be a non-empty str")
            taken = self._by_name.get(event_name)
            if taken is not None and taken is not target:
                raise ValueError(
                    f"event name {event_name!r} is already registered for "
                    f"{taken.__module__}.{taken.__qualname__}"
                )
            known = self._by_class.get(target)
            if known is not None and known != event_name:
                raise ValueError(
                    f"{target.__qualname__} is already registered as {known!r}, "
                    f"cannot register it again as {event_name!r}"
                )
            self._by_name[event_name] = target
            self._by_class[target] = event_name
            return target

        if cls is None:
            return add
        return add(cls)

    def register_all(self, classes: Iterable[type[Any]]) -> None:
        """Register each class under its ``__name__``."""
        for cls in classes:
            self.register(cls)

    @property
    def names(self) -> frozenset[str]:
        """The registered event names."""
        return frozenset(self._by_name)

    def name_of(self, event: object) -> str:
        """The registered name of an event instance or class.

        Raises :class:`UnknownEventError` if its class is not registered.
        """
        cls = event if isinstance(event, type) else type(event)
        try:
            return self._by_class[cls]
        except KeyError:
            raise UnknownEventError(
                f"event class {cls.__module__}.{cls.__qualname__} is not registered; "
                "call EventRegistry.register on it"
            ) from None

    def class_for(self, name: str, *, aggregate_type: str | None = None) -> type[Any]:
        """The class registered under ``name``.

        Raises :class:`UnknownEventError` naming the event and, when given, the
        aggregate type whose stream it was read from.
        """
        try:
            return self._by_name[name]
        except KeyError:
            where = f" in a stream of {aggregate_type!r}" if aggregate_type else ""
            known = ", ".join(sorted(self._by_name)) or "none"
            raise UnknownEventError(
                f"event name {name!r}{where} is not registered (registered: {known})"
            ) from None

    def to_raw(self, event: object, metadata: Mapping[str, str] | None = None) -> RawEvent:
        """Encode an event instance as a :class:`RawEvent`.

        Raises :class:`UnknownEventError` for an unregistered class and
        :class:`SerializationError` when the marshaler cannot encode it.
        """
        name = self.name_of(event)
        try:
            data = self.marshaler.marshal(event)
        except Exception as err:
            raise SerializationError(f"encode event {name}: {err}") from err
        return RawEvent(name, data, dict(metadata or {}))

    def from_raw(self, raw: RawEvent, *, aggregate_type: str | None = None) -> Any:
        """Decode a :class:`RawEvent` into an instance of its registered class.

        Raises :class:`UnknownEventError` for an unregistered name and
        :class:`SerializationError` when the bytes do not decode into the class.
        """
        return self.from_raws((raw,), aggregate_type=aggregate_type)[0]

    def from_raws(
        self, raws: Iterable[RawEvent], *, aggregate_type: str | None = None
    ) -> list[Any]:
        """Decode many :class:`RawEvent` (a stream being replayed), in order.

        The same as ``[from_raw(r, aggregate_type=...) for r in raws]``, with the same
        errors; ``list(iter_from_raws(...))``.
        """
        return list(self.iter_from_raws(raws, aggregate_type=aggregate_type))

    def iter_from_raws(
        self, raws: Iterable[RawEvent], *, aggregate_type: str | None = None
    ) -> Iterator[Any]:
        """Decode :class:`RawEvent` one at a time as the returned iterator is advanced,
        in order: a stream of any length is replayed without holding it decoded.

        Each decoded event is what :meth:`from_raw` returns, and the errors are its
        errors, raised by the iterator when it reaches the event. Each event name's
        class and decoder (the marshaler's
        :class:`~esrc_core.marshaling.CompilesDecoders` capability, when it has it) is
        looked up once and kept for as long as the marshaler is.
        """
        marshaler, decoders = self._codec
        where = f" of {aggregate_type!r}" if aggregate_type else ""
        for raw in raws:
            name = raw.name
            decode = decoders.get(name)
            if decode is None:
                cls = self.class_for(name, aggregate_type=aggregate_type)
                try:
                    decode = _decoder_of(marshaler, cls)
                except Exception as err:
                    raise SerializationError(f"decode event {name}{where}: {err}") from err
                # A registered name keeps its class (register refuses to change it), so
                # the entry stays right as long as this marshaler does.
                decoders[name] = decode
            try:
                event = decode(raw.data)
            except Exception as err:
                raise SerializationError(f"decode event {name}{where}: {err}") from err
            yield event


def _decoder_of(marshaler: EventMarshaler, cls: type[Any]) -> Callable[[bytes], Any]:
    """``marshaler``'s decoder of ``cls``: its compiled one if it has the capability,
    else a call of its ``unmarshal``."""
    if isinstance(marshaler, CompilesDecoders):
        return marshaler.decoder_for(cls)
    unmarshal = marshaler.unmarshal

    def decode(data: bytes) -> Any:
        return unmarshal(data, cls)

    return decode
