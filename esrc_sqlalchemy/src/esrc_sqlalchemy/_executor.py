"""What a store's collaborators (outboxes, relay locks, operator views) share with it:
:class:`StoreExecutor`, the one way to run work on the store's database.

Internal: the store builds one and hands it to the objects it creates, so that none
of them reads the store's private state.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy.exc
from esrc_core.errors import EsrcError, StoreUnavailableError
from sqlalchemy.engine import Connection

from esrc_sqlalchemy.dialects import SqlDialect
from esrc_sqlalchemy.errors import driver_message, translate
from esrc_sqlalchemy.schema import Tables

__all__ = ["StoreExecutor"]

T = TypeVar("T")

_DEADLOCK_ATTEMPTS = 3
_APPEND_OUTCOME_UNKNOWN = (
    " (the append was stored whole or not at all, and a lost connection can hide which:"
    " read the stream to find out; retrying at the same expected version cannot store"
    " it twice)"
)


class StoreExecutor:
    """Runs work in a transaction on a store's database, with the store's retries and
    error translation, and carries what that work needs: the :attr:`dialect`, the
    :attr:`tables` and the masked :attr:`url`.

    ``ensure_ready(doing)`` is called before each run (the store creates or checks its
    tables on first use). Thread-safe; on a database whose operations share one
    connection (``sqlite://``) runs take turns (:attr:`serial`).
    """

    def __init__(
        self,
        *,
        url: str,
        dialect: SqlDialect,
        ensure_ready: Callable[[str], None],
    ) -> None:
        self.url = url
        """The store's URL with the password masked, for messages."""
        self.dialect = dialect
        """The database's dialect for the store's tables."""
        self.tables: Tables = dialect.tables
        """The store's tables."""
        self.serial: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if dialect.shares_one_connection else contextlib.nullcontext()
        )
        """Held around every use of a connection where the store has only one."""
        self._ensure_ready = ensure_ready

    def run(
        self,
        doing: str,
        work: Callable[[Connection], T],
        *,
        write: bool,
        single: bool = False,
        conflict: Callable[[], EsrcError] | None = None,
        append: bool = False,
    ) -> T:
        """Run ``work`` on a connection of the dialect's engine and return its result,
        committing a write; translate driver errors into esrc's, saying ``doing``.

        ``single`` says the write is one statement, needing no explicit transaction.
        A unique violation becomes ``conflict()`` when given; a deadlock the server
        resolved by rolling back is retried (the transaction left nothing behind).
        ``append`` says the write stores events: when the database becomes unavailable
        during it, the error says the append may have been stored.
        """
        self._ensure_ready(doing)
        dialect = self.dialect
        attempt = 1
        while True:
            try:
                with self.serial, dialect.engine.connect() as conn:
                    if not write:
                        return work(conn)
                    try:
                        dialect.begin_write(conn, single=single)
                        result = work(conn)
                        conn.commit()
                    except BaseException:
                        if not conn.invalidated:
                            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                                conn.rollback()
                                dialect.after_write(conn)
                        raise
                    dialect.after_write(conn)
                    return result
            except sqlalchemy.exc.SQLAlchemyError as err:
                if conflict is not None and dialect.is_unique_violation(err):
                    raise conflict() from err
                if write and dialect.is_deadlock(err) and attempt < _DEADLOCK_ATTEMPTS:
                    attempt += 1
                    continue
                error = translate(err, doing, self.url)
                if append and isinstance(error, StoreUnavailableError):
                    error = StoreUnavailableError(f"{error}{_APPEND_OUTCOME_UNKNOWN}")
                raise error from err

    def driver_failure(self, err: BaseException, doing: str) -> StoreUnavailableError | None:
        """For an error raised outside :meth:`run` (on a connection of a lock or a
        listener's own): a :class:`~esrc_core.errors.StoreUnavailableError` saying
        ``doing`` if ``err`` comes from the database or its driver, else ``None`` (a
        bug, to be raised as it is)."""
        if isinstance(err, StoreUnavailableError) or not self.dialect.is_driver_error(err):
            return None
        return StoreUnavailableError(f"{doing}: {driver_message(err)}")
