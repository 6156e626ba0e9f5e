"""The web console's pages, through Starlette's test client, on memory, SQLite,
PostgreSQL and MariaDB: the streams list (filter, search, count, keyset paging), one
stream (events, payloads, snapshots, paging), one event with its causation chain, the
relays page and the JSON API, and the answers to unknown or malformed addresses."""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from esrc_core.relay import HasOutbox, message_id
from starlette.testclient import TestClient

from esrc_console import create_app
from esrc_core import (
    EventRegistry,
    EventStore,
    HasRelayLock,
    Inspectable,
    RawEvent,
    RawSnapshot,
    encode_id,
)
from tests.console.stores import BACKENDS, Page, close_console_store, open_console_store

MARKS = {
    "memory": pytest.mark.memory,
    "sqlite": pytest.mark.sqlite,
    "postgresql": pytest.mark.postgresql,
    "mariadb": pytest.mark.mysql,
}


@pytest.fixture(params=[pytest.param(b, marks=MARKS[b]) for b in BACKENDS])
def store(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[EventStore]:
    """An empty store on each backend, dropped at the end."""
    opened, url, prefix = open_console_store(request.param, request, tmp_path, unique)
    try:
        yield opened
    finally:
        close_console_store(opened, url, prefix)


def _client(store: EventStore, **options: object) -> TestClient:
    return TestClient(create_app(store, **options), follow_redirects=False)  # type: ignore[arg-type]


def _page(client: TestClient, path: str, status: int = 200) -> Page:
    response = client.get(path)
    assert response.status_code == status, f"GET {path}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("text/html")
    return Page(response.text)


def _event(name: str, data: object, **metadata: str) -> RawEvent:
    return RawEvent(name, json.dumps(data).encode(), metadata)


def _path(aggregate_type: str, aggregate_id: object) -> str:
    encoded = encode_id(aggregate_id)  # type: ignore[arg-type]
    return f"/streams/{aggregate_type}/{urllib.parse.quote(encoded, safe='')}"


def test_streams_filter_search_count_and_links(store: EventStore) -> None:
    investor = uuid.uuid4()
    store.add_aggregate("Investor", investor, [_event("Opened", {}), _event("Deposited", {})])
    store.add_aggregate("Invoice", "ACME-1", [_event("Issued", {})])
    store.add_aggregate("Invoice", 42, [_event("Issued", {})])
    client = _client(store)

    assert client.get("/").status_code == 302
    assert client.get("/").headers["location"] == "/streams"
    every = _page(client, "/streams")
    assert sorted(every.text("td.type")) == ["Investor", "Invoice", "Invoice"]
    assert "3 streams" in every.text("p#stream-count")[0]
    assert not every.attrs("a", id="next-page")
    options = [a.get("value") for a in every.attrs("option")]
    assert options == ["", "Investor", "Invoice"]
    links = [a["href"] for a in every.attrs("a", class_="stream-link")]
    assert _path("Investor", investor) in links
    assert _path("Invoice", 42) in links

    invoices = _page(client, "/streams?type=Invoice")
    assert invoices.text("td.type") == ["Invoice", "Invoice"]
    assert "2 streams" in invoices.text("p#stream-count")[0]
    found = _page(client, f"/streams?q={str(investor)[:8]}")
    assert [t.split()[0] for t in found.text("td.id")] == [str(investor)]
    assert found.text("td.version") == ["2"]
    assert found.text("p#stream-count")[0].startswith("1 stream")
    assert _page(client, "/streams?type=Invoice&q=ACME").text("td.type") == ["Invoice"]
    assert _page(client, "/streams?q=nothing-like-this").text("tr.stream") == []


def test_streams_are_keyset_paged_fifty_at_a_time(store: EventStore) -> None:
    ids = [f"s-{n:03d}" for n in range(120)]
    for aggregate_id in ids:
        store.add_aggregate("Order", aggregate_id, [_event("Placed", {})])
    store.add_aggregate("Other", 1, [_event("Placed", {})])
    client = _client(store)

    seen: list[str] = []
    path: str | None = "/streams?type=Order"
    pages = 0
    while path is not None:
        page = _page(client, path)
        pages += 1
        assert "120 streams" in page.text("p#stream-count")[0]
        rows = [t.split()[0] for t in page.text("td.id")]
        assert len(rows) <= 50
        seen += rows
        nexts = page.attrs("a", id="next-page")
        path = nexts[0]["href"] if nexts else None
    assert pages == 3
    assert seen == ids

    api = client.get("/api/streams", params={"type": "Order"}).json()
    assert api["count"] == 120
    assert [s["aggregate_id"] for s in api["streams"]] == ids[:50]
    after = client.get("/api/streams", params={"type": "Order", "after": api["next"]}).json()
    assert [s["aggregate_id"] for s in after["streams"]] == ids[50:100]


def test_a_stream_shows_events_payloads_metadata_and_snapshot(store: EventStore) -> None:
    @dataclasses.dataclass(frozen=True)
    class Deposited:
        amount: str

    registry = EventRegistry()
    registry.register(Deposited)
    investor = uuid.uuid4()
    store.add_aggregate(
        "Investor",
        investor,
        [
            _event("Opened", {"name": "Ada"}, command="open"),
            registry.to_raw(Deposited("10.00"), {"command": "deposit"}),
            RawEvent("Binary", b"\x00\x01\xff"),
        ],
    )
    store.add_snapshot("Investor", investor, RawSnapshot(2, b'{"balance": "10.00"}'))
    client = _client(store, registry=registry)

    page = _page(client, _path("Investor", investor))
    assert "Investor" in page.text("h1")[0]
    assert str(investor) in page.text("h1")[0]
    assert page.text("td.name") == ["Opened", "Deposited", "Binary"]
    assert page.text("td.version") == ["1", "2", "3"]
    assert "command=open" in page.text("td.metadata")[0]
    payloads = page.text("td.payload")
    assert json.loads(payloads[0]) == {"name": "Ada"}
    assert "Deposited(amount='10.00')" in payloads[1]
    assert "\\x00\\x01\\xff" in payloads[2]
    assert all(t for t in page.text("td.recorded-at"))
    assert "version 2" in page.text("section#snapshots")[0]
    assert isinstance(store, Inspectable)
    events = store.recorded_events("Investor", investor)
    hrefs = [a["href"] for a in page.attrs("a", class_="event-link")]
    assert hrefs == [f"/events/{e.position}" for e in events]

    api = client.get(f"/api{_path('Investor', investor)}").json()
    assert [e["name"] for e in api["events"]] == ["Opened", "Deposited", "Binary"]
    assert api["events"][1]["payload_kind"] == "decoded"
    assert api["events"][2]["data_hex"] == "0001ff"
    assert api["snapshot"] == {"version": 2, "size": 20}


def test_long_streams_are_paged_a_hundred_events_at_a_time(store: EventStore) -> None:
    store.add_aggregate("Ledger", "big", [_event(f"E{n}", {"n": n}) for n in range(1, 231)])
    client = _client(store)
    versions: list[str] = []
    path: str | None = _path("Ledger", "big")
    while path is not None:
        page = _page(client, path)
        versions += page.text("td.version")
        nexts = page.attrs("a", id="next-page")
        path = nexts[0]["href"] if nexts else None
    assert versions == [str(n) for n in range(1, 231)]


def test_ids_of_different_types_are_different_streams(store: EventStore) -> None:
    store.add_aggregate("Thing", 42, [_event("IntCreated", {})])
    store.add_aggregate("Thing", "42", [_event("StrCreated", {})])
    client = _client(store)
    assert _page(client, _path("Thing", 42)).text("td.name") == ["IntCreated"]
    assert _page(client, _path("Thing", "42")).text("td.name") == ["StrCreated"]


def test_unknown_addresses_are_404_and_malformed_ones_400(store: EventStore) -> None:
    store.add_aggregate("Thing", 1, [_event("Created", {})])
    client = _client(store)
    assert client.get(_path("Thing", 2)).status_code == 404
    assert client.get(_path("Nothing", 1)).status_code == 404
    assert client.get("/events/999999").status_code == 404
    assert client.get("/api/events/999999").json()["error"].startswith("no event")
    bad = client.get("/streams/Thing/not-an-encoded-id")
    assert bad.status_code == 400
    assert "not-an-encoded-id" in bad.text
    assert client.get("/streams?after=%%%").status_code == 400
    assert client.get(_path("Thing", 1) + "?from=x").status_code == 400
    assert client.get("/events/abc").status_code == 404
    assert client.get("/healthz").text == "ok"


def test_an_event_shows_its_causation_chain_across_streams(store: EventStore) -> None:
    invoice, investor = uuid.uuid4(), uuid.uuid4()
    store.add_aggregate("Invoice", invoice, [_event("Issued", {}, correlation_id="c-1")])
    placed = message_id("Invoice", invoice, 1)
    store.add_aggregate(
        "Investor", investor, [_event("BidPlaced", {}, correlation_id="c-1", causation_id=placed)]
    )
    bid = message_id("Investor", investor, 1)
    store.append_events(
        "Invoice", invoice, 1, [_event("BidAccepted", {}, correlation_id="c-1", causation_id=bid)]
    )
    accepted = message_id("Invoice", invoice, 2)
    store.append_events(
        "Investor",
        investor,
        1,
        [_event("FundsCommitted", {}, correlation_id="c-1", causation_id=accepted)],
    )
    view = store
    assert isinstance(view, Inspectable)
    first, accepted_event = view.recorded_events("Invoice", invoice)
    bid_event, committed = view.recorded_events("Investor", investor)
    client = _client(store)

    page = _page(client, f"/events/{committed.position}")
    assert "FundsCommitted" in page.text("dl#event")[0]
    chain = [a["href"] for a in page.attrs("a", class_="event-link")]
    want = [f"/events/{e.position}" for e in (first, bid_event, accepted_event, committed)]
    assert chain == want
    assert "c-1" in page.text("section#correlation")[0]
    assert page.text("ul#caused-events") == [""]

    cause = _page(client, f"/events/{bid_event.position}")
    caused = cause.text("ul#caused-events")[0]
    assert "BidAccepted" in caused

    api = client.get(f"/api/events/{committed.position}").json()
    assert [e["name"] for e in api["causation_chain"]] == [
        "Issued",
        "BidPlaced",
        "BidAccepted",
        "FundsCommitted",
    ]
    assert api["correlation_id"] == "c-1"


def test_an_event_without_correlation_metadata_says_so(store: EventStore) -> None:
    store.add_aggregate("Thing", 1, [_event("Created", {})])
    assert isinstance(store, Inspectable)
    [event] = store.recorded_events("Thing", 1)
    page = _page(_client(store), f"/events/{event.position}")
    assert "no correlation metadata" in page.text("section#correlation")[0]
    assert page.attrs("ol", id="causation-chain") == []


def test_a_cause_missing_from_the_store_ends_the_chain(store: EventStore) -> None:
    store.add_aggregate("Thing", 1, [_event("Created", {}, causation_id="Gone/s:x/3")])
    assert isinstance(store, Inspectable)
    [event] = store.recorded_events("Thing", 1)
    page = _page(_client(store), f"/events/{event.position}")
    assert "Gone/s:x/3" in page.text("section#correlation")[0]
    assert len(page.attrs("a", class_="event-link")) == 1


def test_relays_page_and_its_samples(store: EventStore) -> None:
    store.add_aggregate("Thing", 1, [_event("Created", {}), _event("Changed", {})])
    assert isinstance(store, HasOutbox)
    outbox = store.outbox("projections")
    outbox.mark_events_as_published(outbox.unpublished_events(1))
    client = _client(store, refresh_seconds=0.001)

    page = _page(client, "/relays")
    assert page.text("td.name") == ["projections"]
    assert page.text("td.position") == ["1"]
    assert page.text("td.pending") == ["1"]
    assert page.text("td.oldest-pending-age")[0].endswith(("s", "min", "h"))
    for chart in ("lag-chart", "rate-chart"):
        [svg] = page.attrs("svg", id=chart)
        assert svg["data-samples"] == "1"
    assert page.attrs("script", src="/static/console.js")

    store.append_events("Thing", 1, 2, [_event("Changed", {})])
    api = client.get("/api/relays").json()
    assert api["seq"] == 2
    assert [s["relays"]["projections"]["pending"] for s in api["samples"]] == [1, 2]
    assert [(r["name"], r["pending"]) for r in api["relays"]] == [("projections", 2)]
    script = client.get("/static/console.js")
    assert script.status_code == 200
    assert "/api/relays" in script.text


def test_relays_show_who_holds_their_lock_where_the_store_can_tell(
    store: EventStore, request: pytest.FixtureRequest
) -> None:
    store.add_aggregate("Thing", 1, [_event("Created", {})])
    assert isinstance(store, HasOutbox)
    assert isinstance(store, HasRelayLock)
    outbox = store.outbox("projections")
    outbox.mark_events_as_published(outbox.unpublished_events(1))
    backend = request.node.callspec.params["store"]
    free = {"memory": "free", "postgresql": "free"}.get(backend, "\u2014")
    assert _page(_client(store), "/relays").text("td.lock-holder") == [free]

    lock = store.relay_lock("projections")
    assert lock.acquire(5)
    try:
        [holder] = _page(_client(store), "/relays").text("td.lock-holder")
        api = _client(store).get("/api/relays").json()
    finally:
        lock.release()
    want = {"memory": "this process", "postgresql": "pid "}.get(backend, "\u2014")
    assert holder.startswith(want), holder
    assert api["relays"][0]["lock_holder"].startswith(want)
