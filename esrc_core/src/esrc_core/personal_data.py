"""Personal data encrypted per data subject, and forgotten by deleting the subject's key
(crypto-shredding).

Mark a field of a dataclass event with :class:`PersonalData`, naming the field that
holds the data subject's id::

    @dataclass(frozen=True)
    class InvestorRegistered:
        investor_id: uuid.UUID
        name: Annotated[str, PersonalData(subject="investor_id")]

and give the event registry a :class:`PersonalDataMarshaler` on a :class:`KeyStore`.
On write, each marked field's JSON value is encrypted with AES-256-GCM under the
subject's key and stored as a self-describing object::

    {"$enc": 1, "key": "<key id>", "n": "<nonce, base64>", "c": "<ciphertext, base64>"}

The associated data binds the ciphertext to the format version, the key id, the
subject id and the field name, so a ciphertext moved to another field or event of
another subject fails authentication (:class:`~esrc_core.errors.TamperedDataError`).
:meth:`KeyStore.forget` deletes the subject's key: from then on, reading yields the
field's placeholder (:func:`placeholder_of`), never an error and never the plaintext.

The cipher comes from the ``cryptography`` package (``pip install
'esrc-core[personal-data]'``), imported when a marshaler is created.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import secrets
import threading
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from esrc_core.errors import (
    BackendUnavailableError,
    PersonalDataError,
    SubjectForgottenError,
    SubjectKeyMissingError,
    TamperedDataError,
)
from esrc_core.marshaling import JsonMarshaler, _to_json

__all__ = [
    "FORGOTTEN",
    "DataKey",
    "KeyStore",
    "MemoryKeyStore",
    "PersonalData",
    "PersonalDataMarshaler",
    "PersonalField",
    "marks_personal_data",
    "new_data_key",
    "personal_fields",
    "placeholder_of",
]

T = TypeVar("T")

FORGOTTEN = "<forgotten>"
"""The placeholder of a forgotten ``str`` field."""

ENVELOPE_VERSION = 1
"""The version of the stored ciphertext form (its ``"$enc"`` member)."""

_NONE: Any = object()


@dataclass(frozen=True, slots=True)
class PersonalData:
    """Marks a dataclass field as personal data of the subject whose id is in the
    field named ``subject`` (in ``Annotated[type, PersonalData(subject=...)]``).

    ``placeholder`` is the value read once the subject is forgotten; without it, see
    :func:`placeholder_of`. The subject field itself is stored in clear.
    """

    subject: str
    placeholder: Any = _NONE


@dataclass(frozen=True, slots=True)
class DataKey:
    """A subject's data key: ``key_id`` (stored with each ciphertext, not secret) and
    32 bytes of key ``material``, which never appear in a repr, a message or a log."""

    key_id: str
    material: bytes = dataclasses.field(repr=False)

    def __repr__(self) -> str:
        return f"DataKey(key_id={self.key_id!r}, material=<hidden>)"

    __str__ = __repr__


@runtime_checkable
class KeyStore(Protocol):
    """Where data subjects' keys live: in memory for tests (:class:`MemoryKeyStore`),
    a table (``esrc_sqlalchemy.keys.SqlKeyStore``), or a KMS behind these methods.

    Subject ids are strings (a UUID in its canonical form, an int in decimal).
    Implementations must be safe to call from many threads, must never log, print or
    put key material in an error, and must tell a forgotten subject from one that
    never had a key.
    """

    def key_for(self, subject: str) -> DataKey:
        """The subject's key, created on first use (concurrent first uses get the same
        key). Raises :class:`~esrc_core.errors.SubjectForgottenError` if the subject
        was forgotten."""
        ...

    def key(self, subject: str) -> DataKey | None:
        """The subject's key, or ``None`` if it was forgotten or never had one."""
        ...

    def forgotten(self, subject: str) -> bool:
        """Whether :meth:`forget` was called for the subject."""
        ...

    def forget(self, subject: str) -> None:
        """Delete the subject's key for good, and remember that the subject was
        forgotten (so :meth:`key_for` refuses it). Forgetting twice, or a subject that
        never had a key, is harmless."""
        ...


class MemoryKeyStore:
    """A :class:`KeyStore` in a dict: for tests and examples (keys die with the
    process). Thread-safe."""

    def __init__(self) -> None:
        self._keys: dict[str, DataKey] = {}
        self._forgotten: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryKeyStore({len(self._keys)} keys, {len(self._forgotten)} forgotten)"

    def key_for(self, subject: str) -> DataKey:
        """See :meth:`KeyStore.key_for`."""
        with self._lock:
            if subject in self._forgotten:
                raise SubjectForgottenError(f"data subject {subject!r} was forgotten")
            key = self._keys.get(subject)
            if key is None:
                key = self._keys[subject] = new_data_key()
            return key

    def key(self, subject: str) -> DataKey | None:
        """See :meth:`KeyStore.key`."""
        with self._lock:
            return self._keys.get(subject)

    def forgotten(self, subject: str) -> bool:
        """See :meth:`KeyStore.forgotten`."""
        with self._lock:
            return subject in self._forgotten

    def forget(self, subject: str) -> None:
        """See :meth:`KeyStore.forget`."""
        with self._lock:
            self._keys.pop(subject, None)
            self._forgotten.add(subject)


