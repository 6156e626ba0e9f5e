"""The SQL backend's own error class and the translation of driver errors into esrc's.

Every database error that leaves this package is an :class:`~esrc_core.errors.EsrcError`
with the original chained as its cause. Messages are built from the driver's message
(its first line), never from SQLAlchemy's rendering, which would carry the statement
and its parameters (event payloads). Which driver errors are deadlocks or unique
violations is each database's business (:mod:`esrc_sqlalchemy.dialects`).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy.exc
from esrc_core.errors import (
    BackendConfigError,
    EsrcError,
    InvalidEventError,
    StoreUnavailableError,
)
from esrc_core.urls import redact

__all__ = ["StoreConfigError", "driver_message", "translate"]

_MAX_MESSAGE = 300


class StoreConfigError(BackendConfigError):
    """A SQL event store cannot work as configured: a malformed URL, an unsupported
    database or driver, a table prefix or schema name that is not a plain identifier,
    an option the database does not support (all raised before anything connects), or
    what the store finds on its first connection and no retry fixes: tables missing
    with ``create_schema=False``, tables at a newer schema version, a server too old.
    Passwords in the URL are masked in the message."""


def driver_message(err: BaseException, secrets: Iterable[str] = ()) -> str:
    """The first line of the driver's own message for ``err``, shortened, with each of
    ``secrets`` (the store URL's :func:`~esrc_core.urls.url_secrets`) redacted.

    For a SQLAlchemy ``DBAPIError`` that is the wrapped driver exception's text, so
    the message never includes SQL or bound parameters. Drivers quote what they were
    given (a host name, an option), which may hold a piece of a password.
    """
    orig = getattr(err, "orig", None)
    source = orig if isinstance(orig, BaseException) else err
    text = redact(str(source).strip(), secrets)
    first = text.splitlines()[0] if text else type(source).__name__
    if len(first) > _MAX_MESSAGE:
        first = first[: _MAX_MESSAGE - 3] + "..."
    return first


def translate(err: BaseException, doing: str, where: str, secrets: Iterable[str] = ()) -> EsrcError:
    """The esrc error for a SQLAlchemy or driver error raised while ``doing``.

    ``where`` names the store (its masked URL); ``secrets`` are redacted from the
    driver's message (see :func:`driver_message`). Lost or refused connections, timeouts
    and lock waits become :class:`StoreUnavailableError`; values the database rejects
    become :class:`InvalidEventError`; anything else becomes :class:`EsrcError`. The
    caller raises the result ``from err``.
    """
    reason = driver_message(err, secrets)
    if isinstance(err, sqlalchemy.exc.DBAPIError) and err.connection_invalidated:
        return StoreUnavailableError(f"{doing}: lost the connection to {where}: {reason}")
    if isinstance(
        err,
        sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError
        | sqlalchemy.exc.TimeoutError
        | sqlalchemy.exc.DisconnectionError
        | ConnectionError
        | TimeoutError,
    ):
        return StoreUnavailableError(f"{doing}: {where} is unavailable: {reason}")
    if isinstance(err, sqlalchemy.exc.DataError):
        return InvalidEventError(f"{doing}: {where} rejected a value: {reason}")
    return EsrcError(f"{doing}: {where} failed: {reason}")
