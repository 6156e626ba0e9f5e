"""The financing example's upcast event: ``IssuerSuspended`` is at schema version 2
(version 1 named its field ``why``). An issuer whose suspension was stored in the
version 1 form, in a SQL store, loads with the reason, and new suspensions are
written at version 2."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from financing.commands import Commands
from financing.events import IssuerRegistered, IssuerSuspended, registry

from esrc_core import RawEvent
from esrc_sqlalchemy import SqlEventStore


def test_a_version_1_suspension_loads_as_version_2(tmp_path: Path) -> None:
    store = SqlEventStore(f"sqlite:///{tmp_path / 'financing.db'}")
    try:
        commands = Commands(store)
        old_id, new_id = uuid.uuid4(), uuid.uuid4()
        registered = registry.to_raw(IssuerRegistered(old_id, "Old Mill Ltd"))
        stored_v1 = RawEvent("IssuerSuspended", json.dumps({"why": "late filings"}).encode())
        store.add_aggregate("Issuer", old_id, [registered, stored_v1])
        assert store.events("Issuer", old_id)[1].schema_version == 1
        issuer = commands.issuers.find_by_id(old_id)
        assert (issuer.active, issuer.suspended_because) == (False, "late filings")
        assert registry.from_raw(store.events("Issuer", old_id)[1]) == IssuerSuspended(
            "late filings"
        )
        commands.register_issuer("New Mill Ltd", issuer_id=new_id)
        commands.suspend_issuer(new_id, "unpaid fees")
        written = store.events("Issuer", new_id)[-1]
        assert (written.schema_version, json.loads(written.data)) == (
            2,
            {"reason": "unpaid fees"},
        )
        assert commands.issuers.find_by_id(new_id).suspended_because == "unpaid fees"
    finally:
        store.close()
