"""Crypto-shredding on SQLite, PostgreSQL and MariaDB: the SQL key store, personal data
read back and forgotten, and no stored byte holding the plaintext once forgotten."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest
import sqlalchemy as sa
from esrc_core.errors import (
    SerializationError,
    StoreUnavailableError,
    SubjectForgottenError,
    SubjectKeyMissingError,
)
from esrc_core.events import EventRegistry
from esrc_core.personal_data import FORGOTTEN, PersonalData, PersonalDataMarshaler
from esrc_sqlalchemy.errors import StoreConfigError
from esrc_sqlalchemy.keys import SqlKeyStore
from esrc_sqlalchemy.store import SqlEventStore
from esrc_sqlalchemy.testing import PrefixPool
from esrc_testkit.keys import KeyStoreAcceptance


@dataclass(frozen=True)
class MemberJoined:
    """A member joined; the name and email are the member's personal data."""

    member_id: uuid.UUID
    name: Annotated[str, PersonalData(subject="member_id")]
    email: Annotated[str | None, PersonalData(subject="member_id")] = None
    plan: str = "basic"


@dataclass(frozen=True)
class Setup:
    """A store on its own prefix, a key store beside it and a registry on the key store."""

    store: SqlEventStore
    keys: SqlKeyStore
    registry: EventRegistry
    url: str


@pytest.fixture
def setup(any_pool: PrefixPool) -> Iterator[Setup]:
    """A store and an SQL key store on the same database and table prefix."""
    store = any_pool.open()
    keys = SqlKeyStore(any_pool.url, table_prefix=store.table_prefix)
    registry = EventRegistry(PersonalDataMarshaler(keys))
    registry.register(MemberJoined)
    yield Setup(store, keys, registry, any_pool.url)
    with store.engine.begin() as conn:
        keys.table.drop(conn, checkfirst=True)
    keys.close()
    store.close()


def _join(setup: Setup, name: str, email: str) -> uuid.UUID:
    member = uuid.uuid4()
    raw = setup.registry.to_raw(MemberJoined(member, name, email))
    setup.store.add_aggregate("Member", member, [raw])
    return member


def _read(setup: Setup, member: uuid.UUID) -> MemberJoined:
    (event,) = setup.registry.from_raws(
        setup.store.events("Member", member), aggregate_type="Member"
    )
    assert isinstance(event, MemberJoined)
    return event


def _stored_values(engine: sa.Engine, prefix: str) -> list[bytes]:
    """Every value of every column of every table whose name starts with ``prefix``, as
    bytes (text as UTF-8, anything else by its str)."""
    found: list[bytes] = []
    with engine.connect() as conn:
        names = [n for n in sa.inspect(conn).get_table_names() if n.startswith(prefix)]
        assert names, f"no tables with prefix {prefix!r}"
        for name in names:
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            for row in conn.execute(sa.select(table)):
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        found.append(bytes(value))
                    elif value is not None:
                        found.append(str(value).encode())
    return found


def test_personal_data_round_trips_and_is_stored_encrypted(setup: Setup) -> None:
    """Read back as written; the stored bytes hold neither the name nor the email."""
    name, email = f"Ada {secrets.token_hex(4)}", f"ada{secrets.token_hex(4)}@example.com"
    member = _join(setup, name, email)
    assert _read(setup, member) == MemberJoined(member, name, email)
    (raw,) = setup.store.events("Member", member)
    assert name.encode() not in raw.data
    assert email.encode() not in raw.data
    assert b'"$enc":1' in raw.data


