"""Acceptance tests of key stores for personal data (:class:`esrc_core.personal_data.KeyStore`):
the memory and SQL ones, and a KMS someone plugs in."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Annotated

import pytest
from esrc_core.errors import SubjectForgottenError
from esrc_core.events import EventRegistry
from esrc_core.personal_data import (
    FORGOTTEN,
    DataKey,
    KeyStore,
    PersonalData,
    PersonalDataMarshaler,
)

from esrc_testkit.races import run_in_threads

__all__ = ["KeyStoreAcceptance"]


@dataclass(frozen=True)
class _Noted:
    subject_id: str
    note: Annotated[str, PersonalData(subject="subject_id")]


class KeyStoreAcceptance:
    """The :class:`~esrc_core.personal_data.KeyStore` contract. Subclass it and give it
    a ``key_store`` fixture (a new or empty key store; subjects are random, so a shared
    one works too)::

        class TestMyKeys(KeyStoreAcceptance):
            @pytest.fixture
            def key_store(self) -> Iterator[KeyStore]:
                yield MyKms(...)
    """

    @staticmethod
    def subject() -> str:
        """A subject id no other test uses."""
        return str(uuid.uuid4())

    def test_key_for_creates_one_key_per_subject(self, key_store: KeyStore) -> None:
        """key_for creates a 32-byte key on first use and returns the same one after;
        key returns it; subjects have keys of their own."""
        one, two = self.subject(), self.subject()
        assert key_store.key(one) is None, "a subject had a key before key_for"
        assert key_store.forgotten(one) is False
        key = key_store.key_for(one)
        assert isinstance(key, DataKey)
        assert len(key.material) == 32, f"got a {len(key.material)}-byte key, want 32"
        assert key_store.key_for(one) == key, "key_for gave another key the second time"
        assert key_store.key(one) == key
        other = key_store.key_for(two)
        assert other.material != key.material
        assert other.key_id != key.key_id

    def test_forget_deletes_the_key_and_is_remembered(self, key_store: KeyStore) -> None:
        """After forget: key is None, forgotten is True, key_for raises
        SubjectForgottenError; forgetting again, or a subject with no key, is harmless;
        other subjects keep their keys."""
        gone, kept, never = self.subject(), self.subject(), self.subject()
        key_store.key_for(gone)
        kept_key = key_store.key_for(kept)
        key_store.forget(gone)
        key_store.forget(gone)
        assert key_store.key(gone) is None, "a forgotten subject still has a key"
        assert key_store.forgotten(gone) is True
        with pytest.raises(SubjectForgottenError):
            key_store.key_for(gone)
        assert key_store.key(kept) == kept_key
        assert key_store.forgotten(kept) is False
        key_store.forget(never)
        assert key_store.forgotten(never) is True
        with pytest.raises(SubjectForgottenError):
            key_store.key_for(never)

    def test_concurrent_first_uses_get_one_key(self, key_store: KeyStore) -> None:
        """Eight threads asking for a new subject's key at once all get the same key."""
        subject = self.subject()
        barrier = threading.Barrier(8)

        def take(_: int) -> DataKey:
            barrier.wait()
            return key_store.key_for(subject)

        got = run_in_threads(8, take, barrier=barrier)
        assert len({(k.key_id, k.material) for k in got}) == 1, "threads got different keys"

    def test_no_key_material_in_reprs(self, key_store: KeyStore) -> None:
        """Neither the key store's repr nor a key's shows key material."""
        key = key_store.key_for(self.subject())
        for text in (repr(key_store), str(key_store), repr(key), str(key)):
            assert key.material.hex() not in text
            assert repr(key.material) not in text

    def test_personal_data_round_trip_then_placeholder(self, key_store: KeyStore) -> None:
        """Through a PersonalDataMarshaler: written encrypted, read back, and read as the
        placeholder once the subject is forgotten."""
        registry = EventRegistry(PersonalDataMarshaler(key_store))
        registry.register(_Noted)
        subject = self.subject()
        raw = registry.to_raw(_Noted(subject, "a private note"))
        assert b"a private note" not in raw.data
        assert registry.from_raw(raw) == _Noted(subject, "a private note")
        key_store.forget(subject)
        assert registry.from_raw(raw) == _Noted(subject, FORGOTTEN)
