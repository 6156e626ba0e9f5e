"""The financing application over HTTP, on esrc's async API (FastAPI).

One :class:`~esrc_core.AsyncEventStore` per application, opened and closed by the
lifespan. The command handlers are the application's one copy of them
(:class:`~financing.commands.Commands`), run on the store's sync face inside its
bridge, so a request waits for the database on the event loop. Reads of one aggregate
go through a request-scoped :class:`~esrc_core.AsyncRepository`. An
:class:`~esrc_core.AsyncRelay`, a task of the application, feeds the read models (the
application's own tables, written on a worker thread) and the choreography that
decides bids. Run it with ``uvicorn --factory financing.http:create_app`` (or with
``create_app(store_url)`` from your own server).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from esrc_core.async_store import sync_face
from esrc_core.personal_data import KeyStore
from esrc_sqlalchemy.keys import SqlKeyStore
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from esrc_core import (
    AggregateAlreadyExists,
    AggregateNotFound,
    AsyncEventStore,
    AsyncRelay,
    AsyncRepository,
    Bridge,
    OptimisticConcurrencyError,
    RelayEvent,
    open_async_event_store,
)
from financing.commands import Commands
from financing.errors import FinancingError, InvalidAmount, UnknownAggregate
from financing.events import registry
from financing.investor import Investor
from financing.process import FinancingProcess
from financing.read_models import ReadModelError, ReadModels

__all__ = ["Application", "create_app"]

T = TypeVar("T")

RELAY_NAME = "financing-http"
"""The relay whose progress the HTTP application keeps in the store."""


class Application:
    """What one running application holds: the store, the commands on its sync face,
    the read models and the relay that feeds them."""

    def __init__(
        self, store: AsyncEventStore, read_models: ReadModels, keys: KeyStore | None = None
    ) -> None:
        self.store = store
        sync_store, self.bridge = sync_face(store)
        self.commands = Commands(sync_store, keys=keys)
        self.read_models = read_models
        self.process = FinancingProcess(self.commands)
        self.relay = AsyncRelay(
            store, _Consumers(self, self.bridge), name=RELAY_NAME, poll_interval=0.05
        )

    async def command(self, handler: Callable[..., T], *args: Any) -> T:
        """Run a command handler of :attr:`commands` (through the store's bridge)."""
        return await self.bridge.run(handler, *args)


class _Consumers:
    """The relay's async publisher: each event goes to the read models (on a worker
    thread: their engine is sync) and to the choreography (through the bridge)."""

    def __init__(self, app: Application, bridge: Bridge) -> None:
        self._app = app
        self._bridge = bridge

    async def publish(self, event: RelayEvent) -> None:
        await self.publish_batch([event])

    async def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        app = self._app
        for event in events:
            await asyncio.to_thread(app.read_models.projection.handle, event)
            await self._bridge.run(app.process.projection.handle, event)

    async def close(self) -> None:
        pass


class IssuerIn(BaseModel):
    """Register an issuer."""

    name: str


class InvoiceIn(BaseModel):
    """Put an invoice up for sale."""

    issuer_id: uuid.UUID
    number: str
    face_value: Decimal
    asking_price: Decimal


class InvestorIn(BaseModel):
    """Register an investor."""

    name: str


class AmountIn(BaseModel):
    """An amount of money: a deposit or a bid."""

    amount: Decimal


class BidIn(AmountIn):
    """A bid of ``amount`` by ``investor_id``."""

    investor_id: uuid.UUID


def _app(request: Request) -> Application:
    application: Application = request.app.state.financing
    return application


def _investors(request: Request) -> AsyncRepository[Investor]:
    """A request-scoped repository of investors on the application's store."""
    return AsyncRepository(_app(request).store, Investor, registry)


AppDep = Annotated[Application, Depends(_app)]
InvestorsDep = Annotated[AsyncRepository[Investor], Depends(_investors)]

_STATUS: list[tuple[type[Exception], int]] = [
    (InvalidAmount, 422),
    (UnknownAggregate, 404),
    (AggregateNotFound, 404),
    (AggregateAlreadyExists, 409),
    (OptimisticConcurrencyError, 409),
    (ValueError, 422),
    (FinancingError, 409),
    (ReadModelError, 404),
    (LookupError, 404),
]
"""HTTP statuses of the errors commands raise (the most specific class of an error
picks its handler)."""


def _key_store(store_url: str, store_options: dict[str, Any]) -> SqlKeyStore | None:
    """Investors' keys beside a SQL store's tables (through the database's sync
    driver), so names written before a restart can be read after it; ``None`` (keys in
    memory) for ``memory://``."""
    if store_url.startswith("memory:"):
        return None
    url = sa.make_url(store_url)
    sync_url = url.set(drivername=url.get_backend_name())
    prefix = store_options.get("table_prefix", "esrc_")
    return SqlKeyStore(sync_url.render_as_string(hide_password=False), table_prefix=prefix)


def create_app(
    store_url: str = "sqlite:///financing.db",
    *,
    read_models_url: str | None = None,
    store_options: dict[str, Any] | None = None,
    read_models_prefix: str = "financing_rm_",
) -> FastAPI:
    """The HTTP application on the store ``store_url`` (any URL
    :func:`~esrc_core.open_async_event_store` takes) with its read models at
    ``read_models_url`` (a SQL URL; by default the store's own database for a SQL
    store, a SQLite database in memory for ``memory://``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await open_async_event_store(store_url, **(store_options or {}))
        read_url = read_models_url or (
            "sqlite://" if store_url.startswith("memory:") else store_url
        )
        read_models = ReadModels(read_url, table_prefix=read_models_prefix)
        await asyncio.to_thread(read_models.create)
        keys = await asyncio.to_thread(_key_store, store_url, store_options or {})
        application = Application(store, read_models, keys)
        app.state.financing = application
        relaying = asyncio.create_task(application.relay.run())
        try:
            yield
        finally:
            application.relay.stop()
            await relaying
            await store.close()
            await asyncio.to_thread(read_models.close)
            if keys is not None:
                keys.close()

    app = FastAPI(title="Invoice financing", lifespan=lifespan)

    for error, status in _STATUS:
        app.add_exception_handler(error, _handler(status))

    @app.post("/issuers", status_code=201)
    async def register_issuer(body: IssuerIn, app: AppDep) -> dict[str, uuid.UUID]:
        """Register an issuer."""
        return {"issuer_id": await app.command(app.commands.register_issuer, body.name)}

    @app.post("/invoices", status_code=201)
    async def put_invoice_for_sale(body: InvoiceIn, app: AppDep) -> dict[str, uuid.UUID]:
        """Put an issuer's invoice up for sale."""
        invoice_id = await app.command(
            app.commands.put_invoice_for_sale,
            body.issuer_id,
            body.number,
            body.face_value,
            body.asking_price,
        )
        return {"invoice_id": invoice_id}

    @app.post("/investors", status_code=201)
    async def register_investor(body: InvestorIn, app: AppDep) -> dict[str, uuid.UUID]:
        """Register an investor with no funds."""
        return {"investor_id": await app.command(app.commands.register_investor, body.name)}

    @app.post("/investors/{investor_id}/deposits", status_code=204)
    async def deposit(investor_id: uuid.UUID, body: AmountIn, app: AppDep) -> None:
        """Add funds to an investor's balance."""
        await app.command(app.commands.deposit, investor_id, body.amount)

    @app.post("/invoices/{invoice_id}/bids", status_code=202)
    async def place_bid(invoice_id: uuid.UUID, body: BidIn, app: AppDep) -> dict[str, uuid.UUID]:
        """Bid on an invoice: reserves the investor's funds; the invoice decides later
        (202: the choreography runs when the relay hands it the bid)."""
        bid_id = await app.command(
            app.commands.place_bid, body.investor_id, invoice_id, body.amount
        )
        return {"bid_id": bid_id}

    @app.get("/investors/{investor_id}")
    async def investor_view(investor_id: uuid.UUID, app: AppDep) -> dict[str, Any]:
        """The investors read model's row (as of the relay's progress)."""
        return asdict(await asyncio.to_thread(app.read_models.investor, investor_id))

    @app.get("/investors/{investor_id}/balance")
    async def investor_balance(investor_id: uuid.UUID, investors: InvestorsDep) -> dict[str, Any]:
        """The investor's balance from its event stream: always up to date."""
        investor = await investors.find_by_id(investor_id)
        return {
            "investor_id": investor.id,
            "version": investor.version,
            "available": investor.available,
            "reserved": investor.reserved,
        }

    @app.get("/invoices/{invoice_id}")
    async def invoice_view(invoice_id: uuid.UUID, app: AppDep) -> dict[str, Any]:
        """The invoices read model's row (as of the relay's progress)."""
        return asdict(await asyncio.to_thread(app.read_models.invoice, invoice_id))

    @app.get("/invoices")
    async def invoice_views(app: AppDep) -> list[dict[str, Any]]:
        """Every invoice of the read model."""
        return [asdict(view) for view in await asyncio.to_thread(app.read_models.invoices)]

    return app


def _handler(status: int) -> Callable[[Request, Exception], Any]:
    async def handle(_: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(err), "error": type(err).__name__}, status_code=status)

    return handle