def test_forgotten_subject_reads_as_placeholders_and_no_stored_byte_holds_the_plaintext(
    setup: Setup,
) -> None:
    """After forget: the str field reads ``<forgotten>``, the optional one ``None``, the
    other fields as stored; no value of any table of the prefix (keys included) holds
    the plaintext or the deleted key; a read model rebuilt from the events holds the
    placeholder; other subjects read as before."""
    name, email = f"Grace {secrets.token_hex(4)}", f"grace{secrets.token_hex(4)}@example.com"
    member = _join(setup, name, email)
    other = _join(setup, "Kept Name", "kept@example.com")
    material = setup.keys.key_for(str(member)).material
    setup.keys.forget(str(member))

    assert _read(setup, member) == MemberJoined(member, FORGOTTEN, None)
    assert _read(setup, other).name == "Kept Name"
    read_model: dict[uuid.UUID, str] = {}
    for stream in (member, other):
        for event in setup.registry.from_raws(setup.store.events("Member", stream)):
            read_model[event.member_id] = event.name
    assert read_model == {member: FORGOTTEN, other: "Kept Name"}

    values = _stored_values(setup.store.engine, setup.store.table_prefix)
    for secret in (name.encode(), email.encode(), material):
        leaks = [v[:80] for v in values if secret in v]
        assert not leaks, f"got {leaks!r} holding a forgotten secret, want none"

    if setup.url.startswith("sqlite"):
        setup.store.close()
        setup.keys.close()
        database = Path(setup.url.removeprefix("sqlite:///"))
        files = [p for p in database.parent.iterdir() if p.name.startswith(database.name)]
        assert database in files
        for path in files:  # the database, its -wal and -shm files
            content = path.read_bytes()
            for secret in (name.encode(), email.encode()):
                assert secret not in content, f"{path.name} holds a forgotten plaintext"


def test_forgetting_is_idempotent_and_refuses_new_personal_data(setup: Setup) -> None:
    """Forgetting twice is harmless; a forgotten subject is told from an unknown one and
    gets no new key, so its personal data cannot be written again."""
    member = _join(setup, "Alan", "alan@example.com")
    setup.keys.forget(str(member))
    setup.keys.forget(str(member))
    assert setup.keys.forgotten(str(member))
    assert setup.keys.key(str(member)) is None
    assert not setup.keys.forgotten(str(uuid.uuid4()))
    with pytest.raises(SubjectForgottenError, match=str(member)):
        setup.keys.key_for(str(member))
    with pytest.raises(SerializationError) as caught:
        setup.registry.to_raw(MemberJoined(member, "Alan again"))
    assert isinstance(caught.value.__cause__, SubjectForgottenError)
    never = str(uuid.uuid4())
    setup.keys.forget(never)
    assert setup.keys.forgotten(never)


def test_a_key_store_on_another_prefix_is_a_clear_error(setup: Setup) -> None:
    """Events read with a key store that never had their subjects' keys (another table
    prefix): SubjectKeyMissingError naming the subject and the cause, never a
    placeholder, and no key in the message."""
    member = _join(setup, "Barbara", "barbara@example.com")
    material = setup.keys.key_for(str(member)).material
    with SqlKeyStore(setup.url, table_prefix=f"{setup.store.table_prefix}other_") as wrong:
        try:
            registry = EventRegistry(PersonalDataMarshaler(wrong))
            registry.register(MemberJoined)
            with pytest.raises(SerializationError) as caught:
                registry.from_raws(setup.store.events("Member", member))
            cause = caught.value.__cause__
            assert isinstance(cause, SubjectKeyMissingError)
            assert str(member) in str(cause)
            assert "never had a key" in str(cause)
            assert material.hex() not in str(cause)
            assert repr(material) not in str(cause)
        finally:
            with setup.store.engine.begin() as conn:
                wrong.table.drop(conn, checkfirst=True)


def test_key_reprs_and_errors_carry_no_key(setup: Setup) -> None:
    """A key's repr hides its material; the key store's repr names the table only."""
    key = setup.keys.key_for("someone")
    assert key.material.hex() not in repr(key)
    assert repr(key.material) not in repr(key)
    assert "material=<hidden>" in repr(key)
    assert f"{setup.store.table_prefix}keys" in repr(setup.keys)


def test_bad_table_prefix_and_unreachable_server_are_clear_errors(tmp_path: Path) -> None:
    """A prefix that is not an identifier is refused before connecting; a database that
    cannot be opened is StoreUnavailableError."""
    with pytest.raises(StoreConfigError, match="table_prefix"):
        SqlKeyStore(f"sqlite:///{tmp_path}/k.db", table_prefix="x; drop")
    with pytest.raises(StoreUnavailableError, match="create the keys table"):
        SqlKeyStore(f"sqlite:///{tmp_path}/missing/dir/k.db")


class TestSqlKeyStore(KeyStoreAcceptance):
    """The key store contract, on SQLite, PostgreSQL and MariaDB (a key store opened
    on the URL, with transactions of its own)."""

    @pytest.fixture
    def key_store(self, setup: Setup) -> SqlKeyStore:
        """The SQL key store beside a store."""
        return setup.keys
