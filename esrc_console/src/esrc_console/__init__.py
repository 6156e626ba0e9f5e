"""esrc's web console: a read-only web page for operators of an event store.

:func:`create_app` builds the ASGI application on an open store whose backend offers
the ``inspect`` capability; ``esrc console URL`` serves it with uvicorn
(:func:`esrc_console.cli.serve_console`). Pages: ``/streams`` (filter, search, keyset
paging), ``/streams/{type}/{encoded id}`` (events and snapshots),
``/events/{position}`` (an event and its causation chain) and ``/relays`` (progress and
live charts), each with a JSON twin under ``/api``.
"""

from __future__ import annotations

from esrc_console._app import TOKEN_COOKIE, create_app

__all__ = ["TOKEN_COOKIE", "create_app"]
