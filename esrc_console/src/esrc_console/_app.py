"""The console's ASGI application: :func:`create_app`.

Every handler is a plain function, which Starlette runs in its thread pool, so store
reads never block the event loop. Nothing is written to the store.
"""

from __future__ import annotations

import hmac
import importlib.resources
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from esrc_core.capabilities import Capability, offered
from esrc_core.errors import AggregateNotFound, EsrcError, NotSupportedError
from esrc_core.events import EventRegistry
from esrc_core.ids import AggregateId, decode_id
from esrc_core.inspection import Inspectable, aggregate_types, events_page
from esrc_core.store import EventStore
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from esrc_console import _html
from esrc_console._reading import (
    EVENTS_PER_PAGE,
    BadRequest,
    RelayHistory,
    decode_cursor,
    event_chain,
    find_event,
    read_streams,
)

__all__ = ["TOKEN_COOKIE", "create_app"]

TOKEN_COOKIE = "esrc_console_token"
"""The cookie that keeps a token given as ``?token=`` for the next requests."""

_Handler = Callable[[Request], Response]


class _Console:
    """The state the handlers share: the store, the registry, the relay history."""

    def __init__(
        self,
        store: Inspectable,
        registry: EventRegistry | None,
        refresh_seconds: float,
        history_size: int,
        store_label: str,
    ) -> None:
        self.store = store
        self.registry = registry
        self.refresh_seconds = refresh_seconds
        self.history = RelayHistory(history_size, refresh_seconds / 2)
        self.label = store_label

    # --- helpers --------------------------------------------------------------------

    def error(self, request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return HTMLResponse(
            _html.error_page(status, message, store_label=self.label), status_code=status
        )

    def guarded(self, handler: _Handler) -> _Handler:
        """``handler`` with bad parameters answered 400, missing things 404 and store
        failures 503, each with its message."""

        def run(request: Request) -> Response:
            try:
                return handler(request)
            except BadRequest as err:
                return self.error(request, 400, str(err))
            except AggregateNotFound as err:
                return self.error(request, 404, str(err))
            except EsrcError as err:
                return self.error(request, 503, f"{type(err).__name__}: {err}")

        return run

    def stream_key(self, request: Request) -> tuple[str, AggregateId]:
        aggregate_type = request.path_params["aggregate_type"]
        encoded = request.path_params["encoded_id"]
        try:
            return aggregate_type, decode_id(encoded)
        except (ValueError, EsrcError) as err:
            raise BadRequest(f"not an encoded aggregate id: {encoded!r} ({err})") from err

    @staticmethod
    def whole(request: Request, name: str, default: int) -> int:
        text = request.query_params.get(name)
        if text is None or text == "":
            return default
        if not text.isdigit():
            raise BadRequest(f"{name} must be a whole number, got {text!r}")
        return int(text)

    # --- pages ----------------------------------------------------------------------

    def streams(self, request: Request) -> Any:
        params = request.query_params
        aggregate_type = params.get("type") or None
        search = params.get("q") or None
        after_text = params.get("after")
        after = decode_cursor(after_text) if after_text else None
        page = read_streams(self.store, aggregate_type, search, after)
        return page, aggregate_type, search

    def streams_html(self, request: Request) -> Response:
        page, aggregate_type, search = self.streams(request)
        types = aggregate_types(self.store)
        text = _html.streams_page(page, types, aggregate_type, search, store_label=self.label)
        return HTMLResponse(text)

    def streams_json(self, request: Request) -> Response:
        page, aggregate_type, search = self.streams(request)
        return JSONResponse(
            {
                "type": aggregate_type,
                "q": search,
                "count": page.total,
                "streams": [_html.stream_info_document(s) for s in page.streams],
                "next": page.next_cursor,
            }
        )

    def stream(self, request: Request) -> Any:
        aggregate_type, aggregate_id = self.stream_key(request)
        start = self.whole(request, "from", 0)
        found = events_page(self.store, aggregate_type, aggregate_id, start, EVENTS_PER_PAGE + 1)
        more = len(found) > EVENTS_PER_PAGE
        found = found[:EVENTS_PER_PAGE]
        next_href = None
        if more:
            next_href = f"{request.url.path}?from={found[-1].version}"
        store: EventStore = self.store  # type: ignore[assignment]
        snapshot = store.latest_snapshot(aggregate_type, aggregate_id)
        if not found and start == 0 and not store.contains_aggregate(aggregate_type, aggregate_id):
            raise AggregateNotFound(f"no stream {aggregate_type} {aggregate_id!r}")
        return aggregate_type, aggregate_id, found, snapshot, next_href

    def stream_html(self, request: Request) -> Response:
        aggregate_type, aggregate_id, found, snapshot, next_href = self.stream(request)
        text = _html.stream_page_html(
            aggregate_type,
            aggregate_id,
            found,
            snapshot=snapshot,
            registry=self.registry,
            next_href=next_href,
            store_label=self.label,
        )
        return HTMLResponse(text)

    def stream_json(self, request: Request) -> Response:
        aggregate_type, aggregate_id, found, snapshot, next_href = self.stream(request)
        return JSONResponse(
            {
                "aggregate_type": aggregate_type,
                "aggregate_id": _html.json_id(aggregate_id),
                "events": [_html.event_document(e, self.registry) for e in found],
                "snapshot": None
                if snapshot is None
                else {"version": snapshot.version, "size": len(snapshot.data)},
                "next": next_href,
            }
        )

    def event(self, request: Request) -> Any:
        position: int = request.path_params["position"]
        found = find_event(self.store, position)
        if found is None:
            raise AggregateNotFound(f"no event at position {position}")
        return found, event_chain(self.store, found)

    def event_html(self, request: Request) -> Response:
        found, chain = self.event(request)
        return HTMLResponse(_html.event_page(found, chain, self.registry, store_label=self.label))

    def event_json(self, request: Request) -> Response:
        found, chain = self.event(request)
        return JSONResponse(
            {
                "event": _html.event_document(found, self.registry),
                "correlation_id": chain.correlation_id,
                "causation_chain": [_html.event_document(e, None) for e in chain.causes],
                "caused_events": [_html.event_document(e, None) for e in chain.caused],
                "missing_cause": chain.missing,
            }
        )

    def relays_html(self, request: Request) -> Response:
        relays, samples, holders = self.history.sample(self.store)
        text = _html.relays_page(
            relays, samples, holders, self.refresh_seconds, store_label=self.label
        )
        return HTMLResponse(text)

    def relays_json(self, request: Request) -> Response:
        relays, samples, holders = self.history.sample(self.store)
        document = _html.relay_document(relays, samples, holders)
        document["refresh_seconds"] = self.refresh_seconds
        return JSONResponse(document)


def _script(request: Request) -> Response:
    text = importlib.resources.files("esrc_console").joinpath("static/console.js").read_text()
    return Response(
        text,
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache"},
    )


def _token_middleware(token: str) -> type[BaseHTTPMiddleware]:
    """A middleware refusing (401) every request without ``token`` as a bearer token,
    a ``token`` query parameter or :data:`TOKEN_COOKIE`. A page given ``?token=``
    redirects to itself without it and sets the cookie (so the token leaves the
    address bar); an ``/api/`` request given ``?token=`` is answered directly."""
    expected = token.encode()

    def same(given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), expected)

    class TokenMiddleware(BaseHTTPMiddleware):
        async def dispatch(
            self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            header = request.headers.get("authorization", "")
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer" and same(value.strip()):
                return await call_next(request)
            if same(request.cookies.get(TOKEN_COOKIE)):
                return await call_next(request)
            query = request.query_params.get("token")
            if same(query) and request.url.path.startswith("/api/"):
                return await call_next(request)  # a script's request: no redirect
            if same(query):
                kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = request.url.path + ("?" + urllib.parse.urlencode(kept) if kept else "")
                response: Response = RedirectResponse(target, status_code=303)
                response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/")
                return response
            return PlainTextResponse(
                "401: this console needs its token (Authorization: Bearer TOKEN, or ?token=)",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )

    return TokenMiddleware


def create_app(
    store: EventStore,
    *,
    token: str | None = None,
    refresh_seconds: float = 5.0,
    registry: EventRegistry | None = None,
    history_size: int = 720,
    store_label: str = "",
) -> Starlette:
    """The console's ASGI application on ``store`` (an open store whose backend offers
    the ``inspect`` capability; the caller closes it).

    ``token``: when given, every request must carry it (``Authorization: Bearer``, or
    ``?token=`` once, which sets a cookie). ``refresh_seconds``: how often the relays
    page polls ``/api/relays``. ``registry``: event classes to decode payloads with
    (raw JSON is shown otherwise). ``history_size``: how many relay samples are kept in
    memory. ``store_label``: what the header says the store is (give a masked URL).

    Raises :class:`~esrc_core.errors.NotSupportedError` when the store does not offer
    inspection, and ``ValueError`` for a refresh that is not above 0 or an empty token.
    """
    inspectable = offered(store, Capability.INSPECT, Inspectable)
    if inspectable is None:
        raise NotSupportedError(
            f"the web console needs a store offering the '{Capability.INSPECT}' capability; "
            f"{type(store).__name__} does not"
        )
    if not refresh_seconds > 0:
        raise ValueError(f"refresh_seconds must be above 0, got {refresh_seconds!r}")
    if token is not None and not token:
        raise ValueError("an empty token would let anyone in; give a token or None")
    console = _Console(inspectable, registry, refresh_seconds, history_size, store_label)
    g = console.guarded
    routes = [
        Route("/", lambda request: RedirectResponse("/streams", status_code=302)),
        Route("/healthz", lambda request: PlainTextResponse("ok")),
        Route("/static/console.js", _script),
        Route("/streams", g(console.streams_html)),
        Route("/streams/{aggregate_type}/{encoded_id:path}", g(console.stream_html)),
        Route("/events/{position:int}", g(console.event_html)),
        Route("/relays", g(console.relays_html)),
        Route("/api/streams", g(console.streams_json)),
        Route("/api/streams/{aggregate_type}/{encoded_id:path}", g(console.stream_json)),
        Route("/api/events/{position:int}", g(console.event_json)),
        Route("/api/relays", g(console.relays_json)),
    ]
    middleware = [Middleware(_token_middleware(token))] if token else []
    app = Starlette(routes=routes, middleware=middleware)
    app.state.console = console
    return app
