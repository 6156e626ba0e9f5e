"""Reading relayed messages back from NATS JetStream in tests and benchmarks:
:class:`NatsReader`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import unquote

import nats.js.errors
from esrc_faststream.loop import LoopThread
from esrc_faststream.testing import BrokerReader, ReceivedMessage
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from esrc_nats._client import connect
from esrc_nats.publisher import MSG_ID_HEADER

__all__ = ["NatsReader"]


class NatsReader(BrokerReader):
    """A :class:`~esrc_faststream.testing.BrokerReader` of the NATS JetStream
    ``stream`` at ``url``, whose messages are on ``subjects``: reads the stream from the
    message after the last one it held when the reader opened (from the first, if the
    stream did not exist yet).

    :meth:`read` goes through an ordered consumer, and returns only messages the
    stream holds; :meth:`listen` subscribes to the subjects on the core connection
    (messages as they are published, before the stream acknowledges them);
    :meth:`purge` purges the stream. ``ReceivedMessage.raw`` is the ``nats.aio.msg.Msg``.
    """

    def __init__(
        self, url: str, stream: str, subjects: str, loop: LoopThread, *, timeout: float = 30
    ) -> None:
        self.url = url
        self.stream = stream
        self.subjects = subjects
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._ordered: Subscription | None = None
        self._next = 1
        super().__init__(loop, timeout=timeout)

    async def _open(self) -> None:
        self._client = await connect(self.url, timeout=self.timeout)
        self._js = self._client.jetstream(timeout=self.timeout)
        self._next = await self._last_held() + 1

    def _ready(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("the NATS reader is closed")
        return self._js

    async def _last_held(self) -> int:
        """The stream's last sequence number, 0 while the stream does not exist."""
        try:
            info = await self._ready().stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            return 0
        return info.state.last_seq

    async def _fetch(self, limit: int) -> list[ReceivedMessage]:
        held = await self._last_held()
        got: list[ReceivedMessage] = []
        if held < self._next:
            return got
        if self._ordered is None:
            self._ordered = await self._ready().subscribe(
                self.subjects,
                stream=self.stream,
                ordered_consumer=True,
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self._next
                ),
            )
        while self._next <= held and len(got) < limit:
            message = await self._ordered.next_msg(timeout=self.timeout)
            sequence = message.metadata.sequence.stream
            if sequence >= self._next:
                got.append(_received(message))
                self._next = sequence + 1
        return got

    async def _listen(
        self, on_message: Callable[[ReceivedMessage], None]
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        self._ready()
        assert self._client is not None

        async def deliver(message: Msg) -> None:
            on_message(_received(message))

        subscription = await self._client.subscribe(self.subjects, cb=deliver)
        # A round trip, so the server has the subscription before listen() returns:
        # a message published from another connection right after is delivered.
        await self._client.flush()
        return subscription.unsubscribe

    async def _purge(self) -> None:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._ready().purge_stream(self.stream)
        await self._drop_ordered()
        self._next = await self._last_held() + 1

    async def _drop_ordered(self) -> None:
        ordered, self._ordered = self._ordered, None
        if ordered is not None:
            with contextlib.suppress(Exception):
                await ordered.unsubscribe()

    async def _close(self) -> None:
        await self._drop_ordered()
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            await client.close()


def _received(message: Msg) -> ReceivedMessage:
    headers: dict[str, Any] = dict(message.headers or {})
    return ReceivedMessage(
        unquote(headers.get(MSG_ID_HEADER, "")),
        message.subject,
        headers,
        message.data,
        message,
    )
