"""The SQL store on asyncio drivers without a second copy of it: SQLAlchemy's greenlet
bridge (:data:`SQLALCHEMY_BRIDGE`), under which the store's sync code runs while its
asyncio driver's calls wait on the event loop, and :func:`blocking_face`, which gives
the hooks that work on the driver's own connection (the direct paths of
:mod:`esrc_sqlalchemy.dialects`) the blocking DB-API they are written against.

Internal: :mod:`esrc_sqlalchemy.async_store` and the dialects use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
import types
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy.util import await_, greenlet_spawn

__all__ = [
    "SQLALCHEMY_BRIDGE",
    "SqlAlchemyBridge",
    "WaitingGate",
    "WaitingLock",
    "blocking_face",
    "new_gate",
    "new_lock",
    "new_sleep",
    "run_shielded",
    "wait_for",
]

T = TypeVar("T")


class SqlAlchemyBridge:
    """The :class:`~esrc_core.bridge.Bridge` of SQLAlchemy's asyncio support: its
    ``greenlet_spawn`` and ``await_``, so that SQLAlchemy's asyncio engines (their pools
    and adapted drivers) work inside :meth:`run`."""

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` in a greenlet whose waits go to the event loop."""
        return await greenlet_spawn(fn, *args, **kwargs)

    def wait(self, awaitable: Awaitable[T], /) -> T:
        """Inside :meth:`run`: await ``awaitable`` on the loop."""
        try:
            return await_(awaitable)
        except Exception as err:
            if type(err).__name__ == "MissingGreenlet":
                raise RuntimeError(
                    "the async SQL store's sync face was used outside its bridge: call the "
                    "async store's methods, or run sync code with `await store.bridge.run(...)`"
                ) from err
            raise


SQLALCHEMY_BRIDGE = SqlAlchemyBridge()
"""The bridge of every async SQL store."""


_ASYNC_METHODS = ("execute", "commit", "fetchall")
_is_async_type: dict[type, bool] = {}


def _async_type(cls: type) -> bool:
    """Whether instances of ``cls`` are an asyncio driver's connections or cursors."""
    known = _is_async_type.get(cls)
    if known is None:
        known = _is_async_type[cls] = any(
            inspect.iscoroutinefunction(getattr(cls, name, None)) for name in _ASYNC_METHODS
        )
    return known


_PLAIN = frozenset({type(None), bool, int, float, str, bytes, tuple, list, dict})
"""Types of the values a driver hands back as they are (row counts, rows, flags)."""


def _face(value: Any, parent: _Blocking | None = None) -> Any:
    if type(value) in _PLAIN:
        return value
    if _async_type(type(value)):
        return _Blocking(value, parent)
    if isinstance(value, AsyncIterator):
        return _iterate(value)
    return value


def _iterate(values: AsyncIterator[Any]) -> Iterator[Any]:
    while True:
        try:
            value = await_(values.__anext__())
        except StopAsyncIteration:
            return
        yield _face(value)


_CALLS = (types.MethodType, types.FunctionType, types.BuiltinMethodType)


class _Blocking:
    """An asyncio driver object seen as its blocking DB-API twin: a method call that
    returns an awaitable waits for it through the bridge, setting ``x`` calls ``set_x``
    where the driver has that coroutine (psycopg's ``autocommit``), ``with`` enters
    ``async with``, the connections, cursors and async iterators it returns get the same
    face, and a cursor's ``connection`` is the face of the connection it came from."""

    __slots__ = ("_parent", "_target")

    def __init__(self, target: Any, parent: _Blocking | None = None) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_parent", parent)

    def __getattr__(self, name: str) -> Any:
        if name == "connection" and self._parent is not None:
            return self._parent
        value = getattr(self._target, name)
        if not isinstance(value, _CALLS):
            return _face(value)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await_(result)
            return _face(result, self._parent or self)

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        target = self._target
        setter = getattr(target, f"set_{name}", None)
        if setter is not None and inspect.iscoroutinefunction(setter):
            await_(setter(value))
        else:
            setattr(target, name, value)

    def __enter__(self) -> Any:
        return _face(await_(self._target.__aenter__()), self._parent)

    def __exit__(self, *exc: Any) -> None:
        await_(self._target.__aexit__(*exc))

    def __repr__(self) -> str:
        return f"blocking_face({self._target!r})"


