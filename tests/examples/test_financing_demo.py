"""End to end: the demo's scenario on SQLite with the in-process publisher, on
PostgreSQL through RabbitMQ, NATS JetStream and Redis Streams, and on a JetStream store
replicated on a three-node cluster. After each run the read
models must equal what the events in the store add up to, computed here from the raw
events, independently of the application's code."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from financing.brokers import reset_broker
from financing.cli import main
from financing.demo import DemoConfig, DemoResult, run_demo
from financing.read_models import ReadModels

from esrc_core import EventStore, HasOutbox, open_event_store
from esrc_sqlalchemy import SqlEventStore

ZERO = Decimal("0.00")
BROKER_URLS = {"rabbitmq": "amqp_url", "nats": "nats_url", "redis": "redis_url"}
"""The fixture that gives each broker's URL."""


@dataclass
class Expected:
    """Balances and invoice statuses added up from the raw events in a store."""

    balances: dict[uuid.UUID, tuple[Decimal, Decimal, Decimal]]
    """investor id -> (available, reserved, committed)"""
    invoices: dict[uuid.UUID, tuple[str, uuid.UUID | None, Decimal | None]]
    """invoice id -> (status, financing investor, financed amount)"""
    events: int


def expected_from(store: EventStore) -> Expected:
    """Fold every event of ``store``, read in the relay's order through an outbox of
    its own, decoding the JSON payloads directly."""
    assert isinstance(store, HasOutbox)
    events = store.outbox(f"check-{uuid.uuid4().hex}").unpublished_events(100_000)
    money: dict[uuid.UUID, list[Decimal]] = {}
    invoices: dict[uuid.UUID, tuple[str, uuid.UUID | None, Decimal | None]] = {}
    moves = {  # event -> (from, to) among available (0), reserved (1), committed (2)
        "BidPlaced": (0, 1),
        "FundsCommitted": (1, 2),
        "ReservedFundsReleased": (1, 0),
        "CommittedFundsReturned": (2, 0),
    }
    for relayed in events:
        name, data = relayed.event.name, json.loads(relayed.event.data)
        key = relayed.aggregate_id
        assert isinstance(key, uuid.UUID)
        if name == "InvestorRegistered":
            money[key] = [ZERO, ZERO, ZERO]
        elif name == "FundsDeposited":
            money[key][0] += Decimal(data["amount"])
        elif name in moves:
            source, target = moves[name]
            money[key][source] -= Decimal(data["amount"])
            money[key][target] += Decimal(data["amount"])
        elif name in ("InvoicePutForSale", "FinancingReversed"):
            invoices[key] = ("for sale", None, None)
        elif name == "BidAccepted":
            investor = uuid.UUID(data["investor_id"])
            invoices[key] = ("financed", investor, Decimal(data["amount"]))
    balances = {k: (v[0], v[1], v[2]) for k, v in money.items()}
    return Expected(balances, invoices, len(events))


def assert_read_models_match(
    store: EventStore, read_models: ReadModels, result: DemoResult
) -> None:
    """The read models equal the fold of the store's events, the demo found no
    difference itself, and the scenario ended where it should."""
    want = expected_from(store)
    got_balances = {
        v.investor_id: (v.available, v.reserved, v.committed) for v in read_models.investors()
    }
    got_invoices = {
        v.invoice_id: (v.status, v.investor_id, v.financed_amount) for v in read_models.invoices()
    }
    assert got_balances == want.balances
    assert got_invoices == want.invoices
    # The withdrawn invoice's two events were relayed and applied, then deleted.
    assert result.deleted == 2
    assert read_models.applied_messages() == want.events + result.deleted
    assert result.mismatches == []
    # Every event was relayed once by the main relay, every bid was decided and settled.
    assert result.relayed == want.events + result.deleted
    assert all(reserved == ZERO for _, reserved, _ in want.balances.values())
    deposits = {"Ada": Decimal(60000), "Ben": Decimal(40000), "Cleo": Decimal(50000)}
    for investor, deposit in deposits.items():
        assert sum(want.balances[result.investors[investor]]) == deposit
    # The scripted outcomes: one reversal, Ben finances ACME-1001, Cleo runs out of
    # funds after three of her four racing bids, one of Ada and Ben wins ACME-1002.
    assert want.invoices[result.invoices["ACME-1001"]][:2] == ("financed", result.investors["Ben"])
    assert want.invoices[result.invoices["BORE-2001"]] == ("for sale", None, None)
    cleo = result.investors["Cleo"]
    assert want.balances[cleo] == (Decimal("5000.00"), ZERO, Decimal("45000.00"))
    assert len(result.refused) == 1
    assert "only 5,000.00 is available" in result.refused[0]
    assert want.invoices[result.invoices["ACME-1002"]][1] in (
        result.investors["Ada"],
        result.investors["Ben"],
    )
    assert result.conflicts >= 3  # four threads saved at one version of Cleo


