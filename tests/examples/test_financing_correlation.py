"""Correlation and causation through a real relay: the financing choreography on a SQL
store (SQLite, PostgreSQL, MariaDB), relayed through NATS JetStream, so the ids travel
in the broker's headers before the process manager's steps store the events they cause.
From each command to the last event it caused, every event shares the command's
correlation id, and each ``causation_id`` names a stored event that precedes it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from esrc_core.correlation import CAUSATION_ID, CORRELATION_ID
from esrc_core.inspection import correlated_events
from financing.brokers import reset_broker
from financing.commands import Commands
from financing.pipeline import Pipeline
from financing.process import FinancingProcess

from esrc_core import HasOutbox, RelayEvent
from esrc_sqlalchemy import SqlEventStore


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=[pytest.mark.sqlite, pytest.mark.nats]),
        pytest.param("postgresql", marks=[pytest.mark.postgresql, pytest.mark.nats]),
        pytest.param("mysql", marks=[pytest.mark.mysql, pytest.mark.nats]),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> Iterator[SqlEventStore]:
    """An empty store with tables of this test, in an SQLite file, on PostgreSQL or
    on MariaDB/MySQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
    else:
        url = request.getfixturevalue(f"{request.param}_url")
    made = SqlEventStore(url, table_prefix=f"{name}_")
    yield made
    made.tables.metadata.drop_all(made.engine)
    made.close()


def _chain(last: RelayEvent, by_message: dict[str, RelayEvent]) -> list[RelayEvent]:
    """``last``, its cause, that event's cause, ... up to an event nobody caused;
    each cause must be stored before what it caused."""
    walked = [last]
    while CAUSATION_ID in walked[-1].event.metadata:
        cause_id = walked[-1].event.metadata[CAUSATION_ID]
        assert cause_id in by_message, f"{walked[-1].message_id}: no stored event {cause_id}"
        cause = by_message[cause_id]
        assert cause.position < walked[-1].position, (cause.message_id, walked[-1].message_id)
        walked.append(cause)
    return walked


def test_each_command_correlates_the_events_the_choreography_caused(
    store: SqlEventStore, nats_url: str, name: str
) -> None:
    commands = Commands(store)
    process = FinancingProcess(commands)
    pipeline = Pipeline(
        store, nats_url, {"process": process.projection}, name=name, relay_name="process"
    )
    try:
        issuer = commands.register_issuer("Acme")
        invoice = commands.put_invoice_for_sale(issuer, "A-1", "1000", "900")
        ada, ben = commands.register_investor("Ada"), commands.register_investor("Ben")
        commands.deposit(ada, "5000")
        commands.deposit(ben, "5000")
        commands.place_bid(ada, invoice, "950")  # accepted, then the funds committed
        commands.place_bid(ben, invoice, "990")  # rejected (sold), then released
        pipeline.settle()
    finally:
        pipeline.close()
        reset_broker(nats_url, name, ["process"])

    assert isinstance(store, HasOutbox)
    events = store.outbox(f"check-{uuid.uuid4().hex}").unpublished_events(10_000)
    by_message = {e.message_id: e for e in events}
    assert all(e.event.metadata.get(CORRELATION_ID) for e in events)
    placed = [e for e in events if e.event.name == "BidPlaced"]
    assert [e.aggregate_id for e in placed] == [ada, ben]
    ends = {str(ada): "FundsCommitted", str(ben): "ReservedFundsReleased"}
    for start in placed:
        correlation_id = start.event.metadata[CORRELATION_ID]
        assert CAUSATION_ID not in start.event.metadata  # a command no event caused
        same = [e for e in events if e.event.metadata[CORRELATION_ID] == correlation_id]
        assert same[0] is start
        assert [e.event.name for e in same] == [
            "BidPlaced",
            "BidAccepted" if start.aggregate_id == ada else "BidRejected",
            ends[str(start.aggregate_id)],
        ]
        walked = _chain(same[-1], by_message)
        assert walked == same[::-1]  # the last event leads back to the command's
        listed = correlated_events(store, correlation_id, page=2)
        assert [(e.aggregate_type, e.aggregate_id, e.version) for e in listed] == [
            (e.aggregate_type, e.aggregate_id, e.version) for e in same
        ]
    bids = {e.event.metadata[CORRELATION_ID] for e in placed}
    assert len(bids) == 2
    others = [e.event.metadata[CORRELATION_ID] for e in events]
    others = [c for c in others if c not in bids]
    assert len(set(others)) == len(others) == 6  # each other command: one of its own
    for event in events:  # and every cause anywhere is an earlier event
        _chain(event, by_message)
