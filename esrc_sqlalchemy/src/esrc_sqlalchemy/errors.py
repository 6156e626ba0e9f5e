"""The SQL backend's own error class and the translation of driver errors into esrc's.

Every database error that leaves this package is an :class:`~esrc_core.errors.EsrcError`
with the original chained as its cause. Messages are built from the driver's message
(its first line), never from SQLAlchemy's rendering, which would carry the statement
and its parameters (event payloads).
"""

from __future__ import annotations

import sqlalchemy.exc
from esrc_core.errors import (
    BackendConfigError,
    EsrcError,
    InvalidEventError,
    StoreUnavailableError,
)

__all__ = ["StoreConfigError", "driver_message", "is_deadlock", "is_unique_violation", "translate"]

_MAX_MESSAGE = 300


class StoreConfigError(BackendConfigError):
    """A SQL event store's URL or an option is invalid: a malformed URL, an unsupported
    driver, a table prefix or schema name that is not a plain identifier, or an option
    the database does not support. Raised before anything connects; passwords in the
    URL are masked in the message."""


def driver_message(err: BaseException) -> str:
    """The first line of the driver's own message for ``err``, shortened.

    For a SQLAlchemy ``DBAPIError`` that is the wrapped driver exception's text, so
    the message never includes SQL or bound parameters.
    """
    orig = getattr(err, "orig", None)
    source = orig if isinstance(orig, BaseException) else err
    text = str(source).strip()
    first = text.splitlines()[0] if text else type(source).__name__
    if len(first) > _MAX_MESSAGE:
        first = first[: _MAX_MESSAGE - 3] + "..."
    return first


def _mysql_errno(err: BaseException) -> int | None:
    orig = getattr(err, "orig", None)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def _sqlstate(err: BaseException) -> str | None:
    orig = getattr(err, "orig", None)
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def is_deadlock(err: BaseException) -> bool:
    """Whether ``err`` is a deadlock or serialization failure the server resolved by
    rolling back the whole transaction, so running it again is safe."""
    return _sqlstate(err) in {"40P01", "40001"} or _mysql_errno(err) == 1213


def is_unique_violation(err: BaseException) -> bool:
    """Whether ``err`` is a duplicate key in a unique index or primary key."""
    if not isinstance(err, sqlalchemy.exc.IntegrityError):
        return False
    if _sqlstate(err) == "23505" or _mysql_errno(err) == 1062:
        return True
    return "UNIQUE constraint failed" in str(err.orig)


def translate(err: BaseException, doing: str, where: str) -> EsrcError:
    """The esrc error for a SQLAlchemy or driver error raised while ``doing``.

    ``where`` names the store (its masked URL). Lost or refused connections, timeouts
    and lock waits become :class:`StoreUnavailableError`; values the database rejects
    become :class:`InvalidEventError`; anything else becomes :class:`EsrcError`. The
    caller raises the result ``from err``.
    """
    reason = driver_message(err)
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
