"""Raw events and snapshots as stores keep them, and the registry that maps event
classes to names."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from esrc_core.errors import (
    InvalidEventError,
    MissingUpcasterError,
    SerializationError,
    UnknownEventError,
)
from esrc_core.marshaling import CompilesDecoders, EventMarshaler, JsonMarshaler
from esrc_core.personal_data import PersonalDataMarshaler, marks_personal_data

__all__ = ["EventRegistry", "RawEvent", "RawSnapshot", "check_events"]

E = TypeVar("E")


@dataclass(frozen=True, slots=True, init=False)
class RawEvent:
    """One stored event: a name, opaque payload bytes, text metadata and the schema
    version of the payload.

    ``RawEvent(name, data, metadata={}, schema_version=1)``. A store returns exactly what
    was appended: the same name, bytes, metadata and schema version. The schema version
    (1 or more) says which form of the event's class wrote ``data``; an
    :class:`EventRegistry` upcasts older forms on read (see :meth:`EventRegistry.upcaster`).
    """

    name: str
    data: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)
    schema_version: int = 1

    def __init__(
        self,
        name: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        schema_version: int = 1,
    ) -> None:
        # Stores build one per event read: setting the slots directly costs a third
        # of the frozen dataclass's generated __init__ (object.__setattr__ per field).
        _set_name(self, name)
        _set_data(self, data)
        _set_metadata(self, {} if metadata is None else metadata)
        _set_schema_version(self, schema_version)


# The slots' own setters, which the frozen class's __setattr__ does not guard.
_set_name: Callable[[RawEvent, str], None] = RawEvent.__dict__["name"].__set__
_set_data: Callable[[RawEvent, bytes], None] = RawEvent.__dict__["data"].__set__
_set_metadata: Callable[[RawEvent, Mapping[str, str]], None] = RawEvent.__dict__["metadata"].__set__
_set_schema_version: Callable[[RawEvent, int], None] = RawEvent.__dict__["schema_version"].__set__


@dataclass(frozen=True, slots=True)
class RawSnapshot:
    """An aggregate's state encoded as bytes, valid at ``version`` (1 or more).

    ``schema_version`` (1 or more) is the form of the aggregate's snapshot that wrote
    ``data``; a repository ignores a snapshot whose schema version is not the current
    one and replays the events instead. A store returns it as it was added.
    """

    version: int
    data: bytes
    schema_version: int = 1


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
        if type(event.schema_version) is not int or event.schema_version < 1:
            raise InvalidEventError(
                f"{where} ({event.name}): schema_version must be an int of 1 or more, "
                f"got {event.schema_version!r}"
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
        self._versions: dict[str, int] = {}
        """Per registered name, its class's current schema version (written by
        :meth:`to_raw`)."""
        self._upcasters: dict[tuple[str, int], Callable[[Any], Any]] = {}
        """Per (event name, stored version), the step to the next version."""
        self._renamed: dict[str, str] = {}
        """Per old event name, the registered name its stored events are read as."""
        self._codec: tuple[EventMarshaler, dict[str, tuple[Callable[[bytes], Any], int]]] = (
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
        for cls in self._by_class:
            _check_personal_data(marshaler, cls)
        self._codec = (marshaler, {})

    @overload
    def register(
        self, cls: type[E], /, *, name: str | None = None, version: int = 1
    ) -> type[E]: ...
    @overload
    def register(
        self, /, *, name: str | None = None, version: int = 1
    ) -> Callable[[type[E]], type[E]]: ...

    def register(
        self, cls: type[E] | None = None, /, *, name: str | None = None, version: int = 1
    ) -> type[E] | Callable[[type[E]], type[E]]:
        """Register ``cls`` under ``name`` (default: ``cls.__name__``) at schema
        ``version`` (its current form, 1 or more; events are always written at it) and
        return it.

        Use as ``registry.register(Cls)``, ``@registry.register`` or
        ``@registry.register(name="...", version=2)``. Registering the same class under
        the same name and version again is a no-op; a name already taken by another
        class, or a class already registered under another name or version, raises
        ``ValueError``, and so does a class with personal data fields when the
        marshaler is not a :class:`~esrc_core.personal_data.PersonalDataMarshaler`
        (it would store them in clear; so does replacing the marshaler by one). Older
        stored versions are read through :meth:`upcaster` steps.
        """
        if type(version) is not int or version < 1:
            raise ValueError(f"schema version must be an int of 1 or more, got {version!r}")

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
            if event_name in self._renamed:
                raise ValueError(
                    f"event name {event_name!r} is an old name of "
                    f"{self._renamed[event_name]!r}; it cannot name a class again"
                )
            _check_personal_data(self.marshaler, target)
            current = self._versions.get(event_name)
            if current is not None and current != version:
                raise ValueError(
                    f"{target.__qualname__} is already registered at schema version "
                    f"{current}, cannot register it again at {version}"
                )
            self._by_name[event_name] = target
            self._by_class[target] = event_name
            self._versions[event_name] = version
            return target

        if cls is None:
            return add
        return add(cls)

    def upcaster(
        self, name: str, from_version: int
    ) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
        """Register, as a decorator, the step that turns event ``name``'s stored form at
        schema ``from_version`` into its form at ``from_version + 1``.

        The step takes and returns the payload as the marshaler reads it: a ``dict``
        (the decoded JSON object) with :class:`~esrc_core.marshaling.JsonMarshaler`,
        the raw ``bytes`` with any other marshaler. On read, steps are chained from the
        stored version to the class's current one, so a class only ever decodes its
        current form. ``name`` is the registered name (for a renamed event, the new
        one; its old stored versions keep their numbers). A second step for the same
        name and version raises ``ValueError``. Register every step before reading.
        """
        if type(from_version) is not int or from_version < 1:
            raise ValueError(f"from_version must be an int of 1 or more, got {from_version!r}")

        def add(step: Callable[[Any], Any]) -> Callable[[Any], Any]:
            key = (name, from_version)
            if key in self._upcasters:
                raise ValueError(
                    f"event {name!r} already has an upcaster from schema version {from_version}"
                )
            self._upcasters[key] = step
            self._codec = (self._codec[0], {})
            return step

        return add

    def rename(self, old_name: str, new_name: str) -> None:
        """Read events stored under ``old_name`` as the class registered under
        ``new_name`` (which need not be registered yet), through ``new_name``'s
        upcasters from their stored schema version.

        New events are written under ``new_name`` only. ``ValueError`` if
        ``old_name`` names a registered class or was already renamed to another name.
        """
        if not isinstance(old_name, str) or not old_name or old_name == new_name:
            raise ValueError(f"cannot rename {old_name!r} to {new_name!r}")
        if old_name in self._by_name:
            raise ValueError(f"event name {old_name!r} is registered; it cannot be an old name")
        known = self._renamed.get(old_name)
        if known is not None and known != new_name:
            raise ValueError(f"event name {old_name!r} is already renamed to {known!r}")
        self._renamed[old_name] = new_name
        self._codec = (self._codec[0], {})

    def schema_version(self, name: str) -> int:
        """The current schema version of the class registered under ``name`` (or the
        one an old name was renamed to); :class:`UnknownEventError` if none is."""
        name = self._renamed.get(name, name)
        self.class_for(name)
        return self._versions[name]

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
            return self._by_name[self._renamed.get(name, name)]
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
        return RawEvent(name, data, dict(metadata or {}), self._versions[name])

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
            entry = decoders.get(name)
            if entry is None:
                cls = self.class_for(name, aggregate_type=aggregate_type)
                try:
                    entry = (_decoder_of(marshaler, cls), self.schema_version(name))
                except Exception as err:
                    raise SerializationError(f"decode event {name}{where}: {err}") from err
                # A registered name keeps its class and version (register refuses to
                # change them), so the entry stays right as long as this marshaler and
                # these upcasters do.
                decoders[name] = entry
            decode, current = entry
            data = raw.data
            if raw.schema_version != current:
                data = self._upcast(marshaler, raw, current, where)
            try:
                event = decode(data)
            except Exception as err:
                raise SerializationError(f"decode event {name}{where}: {err}") from err
            yield event

    def _upcast(self, marshaler: EventMarshaler, raw: RawEvent, current: int, where: str) -> bytes:
        """``raw``'s payload brought from its stored schema version to ``current``
        through the registered steps."""
        name = self._renamed.get(raw.name, raw.name)
        stored = raw.schema_version
        shown = raw.name if name == raw.name else f"{raw.name} (now {name})"
        steps = []
        for version in range(stored, current):
            step = self._upcasters.get((name, version))
            if step is None:
                raise MissingUpcasterError(
                    f"decode event {shown}{where}: stored at schema version {stored}, "
                    f"current version is {current}, and no upcaster goes from version "
                    f"{version} to {version + 1}"
                )
            steps.append(step)
        if not steps:
            raise MissingUpcasterError(
                f"decode event {shown}{where}: stored at schema version {stored}, newer "
                f"than the current version {current}"
            )
        as_json = isinstance(marshaler, JsonMarshaler)
        try:
            payload: Any = json.loads(raw.data) if as_json else raw.data
            for step in steps:
                payload = step(payload)
            if as_json:
                return json.dumps(payload, separators=(",", ":")).encode()
            if not isinstance(payload, bytes):
                raise TypeError(f"an upcaster returned {type(payload).__name__}, not bytes")
            return payload
        except Exception as err:
            raise SerializationError(
                f"upcast event {shown}{where} from schema version {stored} to {current}: {err}"
            ) from err


def _check_personal_data(marshaler: EventMarshaler, cls: type[Any]) -> None:
    """``ValueError`` if ``cls`` has personal data fields ``marshaler`` would write in clear."""
    if not isinstance(marshaler, PersonalDataMarshaler) and marks_personal_data(cls):
        raise ValueError(
            f"{cls.__qualname__} has personal data fields, which "
            f"{type(marshaler).__name__} would store in clear: give the registry a "
            "PersonalDataMarshaler (esrc_core.personal_data)"
        )


def _decoder_of(marshaler: EventMarshaler, cls: type[Any]) -> Callable[[bytes], Any]:
    """``marshaler``'s decoder of ``cls``: its compiled one if it has the capability,
    else a call of its ``unmarshal``."""
    if isinstance(marshaler, CompilesDecoders):
        return marshaler.decoder_for(cls)
    unmarshal = marshaler.unmarshal

    def decode(data: bytes) -> Any:
        return unmarshal(data, cls)

    return decode
