"""What a store's collaborators (outboxes, relay locks, operator views) share with it:
:class:`StoreExecutor`, the one way to run work on the store's database.

Internal: the store builds one and hands it to the objects it creates, so that none
of them reads the store's private state.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy.exc
from esrc_core.errors import EsrcError, StoreUnavailableError
from sqlalchemy.engine import Connection
from sqlalchemy.pool import PoolProxiedConnection

from esrc_sqlalchemy._awaiting import new_gate, new_sleep, run_shielded, wait_for
from esrc_sqlalchemy.dialects import SqlDialect
from esrc_sqlalchemy.dialects.base import driver_connection
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
_KEEP_SECONDS = 30.0
"""How long a driver connection stays out of the engine's pool for direct writes before
it goes back (where the pool's pre-ping, recycling and ``dispose`` apply to it again)."""
_SUSPECT_SECONDS = 10.0
"""After a direct write lost its connection, connections taken from the pool within
this time are pinged first: the pool may hold more that the same failure broke."""
_CHECKOUT_ATTEMPTS = 40
_KEEP_MOST = 16
"""The most driver connections kept out of the pool between direct writes (and never
more than half the pool's ``pool_size`` for all the stores on it together, so that
the rest of the store and an application sharing the engine always find
connections)."""


class _Budget:
    """How many more driver connections the stores sharing one pool may keep out of
    it between direct writes."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.left = most
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True

    def give(self) -> None:
        with self.lock:
            self.left += 1


_budgets: weakref.WeakKeyDictionary[Any, _Budget] = weakref.WeakKeyDictionary()
_budgets_lock = threading.Lock()


def _budget_of(pool: Any) -> _Budget:
    """The budget of ``pool``: half its ``pool_size`` (16 at most), for all the stores
    on it together."""
    with _budgets_lock:
        budget = _budgets.get(pool)
        if budget is None:
            size = pool.size() if hasattr(pool, "size") else 0
            budget = _budgets[pool] = _Budget(min(_KEEP_MOST, int(size) // 2))
        return budget


class _Leased:
    """A driver connection checked out of the engine's pool for direct writes, with
    its cursor."""

    __slots__ = ("cursor", "driver", "pooled", "since", "state")

    def __init__(self, pooled: PoolProxiedConnection, driver: Any, state: Any) -> None:
        self.pooled = pooled
        self.driver = driver
        self.state = state
        self.cursor = driver.cursor()
        self.since = time.monotonic()


def _return(leased: _Leased, dialect: SqlDialect) -> None:
    """Back to the engine's pool, as the pool lent it."""
    try:
        leased.cursor.close()
        dialect.direct_checkin(leased.driver, leased.state)
    except BaseException as err:
        # Half checked in: not used again. A cancellation (an interrupt) still
        # propagates, after the pool has taken the connection back as invalid.
        leased.pooled.invalidate()
        if not isinstance(err, Exception):
            raise
        return
    leased.pooled.close()


def _drain(free: list[_Leased], budget: _Budget) -> list[_Leased]:
    drained: list[_Leased] = []
    with contextlib.suppress(IndexError):
        while True:
            drained.append(free.pop())
            budget.give()
    return drained


def _give_all_back(free: list[_Leased], dialect: SqlDialect, budget: _Budget) -> None:
    for leased in _drain(free, budget):
        _return(leased, dialect)


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
        secrets: frozenset[str] = frozenset(),
    ) -> None:
        self.url = url
        """The store's URL with the password masked, for messages."""
        self.secrets = secrets
        """What the store's URL holds secret (:func:`esrc_core.urls.url_secrets`):
        redacted from the driver's messages quoted in errors."""
        self.dialect = dialect
        """The database's dialect for the store's tables."""
        self.tables: Tables = dialect.tables
        """The store's tables."""
        self.serial: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if dialect.shares_one_connection else contextlib.nullcontext()
        )
        """Held around every use of a connection where the store has only one."""
        self._ensure_ready = ensure_ready
        self._direct = dialect.direct_writes and not dialect.shares_one_connection
        self._transactional = 0
        self._transactional_lock = threading.Lock()
        self._free: list[_Leased] = []
        self._closed = False
        self._budget = _budget_of(dialect.base_engine.pool)
        asyncio_engine = bool(getattr(dialect.base_engine.dialect, "is_async", False))
        self._gate = new_gate(asyncio_engine, max(1, self._budget.most))
        self._shield_writes = asyncio_engine and dialect.writes_outlive_cancellation
        self._pending: set[asyncio.Future[Any]] = set()
        self.sleep = new_sleep(asyncio_engine)
        """How the store's code waits (polls, backoffs): ``time.sleep``, or a sleep on
        the event loop for a store on an asyncio engine."""
        # A store dropped without close() still gives its connections back as lent.
        weakref.finalize(self, _give_all_back, self._free, dialect, self._budget)
        self._suspect_until = 0.0

    @property
    def direct(self) -> bool:
        """Whether :meth:`run_direct` is available (the dialect appends on the driver
        directly, the store has more than one connection, and no test holds commits)."""
        return self._direct and not self._transactional

    def begin_transactional_writes(self) -> None:
        """For a test that holds commits: until as many
        :meth:`end_transactional_writes`, :attr:`direct` is false, so that appends run
        through :meth:`run`, in a transaction on the dialect's ``base_engine`` whose
        commit SQLAlchemy's ``commit`` event sees."""
        with self._transactional_lock:
            self._transactional += 1

    def end_transactional_writes(self) -> None:
        """Undo one :meth:`begin_transactional_writes`."""
        with self._transactional_lock:
            self._transactional -= 1

    def run_direct(
        self,
        work: Callable[[Any], T],
        doing: Callable[[], str],
        *,
        conflict: Callable[[], EsrcError] | None = None,
        append: bool = False,
        reads_only: bool = False,
    ) -> T:
        """Run ``work`` on a DB-API cursor of a driver connection the executor keeps
        checked out of the engine's pool, and return its result: the hot path of appends
        and stream reads, without SQLAlchemy's per-call connection and statement
        handling. ``work`` commits (or runs a single statement in autocommit mode)
        itself; a failure rolls back, and a broken connection is invalidated. Errors are
        translated as :meth:`run` does; ``doing`` is called only to build an error
        message. ``reads_only`` says ``work`` changes nothing: when its connection
        turns out to be lost (a server restart ended the kept sessions), it runs once
        more on a fresh connection instead of failing, as a read through the pool's
        pre-ping would.

        Only when :attr:`direct`. The caller has made the store ready. Up to half the
        pool's ``pool_size`` (16 at most, for all the stores sharing the pool)
        connections stay out of the pool between calls, each for at most 30 seconds
        (counted from when it left the pool, so that the pool's pre-ping and
        recycling still reach it); the others go back after each call, and
        :meth:`close` returns all.
        """
        # On SQLite a write outlives its cancelled caller (run_shielded); elsewhere,
        # and for reads, this is a plain call.
        return run_shielded(
            self._shield_writes and not reads_only,
            lambda: self._run_direct(work, doing, conflict, append, reads_only),
            self._pending,
        )

    def _run_direct(
        self,
        work: Callable[[Any], T],
        doing: Callable[[], str],
        conflict: Callable[[], EsrcError] | None,
        append: bool,
        reads_only: bool,
    ) -> T:
        with self._gate:
            attempt = 1
            retried = not reads_only
            while True:
                try:
                    leased = self._lease()
                except sqlalchemy.exc.SQLAlchemyError as err:
                    raise self._translated(err, doing(), append) from err
                except Exception as err:
                    if not self.dialect.is_driver_error(err):
                        raise
                    lost = self._wrapped(err, lost=True)
                    raise self._translated(lost, doing(), append) from err
                try:
                    result = work(leased.cursor)
                except BaseException as err:
                    failure = self._failed(leased, err)
                    if failure is None:
                        raise
                    if conflict is not None and self.dialect.is_unique_violation(failure):
                        raise conflict() from err
                    if self.dialect.is_deadlock(failure) and attempt < _DEADLOCK_ATTEMPTS:
                        attempt += 1
                        continue
                    if not retried and getattr(failure, "connection_invalidated", False):
                        retried = True
                        continue
                    raise self._translated(failure, doing(), append) from err
                self._give_back(leased)
                return result

    def _lease(self) -> _Leased:
        free = self._free
        while free:
            try:
                leased = free.pop()
            except IndexError:
                break
            self._budget.give()
            if time.monotonic() - leased.since < _KEEP_SECONDS:
                return leased
            self._return(leased)
        engine = self.dialect.base_engine
        attempt = 1
        while True:
            pooled = engine.raw_connection()
            try:
                driver = driver_connection(pooled)
                if (
                    attempt < _CHECKOUT_ATTEMPTS
                    and time.monotonic() < self._suspect_until
                    and not self._alive(driver)
                ):
                    pooled.invalidate()
                    attempt += 1
                    continue
                return _Leased(pooled, driver, self.dialect.direct_checkout(driver))
            except BaseException:
                pooled.invalidate()
                raise

    def _alive(self, driver: Any) -> bool:
        try:
            self.dialect.base_engine.dialect.do_ping(driver)
        except Exception:
            return False
        return True

    def _give_back(self, leased: _Leased) -> None:
        if self._closed or not self._budget.take():
            self._return(leased)
        else:
            self._free.append(leased)

    def _return(self, leased: _Leased) -> None:
        _return(leased, self.dialect)

    def _failed(self, leased: _Leased, err: BaseException) -> BaseException | None:
        """Roll back after ``err`` and keep or drop the connection; the driver error as
        SQLAlchemy's ``DBAPIError`` (for the dialect's classification), or ``None`` for
        an error that is not the driver's."""
        sa_dialect = self.dialect.base_engine.dialect
        if not isinstance(err, sa_dialect.loaded_dbapi.Error):
            # Not the driver's (a bug, an interrupt): the connection may be halfway
            # through a statement, so it is not used again.
            leased.pooled.invalidate()
            return None
        try:
            lost = bool(sa_dialect.is_disconnect(err, leased.driver, leased.cursor))
        except Exception:
            lost = True
        if lost or not self._rolled_back(leased):
            leased.pooled.invalidate(err)
            # The others may be as dead (a server restart): back to the pool, and
            # pinged when taken again for a while.
            self._suspect_until = time.monotonic() + _SUSPECT_SECONDS
            for other in self._drain():
                self._return(other)
            lost = True
        return self._wrapped(err, lost=lost)

    def _wrapped(self, err: BaseException, *, lost: bool) -> BaseException:
        """The driver error ``err`` as SQLAlchemy's ``DBAPIError`` (without the
        statement and parameters), saying whether the connection was lost."""
        dbapi_error: Any = self.dialect.base_engine.dialect.loaded_dbapi.Error
        return sqlalchemy.exc.DBAPIError.instance(
            None, None, err, dbapi_error, hide_parameters=True, connection_invalidated=lost
        )

    def _rolled_back(self, leased: _Leased) -> bool:
        """Roll back what a failed write left open; give the connection back. Whether
        that worked (else the caller invalidates it)."""
        try:
            self.dialect.direct_rollback(leased.driver)
        except Exception:
            return False
        self._give_back(leased)
        return True

    def _drain(self) -> list[_Leased]:
        return _drain(self._free, self._budget)

    def close(self) -> None:
        """Wait for the writes whose callers were cancelled (see
        :attr:`~esrc_sqlalchemy.dialects.base.SqlDialect.writes_outlive_cancellation`),
        then return the driver connections kept for direct writes to the engine's pool;
        later ones go back after each write."""
        self._closed = True
        wait_for(self._pending)
        _give_all_back(self._free, self.dialect, self._budget)

    def _translated(self, err: BaseException, doing: str, append: bool) -> EsrcError:
        error = translate(err, doing, self.url, self.secrets)
        if append and isinstance(error, StoreUnavailableError):
            error = StoreUnavailableError(f"{error}{_APPEND_OUTCOME_UNKNOWN}")
        return error

    def run(
        self,
        doing: str,
        work: Callable[[Connection], T],
        *,
        write: bool,
        single: bool = False,
        conflict: Callable[[], EsrcError] | None = None,
        append: bool = False,
        transaction: bool = False,
    ) -> T:
        """Run ``work`` on a connection of the dialect's engine and return its result,
        committing a write; translate driver errors into esrc's, saying ``doing``.

        ``single`` says the write is one statement, needing no explicit transaction;
        ``transaction`` says it is several that must commit together, so it runs in a
        transaction on the dialect's ``base_engine`` even where the store's engine
        commits each statement (PostgreSQL's autocommit).
        A unique violation becomes ``conflict()`` when given; a deadlock the server
        resolved by rolling back is retried (the transaction left nothing behind).
        ``append`` says the write stores events: when the database becomes unavailable
        during it, the error says the append may have been stored.
        """
        self._ensure_ready(doing)
        return run_shielded(
            write and self._shield_writes,
            lambda: self._run(
                doing,
                work,
                write=write,
                single=single,
                conflict=conflict,
                append=append,
                transaction=transaction,
            ),
            self._pending,
        )

    def _run(
        self,
        doing: str,
        work: Callable[[Connection], T],
        *,
        write: bool,
        single: bool,
        conflict: Callable[[], EsrcError] | None,
        append: bool,
        transaction: bool = False,
    ) -> T:
        dialect = self.dialect
        attempt = 1
        while True:
            try:
                # A test holding commits needs a transaction to hold, even where the
                # store's engine commits each statement (PostgreSQL's autocommit).
                held = self._transactional or transaction
                engine = dialect.base_engine if write and held else dialect.engine
                with self.serial, engine.connect() as conn:
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
                raise self._translated(err, doing, append) from err

    def driver_failure(self, err: BaseException, doing: str) -> StoreUnavailableError | None:
        """For an error raised outside :meth:`run` (on a connection of a lock or a
        listener's own): a :class:`~esrc_core.errors.StoreUnavailableError` saying
        ``doing`` if ``err`` comes from the database or its driver, else ``None`` (a
        bug, to be raised as it is)."""
        if isinstance(err, StoreUnavailableError) or not self.dialect.is_driver_error(err):
            return None
        return StoreUnavailableError(f"{doing}: {driver_message(err, self.secrets)}")
