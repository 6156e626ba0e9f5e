"""An asyncio event loop running in its own daemon thread, for synchronous callers.

esrc's :class:`~esrc_core.relay.Publisher` protocol is synchronous while the broker
clients are asyncio libraries. Each publisher owns one :class:`LoopThread`: every broker
call runs on that loop, so the client's connection is only ever touched from one thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopClosedError", "LoopThread"]

T = TypeVar("T")


class LoopClosedError(RuntimeError):
    """A coroutine was submitted to a :class:`LoopThread` that is closed."""


class LoopThread:
    """Runs one asyncio event loop in a daemon thread until :meth:`close`.

    :meth:`run` is safe to call from any thread except the loop's own; coroutines
    submitted from one thread run in the order they were submitted.
    """

    def __init__(self, name: str = "esrc-publisher") -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        try:
            self._loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run ``coro`` on the loop and return its result, waiting at most ``timeout``
        seconds (``None``: no limit).

        Raises what the coroutine raised; ``TimeoutError`` (after cancelling the
        coroutine) when it did not finish in time; :class:`LoopClosedError` when the
        loop is closed.
        """
        with self._lock:
            if self._closed:
                coro.close()
                raise LoopClosedError("the publisher's event loop is closed")
            if threading.current_thread() is self._thread:
                coro.close()
                raise RuntimeError("LoopThread.run called from the loop's own thread")
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"gave up after {timeout}s") from None
        except concurrent.futures.CancelledError:
            raise LoopClosedError("the publisher's event loop was closed") from None

    def close(self, timeout: float = 10.0) -> None:
        """Stop the loop, cancel what still runs on it and join the thread (waiting at
        most ``timeout`` seconds). Calling it twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
