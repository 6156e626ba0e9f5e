"""The relay's async face: :class:`AsyncPublisher` and :class:`AsyncRelay`, which runs
the sync relay's bookkeeping (:class:`~esrc_core.relay.Relay`,
:class:`~esrc_core.runner.RelayRunner`) through the store's bridge, publishing with
the async publisher's coroutines."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from esrc_core.async_store import AsyncEventStore, sync_face
from esrc_core.backoff import Backoff
from esrc_core.bridge import Bridge
from esrc_core.capabilities import Capability, require
from esrc_core.errors import StoreClosedError
from esrc_core.relay import (
    AsyncBatchPublisher,
    AsyncPublisher,
    BatchPublisher,
    HasOutbox,
    Publisher,
    Relay,
    RelayEvent,
)
from esrc_core.relay_status import RelayStatus
from esrc_core.runner import DEFAULT_BATCH_SIZE, RelayRunner, RunnerState

__all__ = ["AsyncRelay", "InlinePublisher"]


class InlinePublisher:
    """The async face of a sync publisher whose calls do not wait on I/O (the
    in-process ``memory://`` publisher): its methods are called directly. A publisher
    that talks to a broker needs a native async face instead."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        """The sync publisher."""

    def __repr__(self) -> str:
        return f"InlinePublisher({self.publisher!r})"

    async def publish(self, event: RelayEvent) -> None:
        """The sync publisher's ``publish``."""
        self.publisher.publish(event)

    async def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        """The sync publisher's ``publish_batch`` (``publish`` per event without it)."""
        if isinstance(self.publisher, BatchPublisher):
            self.publisher.publish_batch(events)
        else:
            for event in events:
                self.publisher.publish(event)

    async def close(self) -> None:
        """Close the sync publisher."""
        self.publisher.close()


class _WaitingPublisher:
    """The sync face the relay's logic publishes through: each call waits for the
    async publisher's coroutine through the bridge."""

    def __init__(self, publisher: AsyncPublisher, bridge: Bridge) -> None:
        self._publisher = publisher
        self._wait = bridge.wait

    def publish(self, event: RelayEvent) -> None:
        self._wait(self._publisher.publish(event))

    def close(self) -> None:
        self._wait(self._publisher.close())


class _WaitingBatchPublisher(_WaitingPublisher):
    def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        publisher: Any = self._publisher
        self._wait(publisher.publish_batch(events))


def _sync_publisher(publisher: AsyncPublisher, bridge: Bridge) -> Publisher:
    if isinstance(publisher, AsyncBatchPublisher):
        return _WaitingBatchPublisher(publisher, bridge)
    if not isinstance(publisher, AsyncPublisher):
        raise TypeError(f"expected an AsyncPublisher, got {type(publisher).__name__}")
    return _WaitingPublisher(publisher, bridge)


class AsyncRelay:
    """Relays a store's events to an async publisher, in order, from a task of the
    event loop: :meth:`run_once` publishes one batch; :meth:`run` keeps relaying until
    :meth:`stop` or until its task is cancelled.

    It is :class:`~esrc_core.runner.RelayRunner` (and :class:`~esrc_core.relay.Relay`),
    run through the store's :class:`~esrc_core.bridge.Bridge`, with the same options
    and guarantees: one total order, nothing skipped, exactly the confirmed events
    marked, the relay lock taken when the store has one (another relay of the same name
    waits on standby), failures retried with ``backoff`` and configuration errors
    raised at once. The waits (for events, between attempts, for the lock) go to the
    event loop. Reading ahead is not offered.

    ``store`` is an :class:`~esrc_core.async_store.AsyncEventStore` with the ``outbox``
    capability (on its sync face: a bridged store's sync store) and is not closed.
    ``publisher`` is an :class:`AsyncPublisher`, used as it is and never closed, or a
    function without arguments that opens one (a coroutine function is awaited):
    :meth:`run` then opens it, reopens it after a failed publish and closes it at the
    end. The other options are :class:`~esrc_core.runner.RelayRunner`'s; ``on_status``
    is called on the loop's thread.

    Cancelling the task that awaits :meth:`run` stops it at its next wait: the lock is
    released and what it opened is closed before ``CancelledError`` propagates.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        publisher: AsyncPublisher | Callable[[], AsyncPublisher | Awaitable[AsyncPublisher]],
        *,
        name: str = "default",
        batch_size: int = DEFAULT_BATCH_SIZE,
        poll_interval: float = 0.5,
        log_interval: float = 10.0,
        lock_timeout: float | None = None,
        backoff: Backoff | None = None,
        on_status: Callable[[RelayStatus], None] | None = None,
        status_interval: float = 1.0,
    ) -> None:
        sync_store, bridge = sync_face(store)
        require(sync_store, Capability.OUTBOX, f"relay {name}", HasOutbox)
        self.store = store
        """The async store."""
        self.name = name
        self._bridge = bridge
        self._closed: Callable[[], bool] = lambda: bool(getattr(store, "closed", False))
        self._stopped = asyncio.Event()
        wait = bridge.wait

        def pause(seconds: float) -> None:
            wait(self._pause(seconds))

        if isinstance(publisher, AsyncPublisher):
            sync_publisher: Publisher | Callable[[], Publisher] = _sync_publisher(publisher, bridge)
        elif callable(publisher):
            opener = publisher

            def open_publisher() -> Publisher:
                opened = opener()
                if inspect.isawaitable(opened):
                    opened = wait(opened)
                return _sync_publisher(opened, bridge)

            sync_publisher = open_publisher
        else:
            raise TypeError(
                f"expected an AsyncPublisher or a function opening one, got {publisher!r}"
            )
        self._runner = RelayRunner(
            sync_store,
            sync_publisher,
            name=name,
            batch_size=batch_size,
            poll_interval=poll_interval,
            log_interval=log_interval,
            lock_timeout=lock_timeout,
            backoff=backoff,
            on_status=on_status,
            status_interval=status_interval,
            pause=pause,
        )
        self._relay: Relay | None = None
        self._given = sync_publisher
        self._publisher_of_once = sync_publisher

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` on the loop, or less when :meth:`stop` is called."""
        if self._stopped.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    def _check(self, doing: str) -> None:
        if self._closed():
            raise StoreClosedError(f"relay {self.name}: {doing}: the store is closed")

    async def run_once(self) -> int:
        """Publish one batch of unpublished events and mark what was published; see
        :meth:`Relay.run_once <esrc_core.relay.Relay.run_once>`. Takes no lock (use one
        relay per name). A publisher given as a function is opened on first use and
        kept until :meth:`close`."""
        self._check("run once")
        return await self._bridge.run(self._run_once)

    def _run_once(self) -> int:
        if self._relay is None:
            publisher = self._publisher_of_once
            if not isinstance(publisher, Publisher):
                publisher = self._publisher_of_once = publisher()
            self._relay = Relay(self._runner.outbox, publisher, batch_size=self._runner.batch_size)
        return self._relay.run_once()

    async def run(self) -> int:
        """Relay until :meth:`stop` (or cancellation); return the number of events
        relayed. Raises as :meth:`RelayRunner.run <esrc_core.runner.RelayRunner.run>`
        does. A relay runs once."""
        self._check("run")
        return await self._bridge.run(self._runner.run)

    async def close(self) -> None:
        """Close the publisher :meth:`run_once` opened (when ``publisher`` is a function
        opening one); harmless otherwise and when called twice."""
        opened = self._publisher_of_once
        if self._relay is not None and opened is not self._given:
            self._relay = None
            assert isinstance(opened, Publisher)
            self._publisher_of_once = self._given
            await self._bridge.run(opened.close)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in flight; call it from the loop's
        thread (a task, a signal handler added with ``loop.add_signal_handler``)."""
        self._runner.stop()
        self._stopped.set()

    @property
    def state(self) -> RunnerState:
        """What the relay is doing now."""
        return self._runner.state

    @property
    def relayed(self) -> int:
        """Events published and marked since :meth:`run` started."""
        return self._runner.relayed

    @property
    def status(self) -> RelayStatus:
        """The relay's state as a value."""
        return self._runner.status
