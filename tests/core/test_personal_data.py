"""Personal data encrypted per subject (crypto-shredding) with the memory key store:
the stored form, placeholders, tampering, a wrong key store, markers that cannot work,
and repositories that keep working once a subject is forgotten."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest
from esrc_core.errors import (
    SerializationError,
    SubjectForgottenError,
    SubjectKeyMissingError,
    TamperedDataError,
)
from esrc_core.events import EventRegistry, RawEvent
from esrc_core.marshaling import JsonMarshaler
from esrc_core.personal_data import (
    FORGOTTEN,
    DataKey,
    MemoryKeyStore,
    PersonalData,
    PersonalDataMarshaler,
    personal_fields,
)
from esrc_testkit.keys import KeyStoreAcceptance

from esrc_core import EventRaiserAggregate, Relay, RelayEvent, Repository
from esrc_memory import MemoryEventStore, MemoryPublisher


@dataclass(frozen=True)
class Registered:
    """A person registered: every kind of placeholder in one event."""

    person_id: uuid.UUID
    name: Annotated[str, PersonalData(subject="person_id")]
    phone: Annotated[str | None, PersonalData(subject="person_id")] = None
    tags: Annotated[list[str], PersonalData(subject="person_id")] = field(default_factory=list)
    age: Annotated[int, PersonalData(subject="person_id", placeholder=-1)] = 0
    country: str = "NL"


@dataclass(frozen=True)
class Renamed:
    """A subject id that is an int."""

    person: int
    name: Annotated[str, PersonalData(subject="person")]


@pytest.fixture
def keys() -> MemoryKeyStore:
    """An empty memory key store."""
    return MemoryKeyStore()


@pytest.fixture
def registry(keys: MemoryKeyStore) -> EventRegistry:
    """A registry that encrypts personal data with ``keys``."""
    registry = EventRegistry(PersonalDataMarshaler(keys))
    registry.register_all([Registered, Renamed])
    return registry


def _stored(raw: RawEvent) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(raw.data)
    return doc


def test_stored_form_is_a_self_describing_ciphertext(registry: EventRegistry) -> None:
    """Each personal field is {"$enc": 1, "key", "n", "c"} (base64 nonce of 12 bytes,
    ciphertext with its 16-byte tag); None and unmarked fields stay in clear."""
    person = uuid.uuid4()
    raw = registry.to_raw(Registered(person, "Ada Lovelace", None, ["very important"], 36))
    doc = _stored(raw)
    assert doc["person_id"] == str(person)
    assert doc["country"] == "NL"
    assert doc["phone"] is None
    for name in ("name", "tags", "age"):
        envelope = doc[name]
        assert set(envelope) == {"$enc", "key", "n", "c"}
        assert envelope["$enc"] == 1
        assert len(base64.b64decode(envelope["n"])) == 12
        assert len(base64.b64decode(envelope["c"])) > 16
    assert b"Ada Lovelace" not in raw.data
    assert b"very important" not in raw.data
    assert registry.from_raw(raw) == Registered(
        person, "Ada Lovelace", None, ["very important"], 36
    )


def test_forgetting_gives_placeholders(registry: EventRegistry, keys: MemoryKeyStore) -> None:
    """str -> "<forgotten>", optional -> None, a default factory's value, the marker's
    placeholder; unmarked fields and other subjects unchanged; an int subject too."""
    person, other = uuid.uuid4(), uuid.uuid4()
    raws = [
        registry.to_raw(Registered(person, "Ada", "555", ["vip"], 36, "FR")),
        registry.to_raw(Registered(other, "Bob", "556")),
        registry.to_raw(Renamed(7, "Carol")),
    ]
    keys.forget(str(person))
    keys.forget("7")
    got = registry.from_raws(raws)
    assert got == [
        Registered(person, FORGOTTEN, None, [], -1, "FR"),
        Registered(other, "Bob", "556"),
        Renamed(7, FORGOTTEN),
    ]


def test_the_same_value_encrypts_differently_each_time(registry: EventRegistry) -> None:
    """A fresh nonce per field and write: equal plaintexts give unequal ciphertexts."""
    person = uuid.uuid4()
    one = _stored(registry.to_raw(Registered(person, "Ada")))["name"]
    two = _stored(registry.to_raw(Registered(person, "Ada")))["name"]
    assert one["n"] != two["n"]
    assert one["c"] != two["c"]
    assert one["key"] == two["key"]


def _tampered(raw: RawEvent, change: Any) -> RawEvent:
    doc = _stored(raw)
    change(doc)
    return RawEvent(raw.name, json.dumps(doc).encode(), raw.metadata)


def _flip(text: str) -> str:
    data = bytearray(base64.b64decode(text))
    data[0] ^= 1
    return base64.b64encode(bytes(data)).decode()


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("ciphertext", lambda d: d["name"].update(c=_flip(d["name"]["c"]))),
        ("nonce", lambda d: d["name"].update(n=_flip(d["name"]["n"]))),
        ("moved to another field", lambda d: d.update(name=d["age"])),
        ("malformed", lambda d: d["name"].update(c="not base64!")),
        ("another key id", lambda d: d["name"].update(key="0000")),
    ],
)
def test_tampered_ciphertext_is_a_clear_error(
    registry: EventRegistry, what: str, change: Any
) -> None:
    """A changed, moved or malformed ciphertext fails with TamperedDataError naming the
    class, the field and the subject (chained under the registry's SerializationError)."""
    person = uuid.uuid4()
    raw = registry.to_raw(Registered(person, "Ada", age=36))
    with pytest.raises(SerializationError) as caught:
        registry.from_raw(_tampered(raw, change))
    cause = caught.value.__cause__
    assert isinstance(cause, TamperedDataError), f"{what}: got {cause!r}"
    assert "Registered.name" in str(cause)
    assert str(person) in str(cause)


class _SameKey(MemoryKeyStore):
    """A key store that gives some subjects another subject's key."""

    def __init__(self, keys: MemoryKeyStore, aliases: dict[str, str]) -> None:
        super().__init__()
        self.keys = keys
        self.aliases = aliases

    def key(self, subject: str) -> DataKey | None:
        return self.keys.key(self.aliases.get(subject, subject))


def test_ciphertext_moved_to_another_subject_fails(
    registry: EventRegistry, keys: MemoryKeyStore
) -> None:
    """The subject is bound in the associated data: a ciphertext copied into an event of
    another subject (whose key the attacker swapped in) does not decrypt."""
    ada, bob = uuid.uuid4(), uuid.uuid4()
    raw = registry.to_raw(Registered(ada, "Ada"))
    moved = _tampered(raw, lambda d: d.update(person_id=str(bob)))
    shared = EventRegistry(PersonalDataMarshaler(_SameKey(keys, {str(bob): str(ada)})))
    shared.register(Registered)
    with pytest.raises(SerializationError) as caught:
        shared.from_raw(moved)
    assert isinstance(caught.value.__cause__, TamperedDataError)


def test_a_key_store_that_never_had_the_key_is_a_clear_error(registry: EventRegistry) -> None:
    """Reading with another (empty) key store: SubjectKeyMissingError, not a placeholder."""
    person = uuid.uuid4()
    raw = registry.to_raw(Registered(person, "Ada"))
    wrong = EventRegistry(PersonalDataMarshaler(MemoryKeyStore()))
    wrong.register(Registered)
    with pytest.raises(SerializationError) as caught:
        wrong.from_raw(raw)
    cause = caught.value.__cause__
    assert isinstance(cause, SubjectKeyMissingError)
    assert "never had a key" in str(cause)
    assert str(person) in str(cause)


def test_writing_personal_data_of_a_forgotten_subject_is_refused(
    registry: EventRegistry, keys: MemoryKeyStore
) -> None:
    """No new key for a forgotten subject: the write fails, naming the subject."""
    person = uuid.uuid4()
    keys.forget(str(person))
    with pytest.raises(SerializationError) as caught:
        registry.to_raw(Registered(person, "Ada"))
    assert isinstance(caught.value.__cause__, SubjectForgottenError)
    assert str(person) in str(caught.value)


def test_keys_never_show_their_material(keys: MemoryKeyStore) -> None:
    """repr and str of a key hide its material; the key store's repr counts keys."""
    key = keys.key_for("someone")
    for text in (repr(key), str(key), repr(keys), repr(PersonalDataMarshaler(keys))):
        assert key.material.hex() not in text
        assert repr(key.material) not in text
    assert repr(key) == f"DataKey(key_id={key.key_id!r}, material=<hidden>)"
    assert "material" not in [f.name for f in dataclasses.fields(DataKey) if f.repr]


def test_markers_that_cannot_work_are_refused() -> None:
    """A subject field that does not exist, a personal subject field, and a type with no
    placeholder raise TypeError naming the field."""

    @dataclass
    class NoSubject:
        name: Annotated[str, PersonalData(subject="missing")]

    @dataclass
    class PersonalSubject:
        person: Annotated[str, PersonalData(subject="person")]

    @dataclass
    class NoPlaceholder:
        person: str
        born: Annotated[int, PersonalData(subject="person")]

    with pytest.raises(TypeError, match="'missing' does not exist"):
        personal_fields(NoSubject)
    with pytest.raises(TypeError, match="subject field"):
        personal_fields(PersonalSubject)
    with pytest.raises(TypeError, match="no placeholder"):
        personal_fields(NoPlaceholder)


def test_plain_values_written_before_marking_are_read_as_they_are(
    registry: EventRegistry,
) -> None:
    """A field marked after its events were written holds a plain value: read as is."""
    person = uuid.uuid4()
    raw = RawEvent("Registered", json.dumps({"person_id": str(person), "name": "Old"}).encode())
    assert registry.from_raw(raw) == Registered(person, "Old")


def test_upcasters_see_the_stored_ciphertext(keys: MemoryKeyStore) -> None:
    """Upcasting works on the stored dict; an encrypted field it leaves in place
    decrypts at the current version."""
    registry = EventRegistry(PersonalDataMarshaler(keys))
    registry.register(Renamed, version=2)

    @registry.upcaster("Renamed", 1)
    def step(payload: dict[str, Any]) -> dict[str, Any]:
        return {"person": payload.pop("id"), **payload}

    current = registry.to_raw(Renamed(3, "Dora"))
    doc = _stored(current)
    old = RawEvent("Renamed", json.dumps({"id": 3, "name": doc["name"]}).encode(), {}, 1)
    assert registry.from_raw(old) == Renamed(3, "Dora")


class Person(EventRaiserAggregate):
    """An aggregate whose state holds personal data."""

    def __init__(self) -> None:
        super().__init__()
        self.name = ""

    @classmethod
    def register(cls, person_id: uuid.UUID, name: str) -> Person:
        person = cls()
        person.id = person_id
        person.raise_event(Registered(person_id, name))
        return person

    def on_event(self, event: object) -> None:
        if isinstance(event, Registered):
            self.id = event.person_id
            self.name = event.name


def test_a_repository_loads_a_forgotten_subject(
    registry: EventRegistry, keys: MemoryKeyStore
) -> None:
    """Aggregates keep working: a forgotten person loads, with the placeholder name."""
    store = MemoryEventStore()
    people = Repository(store, Person, registry)
    person = uuid.uuid4()
    people.add(Person.register(person, "Ada"))
    assert people.find_by_id(person).name == "Ada"
    keys.forget(str(person))
    assert people.find_by_id(person).name == FORGOTTEN


class TestMemoryKeyStore(KeyStoreAcceptance):
    """The key store contract, on the memory key store."""

    @pytest.fixture
    def key_store(self) -> MemoryKeyStore:
        """An empty memory key store."""
        return MemoryKeyStore()


def test_the_relay_publishes_the_ciphertext(registry: EventRegistry, keys: MemoryKeyStore) -> None:
    """Relayed events carry personal data as stored: encrypted, never the plaintext; a
    consumer with the same key store decodes them, and gets the placeholder once the
    subject is forgotten."""
    store = MemoryEventStore()
    person = uuid.uuid4()
    store.add_aggregate("Person", person, [registry.to_raw(Registered(person, "Ada Lovelace"))])
    publisher = MemoryPublisher()
    received: list[RelayEvent] = []
    publisher.subscribe(received.append)
    assert Relay(store.outbox("broker"), publisher).run_once() == 1
    [relayed] = received
    assert b"Ada Lovelace" not in relayed.event.data
    assert _stored(relayed.event)["name"]["$enc"] == 1
    assert registry.from_raw(relayed.event).name == "Ada Lovelace"
    keys.forget(str(person))
    assert registry.from_raw(relayed.event).name == FORGOTTEN


def test_a_registry_that_would_store_personal_data_in_clear_refuses_it(
    registry: EventRegistry,
) -> None:
    """Registering a class with personal data fields on a plain JSON registry, or
    replacing a registry's PersonalDataMarshaler by a plain one, raises ValueError."""
    plain = EventRegistry()
    with pytest.raises(ValueError, match="Registered has personal data fields"):
        plain.register(Registered)
    assert "Registered" not in plain.names
    with pytest.raises(ValueError, match="would store in clear"):
        registry.marshaler = JsonMarshaler()
    assert isinstance(registry.marshaler, PersonalDataMarshaler)
