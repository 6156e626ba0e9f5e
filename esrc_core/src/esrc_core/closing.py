"""Closing with ``with``: the context-manager face every store and publisher has.

:class:`Closeable` and :class:`AsyncCloseable` are protocols (what ``with x:`` and
``async with x:`` need) that also carry the one implementation: a class that names one
of them as a base inherits ``__enter__``/``__exit__`` (or ``__aenter__``/``__aexit__``)
that return the object itself and call its ``close()`` on the way out, whether the
block ended normally or by an exception (which is never swallowed).
:class:`~esrc_core.store.EventStore` and :class:`~esrc_core.async_store.AsyncEventStore`
extend them, so ``with open_event_store(url) as store:`` type-checks, and a backend
that subclasses the store protocol gets the methods for free.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, runtime_checkable

__all__ = ["AsyncCloseable", "Closeable"]


@runtime_checkable
class Closeable(Protocol):
    """Something with ``close()`` that ``with`` closes.

    Contract: ``__enter__`` returns the object itself; ``__exit__`` calls
    :meth:`close` and returns nothing, so an exception raised in the block propagates.
    :meth:`close` may be called again afterwards, harmlessly.
    """

    def close(self) -> None:
        """Release what the object holds; calling it twice is harmless."""
        ...

    def __enter__(self) -> Self:
        """The object itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """:meth:`close` it."""
        self.close()


@runtime_checkable
class AsyncCloseable(Protocol):
    """Something with a coroutine ``close()`` that ``async with`` closes; the same
    contract as :class:`Closeable`."""

    async def close(self) -> None:
        """Release what the object holds; calling it twice is harmless."""
        ...

    async def __aenter__(self) -> Self:
        """The object itself."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Await :meth:`close`."""
        await self.close()