def new_data_key() -> DataKey:
    """A fresh random 256-bit key with a random key id."""
    return DataKey(secrets.token_hex(8), secrets.token_bytes(32))


@dataclass(frozen=True, slots=True)
class PersonalField:
    """One personal data field of a class, as :func:`personal_fields` finds it."""

    name: str
    subject: str
    placeholder: Any
    """The JSON value read for the field once its subject is forgotten."""


def placeholder_of(hint: Any, field: dataclasses.Field[Any], marker: PersonalData) -> Any:
    """The value a personal field reads as once its subject is forgotten: the marker's
    ``placeholder`` if given; else :data:`FORGOTTEN` (``"<forgotten>"``) for ``str``;
    ``None`` for an optional field; the field's default (or its default factory's
    value); an empty value for ``bytes``, ``list``, ``tuple``, ``set``, ``frozenset``
    and ``dict``. Any other type (a number, a date...) raises ``TypeError``, when the
    class is first written or read: there is no honest placeholder for it, so give
    one."""
    if marker.placeholder is not _NONE:
        return marker.placeholder
    origin = typing.get_origin(hint) or hint
    if hint is str:
        return FORGOTTEN
    if origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint):
        return None
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    empty = {bytes: b"", list: [], tuple: (), set: set(), frozenset: frozenset(), dict: {}}
    if origin in empty:
        return empty[origin]
    raise TypeError(
        f"personal data field {field.name!r} of type {hint!r} has no placeholder for a "
        "forgotten subject: make it optional, give it a default, or pass "
        "PersonalData(subject=..., placeholder=...)"
    )


def personal_fields(cls: type[Any]) -> tuple[PersonalField, ...]:
    """The personal data fields of dataclass ``cls`` (empty for any other class),
    worked out once per class.

    Raises ``TypeError`` for a marker whose subject field does not exist or is itself
    personal data, and for a field without a placeholder (see :func:`placeholder_of`).
    """
    found: tuple[PersonalField, ...] = _personal_fields(typing.cast(Any, cls))
    return found


@functools.lru_cache(maxsize=1024)
def _personal_fields(cls: Any) -> tuple[PersonalField, ...]:
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return ()
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    found = []
    for name, field in fields.items():
        hint = hints.get(name)
        if typing.get_origin(hint) is not typing.Annotated:
            continue
        markers = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, PersonalData)]
        if not markers:
            continue
        marker = markers[0]
        where = f"{cls.__qualname__}.{name}"
        if marker.subject not in fields:
            raise TypeError(f"{where}: its subject field {marker.subject!r} does not exist")
        bare = typing.get_args(hint)[0]
        placeholder = placeholder_of(bare, field, marker)
        found.append(PersonalField(name, marker.subject, _to_json(placeholder, where)))
    subjects = {f.subject for f in found}
    for f in found:
        if f.name in subjects:
            raise TypeError(
                f"{cls.__qualname__}.{f.name} is personal data and a subject field; "
                "a subject id is stored in clear"
            )
    return tuple(found)


