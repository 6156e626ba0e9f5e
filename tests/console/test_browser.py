"""The web console in a real browser (headless Chromium), on the financing demo's store:
finding an investor, reading its stream, following an event's causation to the invoice
that caused it, and the relays page's charts following new events live.

Each step saves a screenshot in the ``artefacts`` directory (see ``conftest.py``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from esrc_console.testing import serve
from esrc_core.ids import encode_id
from financing.commands import Commands
from playwright.sync_api import Page, expect

from esrc_console import create_app
from esrc_core import EventStore, Inspectable, RecordedEvent, open_event_store
from tests.console.browser import DEMO_TABLE_PREFIX, DemoStore

REFRESH_SECONDS = 0.5
"""How often the relays page polls /api/relays in these tests."""


def _open(demo: DemoStore) -> EventStore:
    return open_event_store(demo.url, table_prefix=DEMO_TABLE_PREFIX)


@pytest.fixture(scope="module")
def console(demo: DemoStore) -> Iterator[str]:
    """The console on the demo's store, served on a free port; yields its base URL."""
    store = _open(demo)
    try:
        with serve(create_app(store, refresh_seconds=REFRESH_SECONDS)) as url:
            yield url.rstrip("/")
    finally:
        store.close()


def _samples(page: Page, chart: str) -> int:
    value = page.get_attribute(f"svg#{chart}", "data-samples")
    assert value is not None, f"svg#{chart} has no data-samples attribute"
    return int(value)


def _wait_for_samples(page: Page, chart: str, above: int) -> None:
    """Wait until ``svg#chart`` has drawn more than ``above`` samples."""
    page.wait_for_function(
        "([chart, above]) => Number(document.querySelector('svg#' + chart)"
        "?.getAttribute('data-samples')) > above",
        arg=[chart, above],
        timeout=20 * REFRESH_SECONDS * 1000,
    )


def _pending(page: Page, relay: str) -> int:
    exactly = re.compile(rf"^\s*{re.escape(relay)}\s*$")
    row = page.locator("table#relays tr.relay").filter(
        has=page.locator("td.name", has_text=exactly)
    )
    expect(row).to_have_count(1)
    return int(row.locator("td.pending").inner_text().strip().replace(",", ""))


def test_from_an_investor_to_the_invoice_that_caused_its_event(
    page: Page, console: str, demo: DemoStore, artefacts: Path
) -> None:
    investor = demo.result.investors["Ada"]
    store = _open(demo)
    try:
        assert isinstance(store, Inspectable)
        streams = store.streams()
        investors = store.streams("Investor")
        events = store.recorded_events("Investor", investor)
    finally:
        store.close()

    # Every stream, then only the investors.
    page.goto(f"{console}/")
    expect(page).to_have_url(f"{console}/streams")
    expect(page.locator("table#streams tr.stream")).to_have_count(len(streams))
    expect(page.locator("p#stream-count")).to_contain_text(str(len(streams)))
    page.select_option("form#stream-filter select[name=type]", "Investor")
    page.click("form#stream-filter button[type=submit]")
    expect(page.locator("table#streams tr.stream")).to_have_count(len(investors))
    for cell in page.locator("table#streams tr.stream td.type").all():
        expect(cell).to_have_text("Investor")

    # Search Ada by the start of her id.
    page.fill("form#stream-filter input[name=q]", str(investor)[:8])
    page.click("form#stream-filter button[type=submit]")
    rows = page.locator("table#streams tr.stream")
    expect(rows).to_have_count(1)
    expect(rows.locator("td.id")).to_contain_text(str(investor))
    page.screenshot(path=artefacts / "streams.png")

    # Her stream: one row per event, in version order.
    rows.locator("a.stream-link").click()
    expect(page.locator("h1")).to_contain_text("Investor")
    expect(page.locator("h1")).to_contain_text(str(investor))
    event_rows = page.locator("table#events tr.event")
    expect(event_rows).to_have_count(len(events))
    expect(event_rows.locator("td.name")).to_have_text([e.event.name for e in events])
    page.screenshot(path=artefacts / "stream.png")

    # A FundsCommitted event was caused by an invoice accepting her bid.
    committed = next(e for e in events if e.event.name == "FundsCommitted")
    event_rows.nth(committed.version - 1).locator("a.event-link").click()
    _follow_the_cause(page, console, committed, demo, artefacts)


def _follow_the_cause(
    page: Page, console: str, committed: RecordedEvent, demo: DemoStore, artefacts: Path
) -> None:
    """From ``committed``'s page, along its causation chain to the invoice's stream."""
    investor = committed.aggregate_id
    expect(page).to_have_url(f"{console}/events/{committed.position}")
    expect(page.locator("dl#event")).to_contain_text("FundsCommitted")
    page.screenshot(path=artefacts / "event.png")
    chain = page.locator("section#correlation ol#causation-chain > li")
    if chain.count() == 0:
        pytest.fail(
            f"event {committed.position} (Investor {investor} version {committed.version}, "
            f"FundsCommitted) shows no causation chain; its metadata is "
            f"{committed.event.metadata!r}, and the console follows 'causation_id' "
            f"(the demo's commands must record it); the page says: "
            f"{page.locator('section#correlation').inner_text()!r}",
            pytrace=False,
        )
    cause_id = committed.event.metadata.get("causation_id", "")
    cause_type, cause_encoded_id, cause_version = cause_id.split("/")
    assert cause_type == "Invoice", f"want an invoice as the cause, got {cause_id!r}"
    # From the first cause to this event: the last item is the event itself, the one
    # before it its direct cause (the invoice accepting the bid).
    links = chain.count()
    assert links >= 2, f"want the cause and the event in the chain, got {links} item(s)"
    expect(chain.last.locator("a.event-link")).to_have_attribute(
        "href", re.compile(rf"/events/{committed.position}$")
    )
    chain.nth(links - 2).locator("a.stream-link").click()
    expect(page.locator("h1")).to_contain_text("Invoice")
    invoice = uuid.UUID(cause_encoded_id.removeprefix("u:"))
    assert encode_id(invoice) == cause_encoded_id, cause_id
    expect(page.locator("h1")).to_contain_text(str(invoice))
    assert invoice in demo.result.invoices.values(), (invoice, demo.result.invoices)
    accepted = page.locator("table#events tr.event").nth(int(cause_version) - 1)
    expect(accepted.locator("td.name")).to_have_text("BidAccepted")


def test_relays_page_charts_follow_new_events(
    page: Page, console: str, demo: DemoStore, artefacts: Path
) -> None:
    page.goto(f"{console}/relays")
    names = page.locator("table#relays tr.relay td.name")
    expect(names).to_have_text(["financing", "financing-redelivery"])
    before = {name: _pending(page, name) for name in ("financing", "financing-redelivery")}
    # The charts redraw on their own, with nothing new in the store.
    _wait_for_samples(page, "lag-chart", _samples(page, "lag-chart"))

    store = _open(demo)
    try:
        commands = Commands(store)
        commands.deposit(demo.result.investors["Ben"], Decimal("100.00"))
        commands.deposit(demo.result.investors["Ben"], Decimal("250.00"))
    finally:
        store.close()
    # A poll in flight may have read the store before the deposits: wait for two more.
    for chart in ("lag-chart", "rate-chart"):
        _wait_for_samples(page, chart, _samples(page, chart) + 1)
    page.screenshot(path=artefacts / "relays.png")

    page.reload()
    after = {name: _pending(page, name) for name in before}
    assert after == {name: pending + 2 for name, pending in before.items()}