@pytest.mark.sqlite
@pytest.mark.memory
def test_demo_on_sqlite_with_the_in_process_publisher(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(DemoConfig(workdir=tmp_path / "demo"), out=lines.append)
    assert sorted(p.name for p in (tmp_path / "demo").glob("*.db")) == [
        "events.db",
        "read-models.db",
    ]
    store = open_event_store(
        f"sqlite:///{tmp_path / 'demo' / 'events.db'}", table_prefix="financing_"
    )
    read_models = ReadModels(f"sqlite:///{tmp_path / 'demo' / 'read-models.db'}")
    try:
        assert_read_models_match(store, read_models, result)
    finally:
        read_models.close()
        store.close()
    text = "\n".join(lines)
    for heading in ("Event store: 13 streams", "Read model: investors", "Read model: invoices"):
        assert heading in text
    assert "Read models match the aggregates loaded from the event store" in text
    events_db = tmp_path / "demo" / "events.db"
    assert lines[-2] == (
        f"  esrc console sqlite:///{events_db} -o table_prefix=financing_ "
        "--registry financing.events:registry"
    )


@pytest.mark.sqlite
def test_the_default_sqlite_files_are_recreated_on_every_run(tmp_path: Path) -> None:
    config = DemoConfig(workdir=tmp_path)
    run_demo(config, out=lambda _: None)
    second = run_demo(config, out=lambda _: None)
    read_models = ReadModels(f"sqlite:///{tmp_path / 'read-models.db'}")
    try:
        assert {v.investor_id for v in read_models.investors()} == set(second.investors.values())
    finally:
        read_models.close()


@pytest.mark.nats
def test_demo_on_a_jetstream_store_on_three_nodes(shared_cluster: Any, tmp_path: Path) -> None:
    """Units of work, deletion, the races and the relay on R3 streams: the demo's
    events go to a stream of their own, the read models to SQLite."""
    name = f"fin{uuid.uuid4().hex[:8]}"
    config = DemoConfig(store_url=shared_cluster.url, name=name, fresh=True, workdir=tmp_path)
    lines: list[str] = []
    result = run_demo(config, out=lines.append)
    store = open_event_store(shared_cluster.url, stream=name, prefix=name)
    read_models = ReadModels(f"sqlite:///{tmp_path / 'read-models.db'}", table_prefix=f"{name}_rm_")
    try:
        assert store.replicas == 3  # type: ignore[attr-defined]
        assert_read_models_match(store, read_models, result)
    finally:
        read_models.close()
        store.close()
    text = "\n".join(lines)
    assert "Event store: 13 streams" in text
    assert "Read models match the aggregates loaded from the event store" in text
    assert f"-o stream={name} -o prefix={name}" in lines[-2]


@pytest.fixture
def server_demo(name: str, postgresql_url: str) -> Iterator[DemoConfig]:
    """A config on PostgreSQL with tables and broker names of this test; everything it
    creates is dropped afterwards."""
    config = DemoConfig(store_url=postgresql_url, name=name, fresh=True)
    yield config
    store = SqlEventStore(postgresql_url, table_prefix=f"{name}_")
    store.tables.metadata.drop_all(store.engine)
    store.close()
    read_models = ReadModels(postgresql_url, table_prefix=f"{name}_rm_")
    read_models.drop()
    read_models.close()


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("rabbitmq", marks=[pytest.mark.postgresql, pytest.mark.rabbitmq]),
        pytest.param("nats", marks=[pytest.mark.postgresql, pytest.mark.nats]),
        pytest.param("redis", marks=[pytest.mark.postgresql, pytest.mark.redis]),
    ],
)
def test_demo_on_postgresql_through_a_broker(
    server_demo: DemoConfig, broker: str, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue(BROKER_URLS[broker])
    config = DemoConfig(
        store_url=server_demo.store_url,
        publisher_url=url,
        name=server_demo.name,
        fresh=True,
    )
    try:
        result = run_demo(config, out=lambda _: None)
        assert config.store_url is not None
        store = SqlEventStore(config.store_url, table_prefix=f"{config.name}_")
        read_models = ReadModels(config.store_url, table_prefix=f"{config.name}_rm_")
        try:
            assert_read_models_match(store, read_models, result)
        finally:
            read_models.close()
            store.close()
    finally:
        reset_broker(url, config.name, ["process", "read-models"])


@pytest.mark.sqlite
def test_cli_demo_prints_the_tables_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Relay 'financing' -> memory://: published 46 events" in out
    assert "investor     available  reserved  committed      total" in out


def test_cli_reports_errors_on_one_line_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["demo", "--workdir", str(tmp_path), "--publisher", "kafka://user:s3cret@host:9092"]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith(
        "esrc-financing demo: no installed publisher backend handles 'kafka://user:***@host:9092'"
    )
    assert "s3cret" not in err
    assert err.count("\n") == 1