def marks_personal_data(cls: type[Any]) -> bool:
    """Whether dataclass ``cls`` has a field marked :class:`PersonalData`; ``False``
    when its annotations do not resolve yet (they are checked again on first write)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return False
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:
        return False
    return any(
        isinstance(marker, PersonalData)
        for hint in hints.values()
        for marker in getattr(hint, "__metadata__", ())
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _subject_id(value: Any) -> str:
    # The subject field's JSON value: a UUID or str as it is, an int in decimal.
    return value if isinstance(value, str) else json.dumps(value)


def _associated_data(key_id: str, subject: str, field: str) -> bytes:
    return json.dumps(
        ["esrc-personal-data", ENVELOPE_VERSION, key_id, subject, field], separators=(",", ":")
    ).encode()


class PersonalDataMarshaler(JsonMarshaler):
    """A :class:`~esrc_core.marshaling.JsonMarshaler` that encrypts the
    :class:`PersonalData` fields of dataclasses per data subject with keys from
    ``keys`` on write, and decrypts them on read.

    Reading a field whose subject was forgotten gives its placeholder. Errors, all
    :class:`~esrc_core.errors.PersonalDataError` (a
    :class:`~esrc_core.errors.SerializationError`; the registry chains them as the
    cause of its own): :class:`~esrc_core.errors.TamperedDataError` for a ciphertext
    that fails authentication, :class:`~esrc_core.errors.SubjectKeyMissingError` for a
    subject ``keys`` never had a key for, :class:`~esrc_core.errors.SubjectForgottenError`
    for writing personal data of a forgotten subject. A marked field that holds a plain
    value (written before the field was marked) is read as it is; ``None`` is stored in
    clear. Thread-safe when ``keys`` is.
    """

    def __init__(self, keys: KeyStore, *, use_msgspec: bool = True) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as err:
            raise BackendUnavailableError(
                "personal data needs the cryptography package: "
                "pip install 'esrc-core[personal-data]'"
            ) from err
        super().__init__(use_msgspec=use_msgspec)
        self._aead: Callable[[bytes], Any] = AESGCM
        self._keys = keys

    def __repr__(self) -> str:
        return f"PersonalDataMarshaler({type(self._keys).__name__})"

    @property
    def keys(self) -> KeyStore:
        """The key store."""
        return self._keys

    def marshal(self, event: object) -> bytes:
        """Encode ``event`` as JSON with its personal data fields encrypted."""
        data = super().marshal(event)
        fields = personal_fields(type(event))
        if not fields:
            return data
        doc = json.loads(data)
        for field in fields:
            value = doc.get(field.name)
            if value is None:
                continue
            subject_value = doc.get(field.subject)
            where = f"{type(event).__qualname__}.{field.name}"
            if subject_value is None:
                raise PersonalDataError(f"encrypt {where}: its subject {field.subject} is None")
            subject = _subject_id(subject_value)
            try:
                key = self._keys.key_for(subject)
            except SubjectForgottenError as err:
                raise SubjectForgottenError(
                    f"encrypt {where}: data subject {subject!r} was forgotten"
                ) from err
            nonce = secrets.token_bytes(12)
            plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
            aad = _associated_data(key.key_id, subject, field.name)
            sealed = self._aead(key.material).encrypt(nonce, plain, aad)
            doc[field.name] = {
                "$enc": ENVELOPE_VERSION,
                "key": key.key_id,
                "n": _b64(nonce),
                "c": _b64(sealed),
            }
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    def unmarshal(self, data: bytes, cls: type[T]) -> T:
        """Decode JSON bytes into ``cls``, decrypting its personal data fields (or
        putting their placeholders in for forgotten subjects)."""
        fields = personal_fields(cls)
        if fields:
            data = self._open(data, cls, fields)
        return super().unmarshal(data, cls)

    def _open(self, data: bytes, cls: type[Any], fields: tuple[PersonalField, ...]) -> bytes:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            return data
        changed = False
        for field in fields:
            envelope = doc.get(field.name)
            if not (isinstance(envelope, dict) and "$enc" in envelope):
                continue
            doc[field.name] = self._decrypt(envelope, doc.get(field.subject), cls, field)
            changed = True
        if not changed:
            return data
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    def _decrypt(
        self, envelope: dict[str, Any], subject_value: Any, cls: type[Any], field: PersonalField
    ) -> Any:
        where = f"{cls.__qualname__}.{field.name}"
        subject = _subject_id(subject_value)
        of = f"decrypt {where} of data subject {subject!r}"
        if envelope.get("$enc") != ENVELOPE_VERSION:
            raise PersonalDataError(
                f"{of}: unknown ciphertext format {envelope.get('$enc')!r} "
                f"(this version reads {ENVELOPE_VERSION})"
            )
        key = self._keys.key(subject)
        if key is None:
            if self._keys.forgotten(subject):
                return field.placeholder
            raise SubjectKeyMissingError(
                f"{of}: the key store {type(self._keys).__name__} never had a key for this "
                "subject; is it the key store (database, table prefix) the events were "
                "written with?"
            )
        key_id = envelope.get("key")
        if key_id != key.key_id:
            raise TamperedDataError(
                f"{of}: the ciphertext names key {key_id!r}, the subject's key is {key.key_id!r}"
            )
        try:
            nonce = base64.b64decode(envelope["n"], validate=True)
            sealed = base64.b64decode(envelope["c"], validate=True)
            aad = _associated_data(key.key_id, subject, field.name)
            plain = self._aead(key.material).decrypt(nonce, sealed, aad)
            return json.loads(plain)
        except (KeyError, TypeError, ValueError, binascii.Error) as err:
            raise TamperedDataError(f"{of}: malformed ciphertext ({type(err).__name__})") from None
        except Exception as err:  # cryptography's InvalidTag: no message of its own
            raise TamperedDataError(
                f"{of}: the ciphertext fails authentication (changed, moved from another "
                "field or subject, or written with another key)"
            ) from err
