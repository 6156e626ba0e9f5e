"""How esrc's one copy of the logic serves asyncio: sync code run in a greenlet that
hands each wait to the event loop.

The repository, the relay's bookkeeping and the SQL dialects are written once, as
plain functions. The async API runs them with :meth:`Bridge.run`: the function runs in
a greenlet of its own, and where it would block on I/O it calls :meth:`Bridge.wait`
with an awaitable instead, which suspends the greenlet, awaits the awaitable on the
running event loop (other tasks run meanwhile) and resumes the greenlet with the
result, or raises the awaitable's exception (``asyncio.CancelledError`` included)
at that point. No thread is involved and nothing blocks the loop.

A backend gives its async store the bridge its drivers need: the in-memory store and
stores of third parties use :data:`GREENLETS`; the SQL store uses SQLAlchemy's, under
which SQLAlchemy's asyncio drivers run.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import greenlet

__all__ = ["GREENLETS", "Bridge", "GreenletBridge"]

T = TypeVar("T")


@runtime_checkable
class Bridge(Protocol):
    """Runs sync code from async code, and lets that code wait on the event loop.

    Contract: :meth:`run` returns (or raises) what ``fn`` returns (or raises), and
    while ``fn`` runs, :meth:`wait` called from it (at any depth) awaits its awaitable
    on the loop that awaits :meth:`run`. Cancelling the task that awaits :meth:`run`
    raises ``asyncio.CancelledError`` out of the :meth:`wait` in progress, so ``fn``'s
    ``finally`` blocks and ``except BaseException`` handlers run. Several :meth:`run`
    calls may be in progress at once, one per task; each has its own greenlet, so
    thread locals are shared between them and must not hold per-call state.
    """

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)`` so that it may call :meth:`wait`."""
        ...

    def wait(self, awaitable: Awaitable[T], /) -> T:
        """Inside :meth:`run`: await ``awaitable`` on the loop and return its result.
        Raises ``RuntimeError`` (after closing a coroutine it was given) when called
        outside :meth:`run`."""
        ...


class _Runner(greenlet.greenlet):
    """The greenlet of one :meth:`GreenletBridge.run` call."""

    bridged = True


class GreenletBridge:
    """The :class:`Bridge` of esrc's own: a greenlet per :meth:`run`, switching back to
    the caller with each awaitable. The context variables of the awaiting task are
    visible to ``fn``."""

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)`` in a new greenlet, awaiting what it waits for."""
        runner = _Runner(fn, greenlet.getcurrent())
        runner.gr_context = contextvars.copy_context()
        request: Any = runner.switch(*args, **kwargs)
        while not runner.dead:
            try:
                value = await request
            except BaseException as err:
                request = runner.throw(err)
            else:
                request = runner.switch(value)
        return request  # type: ignore[no-any-return]

    def wait(self, awaitable: Awaitable[T], /) -> T:
        """Suspend the running :meth:`run` until ``awaitable`` is done."""
        current = greenlet.getcurrent()
        if not getattr(current, "bridged", False):
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            raise RuntimeError(
                "Bridge.wait() was called outside Bridge.run(): sync esrc code that waits "
                "on the event loop must be run through the bridge of its store"
            )
        parent = current.parent
        assert parent is not None  # a _Runner always has the greenlet that awaits it
        return parent.switch(awaitable)  # type: ignore[no-any-return]


GREENLETS = GreenletBridge()
"""The :class:`GreenletBridge` shared by the stores that need no driver's bridge."""