def blocking_face(driver_connection: Any) -> Any:
    """``driver_connection`` (an asyncio driver's connection) with the blocking DB-API
    face the dialects' driver-level hooks use; only inside the bridge."""
    return _Blocking(driver_connection)


class WaitingLock:
    """A lock for code run inside the bridge: waiting for it lets the loop run the
    task that holds it (a ``threading.Lock`` would block the loop, and so the holder,
    forever). Not reentrant."""

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None

    def __enter__(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        await_(self._lock.acquire())

    def __exit__(self, *exc: object) -> None:
        assert self._lock is not None
        self._lock.release()


def new_lock(asyncio_engine: bool) -> threading.Lock | WaitingLock:
    """A lock to hold across I/O: a ``threading.Lock``, or a :class:`WaitingLock` for a
    store on an asyncio engine (whose code runs only inside the bridge)."""
    return WaitingLock() if asyncio_engine else threading.Lock()


class WaitingGate:
    """Lets at most ``size`` runs inside the bridge through at once; the others wait
    on the loop, first come first served, for one to leave.

    The async store's direct paths keep a few driver connections out of the pool; the
    gate keeps the tasks that would find none of them free from checking out (and
    back in) a pool connection per call, which costs more than waiting for a kept one.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a gate lets at least one run through, got {size}")
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __enter__(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await_(waiter)
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._leave()  # handed a place, then cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def __exit__(self, *exc: object) -> None:
        self._leave()

    def _leave(self) -> None:
        """Hand the place to the first waiter still waiting, or free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


def new_gate(asyncio_engine: bool, size: int) -> contextlib.AbstractContextManager[Any]:
    """What the direct paths hold around a run: a :class:`WaitingGate` of ``size`` on
    an asyncio engine; on a sync one nothing (each thread holds its connection, and the
    pool's own limit applies)."""
    return WaitingGate(size) if asyncio_engine else contextlib.nullcontext()


def _waiting_sleep(seconds: float) -> None:
    await_(asyncio.sleep(seconds))


def new_sleep(asyncio_engine: bool) -> Callable[[float], None]:
    """How code of a store waits a while: ``time.sleep``, or, on an asyncio engine
    (whose code runs only inside the bridge), a sleep on the event loop, so that the
    loop runs other tasks (the very transactions a relay may be waiting for) meanwhile."""
    return _waiting_sleep if asyncio_engine else time.sleep


def run_shielded(
    asyncio_engine: bool, fn: Callable[[], T], pending: set[asyncio.Future[Any]] | None = None
) -> T:
    """``fn()``; on an asyncio engine run in a task of its own that a cancellation of
    the caller does not reach: the caller gets ``CancelledError`` at once, and ``fn``
    still runs to its end (tracked in ``pending`` until then, for :func:`wait_for`).

    For work that must not stop halfway, such as creating a store's tables: a task
    cancelled in the middle of that left SQLite's connection to the file in a state
    that blocked every later writer for the busy timeout."""
    if not asyncio_engine:
        return fn()
    task = asyncio.ensure_future(greenlet_spawn(fn))
    task.add_done_callback(_retrieve)
    if pending is not None:
        pending.add(task)
        task.add_done_callback(pending.discard)
    result: T = await_(asyncio.shield(task))
    return result


def wait_for(pending: set[asyncio.Future[Any]]) -> None:
    """Inside the bridge: wait until the work :func:`run_shielded` left running in
    ``pending`` has ended (its outcome went to no one)."""
    if pending:
        await_(asyncio.wait(list(pending)))


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a shielded task's exception as seen (its caller may be gone): whoever waits
    next sees the failure again itself."""
    if not task.cancelled():
        task.exception()
