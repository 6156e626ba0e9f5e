"""Waking outboxes after appends: one notification for any number of them, sent from
a thread so that appends do not pay for it (the database's dialect says how to send
one; PostgreSQL sends ``pg_notify``, see :mod:`esrc_sqlalchemy.dialects.postgresql`).
:class:`Notifier` works so:

- an append only marks a notification as due;
- the thread takes the mark, then notifies, so every append that committed before the
  mark was taken is covered by the notification after it, and one that committed later
  marks it due again;
- under load, one notification covers many appends.

A notification that fails stays due and is tried again after a pause that grows by
:data:`RETRY` (esrc's one backoff formula: 0.5 s doubling up to 5 s). On
:meth:`Notifier.close`, one that is still due is sent before the thread ends.

A notification is a hint: an outbox that misses one (the database was away, the
listener reconnected) still finds the events when its wait times out and it polls.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable

from esrc_core.backoff import Backoff

__all__ = ["RETRY", "Notifier"]

log = logging.getLogger("esrc.sqlalchemy")

RETRY = Backoff(base_delay=0.5, max_delay=5.0, jitter=0.0)
"""The pauses after failed notifications: 0.5 s, doubling while they keep failing, at
most 5 s, without limit (a notification is a hint: nothing is lost while it fails)."""


class Notifier:
    """Calls ``send`` (one notification; it raises when that failed) from a daemon
    thread, once per burst of :meth:`poke` calls; ``channel`` names it in the thread's
    name and in log messages.

    :meth:`poke` is thread-safe and returns at once; the thread starts on the first
    poke. The thread holds the notifier only weakly: a notifier that is dropped
    without :meth:`close` (with the store that owned it) stops its thread too.
    """

    def __init__(self, send: Callable[[], None], channel: str) -> None:
        self._channel = channel
        self._send = send
        self._signals = _Signals()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # Stop the thread (after it sends what is due) when the notifier is collected
        # without close(): the thread holds what it needs to send, not the notifier.
        weakref.finalize(self, self._signals.stop)

    @property
    def thread(self) -> threading.Thread | None:
        """The sending thread, ``None`` before the first :meth:`poke` (for tests)."""
        return self._thread

    def poke(self) -> None:
        """Mark a notification as due (covering every append committed before)."""
        signals = self._signals
        if signals.stopped.is_set():
            return
        signals.due = True
        signals.wake.set()
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._signals.stopped.is_set():
                return
            thread = self._thread
            if thread is not None and thread.is_alive():
                return
            # Also after a fork: the child has the parent's Notifier but not its thread.
            self._thread = threading.Thread(
                target=_notify_loop,
                args=(self._send, self._signals, self._channel),
                name=f"esrc-notify-{self._channel}",
                daemon=True,
            )
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Send the notification still due, if any, and stop the thread (waiting up to
        ``timeout`` seconds). Calling it twice is harmless; pokes after it are ignored."""
        with self._start_lock:
            self._signals.stop()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self._signals.due and (thread is None or not thread.is_alive()):
            # A poke that slipped in as the thread was ending.
            self._signals.due = False
            try:
                self._send()
            except Exception as err:
                log.warning(
                    "notify %s failed at close: %s",
                    self._channel,
                    err,
                    extra={"channel": self._channel, "error": str(err)},
                )


class _Signals:
    """What a :class:`Notifier` and its thread share (the thread must not hold the
    notifier itself)."""

    def __init__(self) -> None:
        self.due = False
        """Whether a notification is due; set by pokes, taken by the thread."""
        self.wake = threading.Event()
        """Set when the thread has something to do: a poke, a retry, a stop."""
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()
        self.wake.set()


def _notify_loop(send: Callable[[], None], signals: _Signals, channel: str) -> None:
    failures = 0
    while True:
        signals.wake.wait()
        signals.wake.clear()
        if signals.due:
            signals.due = False  # taken before the notification: later pokes mark it again
            try:
                send()
            except Exception as err:
                signals.due = True
                failures += 1
                if failures == 1:
                    log.warning(
                        "notify %s failed, retrying: %s",
                        channel,
                        err,
                        extra={"channel": channel, "error": str(err)},
                    )
                else:
                    log.debug(
                        "notify %s failed again: %s",
                        channel,
                        err,
                        extra={"channel": channel, "error": str(err)},
                    )
                del err  # its traceback would keep the failed attempt's frames alive
                if signals.stopped.is_set():
                    return
                signals.stopped.wait(RETRY.delay(failures))
                signals.wake.set()
                continue
            if failures:
                log.info("notify %s works again", channel, extra={"channel": channel})
                failures = 0
        if signals.stopped.is_set() and not signals.due:
            return
