"""The financing HTTP API on the async API, in process with an async HTTP client, on
``memory://``, a SQLite file and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from esrc_sqlalchemy.engines import create_application_engine
from esrc_sqlalchemy.keys import SqlKeyStore
from esrc_sqlalchemy.testing import drop_store_tables
from fastapi import FastAPI
from financing.http import create_app
from financing.read_models import ReadModels


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> Iterator[str]:
    """``memory://``, then a SQLite file, then PostgreSQL (tables dropped after)."""
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/financing.db"
    else:
        url: str = request.getfixturevalue("postgresql_url")
        yield url
        _drop(url, name)


def _drop(url: str, name: str) -> None:
    drop_store_tables(url, f"{name}_")
    with SqlKeyStore(url, table_prefix=f"{name}_", create_table=False) as keys:
        engine = create_application_engine(url)
        keys.table.drop(engine, checkfirst=True)
        engine.dispose()
    read_models = ReadModels(url, table_prefix=f"{name}_rm_")
    read_models.drop()
    read_models.close()


def _run(app: FastAPI, scenario: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                await scenario(client)

    asyncio.run(main())


async def _until(client: httpx.AsyncClient, path: str, done: Callable[[Any], bool]) -> Any:
    """GET ``path`` until ``done`` says its JSON is what the test waits for (the relay
    feeds the read models and the choreography in the background)."""
    async with asyncio.timeout(30):
        while True:
            response = await client.get(path)
            if response.status_code == 200 and done(response.json()):
                return response.json()
            await asyncio.sleep(0.02)


def _app(store_url: str, name: str) -> FastAPI:
    options = {} if store_url == "memory://" else {"table_prefix": f"{name}_"}
    return create_app(store_url, store_options=options, read_models_prefix=f"{name}_rm_")


async def _posted(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body)
    assert response.status_code in (201, 202, 204), response.text
    return response.json() if response.content else None


def test_a_bid_finances_an_invoice_and_the_read_models_follow(store_url: str, name: str) -> None:
    """Issuer, invoice, investor, deposit and a bid over HTTP: the choreography run by
    the relay task accepts the bid, and the read models show the financing."""

    async def scenario(client: httpx.AsyncClient) -> None:
        issuer = (await _posted(client, "/issuers", {"name": "Acme"}))["issuer_id"]
        invoice = (
            await _posted(
                client,
                "/invoices",
                {"issuer_id": issuer, "number": "F-1", "face_value": "1000", "asking_price": "950"},
            )
        )["invoice_id"]
        investor = (await _posted(client, "/investors", {"name": "Ann"}))["investor_id"]
        await _posted(client, f"/investors/{investor}/deposits", {"amount": "2000"})
        balance = (await client.get(f"/investors/{investor}/balance")).json()
        assert (Decimal(balance["available"]), balance["version"]) == (Decimal(2000), 2)

        await _posted(
            client, f"/invoices/{invoice}/bids", {"investor_id": investor, "amount": "950"}
        )
        view = await _until(client, f"/invoices/{invoice}", lambda v: v["status"] == "financed")
        assert (view["investor"], Decimal(view["financed_amount"])) == ("Ann", Decimal(950))
        funds = await _until(
            client, f"/investors/{investor}", lambda v: Decimal(v["committed"]) == 950
        )
        assert (Decimal(funds["available"]), Decimal(funds["reserved"])) == (
            Decimal(1050),
            Decimal(0),
        )
        assert [v["number"] for v in (await client.get("/invoices")).json()] == ["F-1"]

    _run(_app(store_url, name), scenario)


def test_refused_commands_get_their_http_status(store_url: str, name: str) -> None:
    """Unknown aggregates are 404, an invalid amount 422, a bid above the balance and
    a second invoice of the same number 409; nothing is saved for any of them."""

    async def scenario(client: httpx.AsyncClient) -> None:
        missing = "00000000-0000-0000-0000-000000000001"
        response = await client.post(f"/investors/{missing}/deposits", json={"amount": "5"})
        assert response.status_code == 404, response.text
        investor = (await _posted(client, "/investors", {"name": "Bob"}))["investor_id"]
        response = await client.post(f"/investors/{investor}/deposits", json={"amount": "-5"})
        assert (response.status_code, response.json()["error"]) == (422, "InvalidAmount")
        issuer = (await _posted(client, "/issuers", {"name": "Acme"}))["issuer_id"]
        body = {"issuer_id": issuer, "number": "F-9", "face_value": "100", "asking_price": "90"}
        invoice = (await _posted(client, "/invoices", body))["invoice_id"]
        response = await client.post("/invoices", json=body)
        assert (response.status_code, response.json()["error"]) == (409, "AggregateAlreadyExists")
        response = await client.post(
            f"/invoices/{invoice}/bids", json={"investor_id": investor, "amount": "90"}
        )
        assert (response.status_code, response.json()["error"]) == (409, "InsufficientFunds")
        balance = (await client.get(f"/investors/{investor}/balance")).json()
        assert (Decimal(balance["available"]), balance["version"]) == (Decimal(0), 1)
        assert (await client.get(f"/investors/{missing}/balance")).status_code == 404

    _run(_app(store_url, name), scenario)


def test_investor_names_are_read_after_a_restart(store_url: str, name: str) -> None:
    """Investors' keys are kept beside a SQL store's tables: an application started
    again on the same store reads (and so loads) the investors the first one wrote."""
    if store_url == "memory://":
        pytest.skip("a memory store does not outlive its application")
    registered: list[str] = []

    async def first(client: httpx.AsyncClient) -> None:
        registered.append((await _posted(client, "/investors", {"name": "Cy"}))["investor_id"])

    async def second(client: httpx.AsyncClient) -> None:
        await _posted(client, f"/investors/{registered[0]}/deposits", {"amount": "10"})
        view = await _until(
            client, f"/investors/{registered[0]}", lambda v: Decimal(v["available"]) == 10
        )
        assert view["name"] == "Cy"

    _run(_app(store_url, name), first)
    _run(_app(store_url, name), second)
