"""Personal data in the web console: a field marked as personal data is shown in clear
only when the console's registry holds the subject's key; a forgotten subject's field
shows the placeholder, and a registry without the key shows the stored ciphertext,
never the plaintext."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

from esrc_core.aggregate import EventRaiserAggregate
from esrc_core.personal_data import FORGOTTEN, MemoryKeyStore, PersonalData, PersonalDataMarshaler
from starlette.testclient import TestClient

from esrc_console import create_app
from esrc_core import EventRegistry, Repository, open_event_store

NAME = "Ada Lovelace of Ockham Park"


@dataclasses.dataclass(frozen=True)
class PatientAdmitted:
    patient_id: str
    name: Annotated[str, PersonalData(subject="patient_id")]


def _registry(keys: MemoryKeyStore) -> EventRegistry:
    registry = EventRegistry(PersonalDataMarshaler(keys))
    registry.register(PatientAdmitted)
    return registry


class Patient(EventRaiserAggregate):
    def __init__(self, patient_id: str, name: str) -> None:
        super().__init__()
        self.raise_event(PatientAdmitted(patient_id, name))

    def on_event(self, event: object) -> None:
        if isinstance(event, PatientAdmitted):
            self.id = event.patient_id


def _payload(client: TestClient, patient: str) -> object:
    document = client.get(f"/api/streams/Patient/s:{patient}").json()
    return document["events"][0]["payload"]


def test_personal_fields_show_only_with_the_subjects_key(unique: str) -> None:
    keys = MemoryKeyStore()
    registry = _registry(keys)
    store = open_event_store(f"memory://console-personal-{unique}")
    patients = Repository(store, Patient, registry)
    patients.add(Patient("p1", NAME))
    patients.add(Patient("p2", NAME))
    keys.forget("p2")

    with_keys = TestClient(create_app(store, registry=registry))
    # Decoded with the registry: the event's repr, the name in clear or forgotten.
    assert _payload(with_keys, "p1") == f"PatientAdmitted(patient_id='p1', name={NAME!r})"
    assert _payload(with_keys, "p2") == f"PatientAdmitted(patient_id='p2', name={FORGOTTEN!r})"
    page = with_keys.get("/streams/Patient/s:p2").text
    assert FORGOTTEN.replace("<", "&lt;").replace(">", "&gt;") in page
    assert NAME not in page

    # A console whose registry lacks the keys shows what is stored: the ciphertext.
    without = TestClient(create_app(store, registry=_registry(MemoryKeyStore())))
    for patient in ("p1", "p2"):
        shown = json.dumps(_payload(without, patient))
        assert NAME not in shown
        assert '"$enc"' in shown
        assert NAME not in without.get(f"/streams/Patient/s:{patient}").text
