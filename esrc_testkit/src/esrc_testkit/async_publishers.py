"""The publisher contract on a backend's async face: :class:`AsyncPublisherAcceptance`.

It runs :class:`~esrc_testkit.publishers.PublisherAcceptance`'s cases, written once,
against the publisher :func:`~esrc_core.plugins.open_async_publisher` opens: each case
gets a sync face (:class:`AwaitingPublisher`) whose every call runs the async
publisher's coroutine on an event loop of its own (:class:`~esrc_testkit.LoopThread`)
and waits for it. Then comes what only the async face has: cancellation in the middle
of a batch.

::

    class TestMyBrokerAsync(AsyncPublisherAcceptance, TestMyBroker):
        pass

where ``TestMyBroker`` is the backend's :class:`PublisherAcceptance` whose
``publisher`` fixture opens its publisher with :meth:`~PublisherAcceptance.open_publisher`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from esrc_core.closing import AsyncCloseable, Closeable
from esrc_core.errors import EsrcError
from esrc_core.plugins import open_async_publisher
from esrc_core.relay import AsyncBatchPublisher, AsyncPublisher, Publisher, RelayEvent

from esrc_testkit.async_suite import LoopThread
from esrc_testkit.publishers import PublisherAcceptance, relay_events

__all__ = ["AsyncPublisherAcceptance", "AwaitingBatchPublisher", "AwaitingPublisher"]


class AwaitingPublisher(Closeable):
    """A sync :class:`~esrc_core.relay.Publisher` face of an async publisher: each
    method runs the async method on ``loop`` and waits for it."""

    def __init__(self, publisher: AsyncPublisher, loop: LoopThread) -> None:
        self.async_publisher = publisher
        """The async publisher under test."""
        self.loop = loop

    def publish(self, event: RelayEvent) -> None:
        """Await the async publisher's ``publish``."""
        self.loop.run(self.async_publisher.publish(event))

    def close(self) -> None:
        """Await the async publisher's ``close``."""
        self.loop.run(self.async_publisher.close())


class AwaitingBatchPublisher(AwaitingPublisher):
    """:class:`AwaitingPublisher` of an async publisher with ``publish_batch``."""

    async_publisher: AsyncBatchPublisher

    def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        """Await the async publisher's ``publish_batch``."""
        self.loop.run(self.async_publisher.publish_batch(events))


def awaiting_publisher(publisher: AsyncPublisher, loop: LoopThread) -> AwaitingPublisher:
    """The sync face of ``publisher``: a batch publisher's face has ``publish_batch``
    (so the ``batch`` capability is checked on what the async publisher offers)."""
    if isinstance(publisher, AsyncBatchPublisher):
        return AwaitingBatchPublisher(publisher, loop)
    return AwaitingPublisher(publisher, loop)


class AsyncPublisherAcceptance(PublisherAcceptance):
    """:class:`~esrc_testkit.publishers.PublisherAcceptance` on the backend's async
    publisher. Put it first among the bases of a subclass of the backend's sync suite:
    its :meth:`open_publisher` opens the async face (on the suite's loop) in the
    ``publisher`` fixture and in the contract's own cases."""

    loop_thread: LoopThread

    @pytest.fixture(autouse=True)
    def _publisher_loop(self) -> Iterator[None]:
        self.loop_thread = LoopThread()
        try:
            yield
        finally:
            self.loop_thread.close()

    def open_publisher(self, url: str, **options: Any) -> Publisher:
        """``await open_async_publisher(url, **options)`` on the suite's loop, behind
        its sync face."""
        opened: AsyncPublisher = self.loop_thread.run(open_async_publisher(url, **options))
        return awaiting_publisher(opened, self.loop_thread)

    def test_async_with_closes_the_publisher(self, publisher: Publisher) -> None:
        """``async with publisher as p:`` gives the async publisher itself and closes
        it at the end of the block: publishing afterwards raises an esrc error, and
        what was published inside the block reached the broker."""
        assert isinstance(publisher, AwaitingPublisher), (
            "the publisher fixture must open its publisher with self.open_publisher"
        )
        async_publisher = publisher.async_publisher
        assert isinstance(async_publisher, AsyncCloseable), (
            f"{async_publisher!r} has no __aenter__/__aexit__"
        )
        first, after = relay_events(2)

        async def scenario() -> str:
            async with async_publisher as entered:
                assert entered is async_publisher, f"got {entered!r}, want the publisher"
                await async_publisher.publish(first)
            try:
                await async_publisher.publish(after)
            except EsrcError:
                return "raised"
            return "returned"

        got = self.loop_thread.run(scenario())
        assert got == "raised", f"publish after the async with block {got}, want an EsrcError"
        received = [r.event.message_id for r in self.received(2, timeout=0)]
        assert received == [first.message_id], f"got {received}, want [{first.message_id}]"

    def _async(self, publisher: Publisher) -> AsyncBatchPublisher:
        batch = self._batch(publisher)
        assert isinstance(batch, AwaitingBatchPublisher), (
            "the publisher fixture must open its publisher with self.open_publisher"
        )
        return batch.async_publisher

    def test_cancelled_batch_leaves_the_publisher_usable(self, publisher: Publisher) -> None:
        """A task cancelled while it publishes a batch of 300 events raises
        ``CancelledError``; what reached the broker is a leading part of the batch, in
        order, and the next publish is delivered after it."""
        async_publisher = self._async(publisher)
        events = relay_events(300, aggregates=3)
        [marker] = relay_events(1, start_position=301)

        async def cancel_midway() -> bool:
            task = asyncio.ensure_future(async_publisher.publish_batch(events))
            for _ in range(3):
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return True
            return False  # finished before the cancellation reached it

        assert self.loop_thread.run(cancel_midway()), (
            "the batch of 300 finished before the cancellation reached it"
        )
        publisher.publish(marker)
        got = [r.event.message_id for r in self.received(len(events) + 1, self.timeout)]
        assert got, "the marker published after the cancellation never arrived"
        assert got[-1] == marker.message_id, "the marker is not the last message"
        sent = [e.message_id for e in events]
        assert got[:-1] == sent[: len(got) - 1], "the cancelled batch's events are not a prefix"
