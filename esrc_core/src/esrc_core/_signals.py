"""Stopping long-running work cleanly on SIGINT and SIGTERM: the one helper the relay
runner and the command line share."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = ["STOP_SIGNALS", "stop_on_signals"]

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
"""The signals that ask a long-running command to stop: Ctrl-C and ``kill``."""


@contextlib.contextmanager
def stop_on_signals(
    stop: Callable[[signal.Signals], object], signals: tuple[signal.Signals, ...] = STOP_SIGNALS
) -> Iterator[None]:
    """Within the block, the first of ``signals`` calls ``stop`` with that signal, so
    the work in hand can finish cleanly.

    The handlers in place before are then restored, so a second signal acts as it did
    before the block: with Python's defaults, SIGINT raises ``KeyboardInterrupt`` and
    SIGTERM ends the process at once. They are restored when the block ends, too.
    ``stop`` runs in the signal handler: it must only set a flag or an event.

    Python runs signal handlers in the main thread only, so in any other thread this
    installs nothing and the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def handle(signum: int, _frame: FrameType | None) -> None:
        restore()
        stop(signal.Signals(signum))

    for sig in signals:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        restore()
