"""Waking PostgreSQL outboxes after appends: one ``pg_notify`` for any number of them.

An append must not pay for the notification: ``NOTIFY`` inside the appending
transaction takes a cluster-wide lock at commit (appends would commit one at a time),
and a ``pg_notify`` in a transaction of its own after the append costs the writer a
second round trip. :class:`Notifier` sends it from a thread of its own instead. An
append only sets a flag; the thread clears the flag, then notifies, so every append
that committed before the clear is covered by the notification after it, and one that
committed later sets the flag again. Under load one notification covers many appends.

A notification is a hint: an outbox that misses one (the database was away, the
listener reconnected) still finds the events when its wait times out and it polls.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["Notifier"]

log = logging.getLogger("esrc.sqlalchemy")

_RETRY_PAUSE = 0.5
"""Seconds the thread waits after a failed notification before the next one."""


class Notifier:
    """Sends ``pg_notify(channel, '')`` on ``engine`` from a daemon thread, once per
    burst of :meth:`poke` calls.

    :meth:`poke` is thread-safe and returns at once; the thread starts on the first
    poke. A failed notification is logged and the next poke tries again. After
    :meth:`close` pokes are ignored.
    """

    def __init__(self, engine: Engine, channel: str) -> None:
        self._engine = engine
        self._channel = channel
        self._statement = sa.text("SELECT pg_notify(:channel, '')")
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def poke(self) -> None:
        """Ask for a notification soon (covering every append committed before)."""
        self._wanted.set()
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._stop.is_set():
                return
            thread = self._thread
            if thread is not None and thread.is_alive():
                return
            # Also after a fork: the child has the parent's Notifier but not its thread.
            self._thread = threading.Thread(
                target=self._run, name=f"esrc-notify-{self._channel}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        params: dict[str, Any] = {"channel": self._channel}
        while True:
            self._wanted.wait()
            if self._stop.is_set():
                return
            self._wanted.clear()
            try:
                with self._engine.connect() as conn:
                    conn.execute(self._statement, params)
            except Exception as err:
                log.warning("notify %s failed, retrying on the next append: %s", self._channel, err)
                self._stop.wait(_RETRY_PAUSE)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (after the notification in progress, if any). Calling it
        twice is harmless."""
        with self._start_lock:
            self._stop.set()
            thread = self._thread
        self._wanted.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
