"""The facades shared by the broker publishers: the synchronous
:class:`~esrc_core.relay.BatchPublisher` (one asyncio loop per publisher in a daemon
thread) and its async face :class:`AsyncBrokerFace` (the same coroutines on the
caller's loop), with pipelined publishing, confirms awaited in order, and one error
translation for both.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import re
import threading
from collections import deque
from collections.abc import Awaitable, Sequence
from contextvars import ContextVar
from typing import Any

from esrc_core.closing import AsyncCloseable, Closeable
from esrc_core.errors import BackendConfigError, BrokerUnavailableError, PublishError
from esrc_core.relay import RelayEvent
from esrc_core.urls import mask_url

from esrc_faststream.loop import LoopClosedError, LoopThread

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_TIMEOUT",
    "AsyncBrokerFace",
    "AsyncBrokerPublisher",
    "PartialPublish",
]

log = logging.getLogger("esrc.publisher")

DEFAULT_TIMEOUT = 10.0
"""Seconds to wait for a connection, a declaration or one broker confirmation (a
confirmation inside a batch may get up to twice this; see
:meth:`AsyncBrokerPublisher._publish_all`)."""
DEFAULT_MAX_IN_FLIGHT = 256
"""How many events of a batch may wait for their confirmation at once."""

_ON_CALLERS_LOOP: ContextVar[bool] = ContextVar("esrc_publisher_on_callers_loop", default=False)
"""Set by :meth:`AsyncBrokerFace.open` while it constructs a publisher: the publisher
then starts no loop of its own and connects nowhere; the face starts it on the caller's
loop."""


class PartialPublish(Exception):
    """Raised inside a publisher's loop: ``published`` leading events were confirmed,
    then ``__cause__`` stopped the batch. The facade turns it into
    :class:`~esrc_core.errors.PublishError`."""

    def __init__(self, published: int) -> None:
        super().__init__(f"{published} events confirmed before the failure")
        self.published = published


class AsyncBrokerPublisher(Closeable, abc.ABC):
    """Base of the broker publishers: a thread-safe synchronous
    :class:`~esrc_core.relay.BatchPublisher` over an asyncio broker client.

    Subclasses implement :meth:`_start`, :meth:`_stop` and :meth:`_send` (or override
    :meth:`_publish_all`); all of them run on the publisher's own event loop. A
    subclass checks its options before calling ``super().__init__`` and raises
    :class:`~esrc_core.errors.BackendConfigError` for one that cannot work; so does
    :meth:`_start` for a broker-side setup that no retry will fix.

    Contract kept for every subclass:

    - The constructor connects and declares what the broker needs within ``timeout``
      seconds. It raises :class:`~esrc_core.errors.BackendConfigError` for a URL,
      option or broker-side setup that cannot work (callers must not retry it), and
      :class:`~esrc_core.errors.BrokerUnavailableError` when the broker cannot be
      reached or fails otherwise (callers may retry it).
    - :meth:`publish` and :meth:`publish_batch` return only once the broker confirmed
      every event; they send events in the given order and never send an event before
      an earlier one of the same call. At most ``max_in_flight`` events wait for their
      confirmation at once; ``max_in_flight=1`` publishes one event at a time.
    - A failure raises :class:`~esrc_core.errors.PublishError` whose ``published`` is
      the number of leading events confirmed. An event the client refuses to send
      stops the batch before any later event is sent; when the broker refuses one,
      later events may already be on their way (a retry then gives duplicates, which
      the message id identifies).
    - Calls from several threads are serialized. After :meth:`close`, publishing
      raises :class:`~esrc_core.errors.PublishError`.
    """

    broker = "broker"
    """What the messages call the broker, e.g. ``"RabbitMQ"``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if timeout <= 0:
            raise BackendConfigError(
                f"open {self.broker} publisher {mask_url(url)!r}: timeout must be "
                f"positive, got {timeout}"
            )
        if max_in_flight < 1:
            raise BackendConfigError(
                f"open {self.broker} publisher {mask_url(url)!r}: max_in_flight must be "
                f"at least 1, got {max_in_flight}"
            )
        self.url = url
        self.timeout = float(timeout)
        self.max_in_flight = max_in_flight
        self._calls = threading.Lock()
        self._loop: LoopThread | None = None
        if _ON_CALLERS_LOOP.get():
            return  # AsyncBrokerFace.open starts it on the caller's loop
        self._loop = LoopThread(name=f"esrc-{self.broker.lower()}-publisher")
        try:
            self._loop.run(self._start(), self.timeout)
        except BaseException as err:
            self._shutdown()
            failure = self._open_failure(err)
            if failure is err:
                raise
            raise failure from err

    def _open_failure(self, err: BaseException) -> BaseException:
        """What opening raises for ``err``: a
        :class:`~esrc_core.errors.BackendConfigError` or an interrupt as it is, any other
        exception as :class:`~esrc_core.errors.BrokerUnavailableError`."""
        if isinstance(err, BackendConfigError) or not isinstance(err, Exception):
            return err
        return BrokerUnavailableError(
            f"open {self.broker} publisher {self.masked_url!r}: {_describe(err)}"
        )

    def _publish_failure(self, events: Sequence[RelayEvent], err: Exception) -> PublishError:
        """The :class:`~esrc_core.errors.PublishError` for ``err`` raised while
        publishing ``events``, with its cause set: how many leading events were
        confirmed, which event failed and why."""
        cause: BaseException = err
        published = 0
        if isinstance(err, PartialPublish):
            cause = err.__cause__ or err
            published = err.published
            failed = events[published]
            text = (
                f"publish {failed.message_id} (event {published + 1} of {len(events)}) to "
                f"{self.broker} {self.masked_url!r}: {_describe(cause)}"
            )
        elif isinstance(err, LoopClosedError):
            text = (
                f"publish {events[0].message_id} to {self.broker} {self.masked_url!r}: "
                "the publisher is closed"
            )
        else:
            text = (
                f"publish {events[0].message_id} to {self.broker} {self.masked_url!r}: "
                f"{_describe(err)}"
            )
        failure = PublishError(text, published=published)
        failure.__cause__ = cause
        return failure

    def _limit(self, events: Sequence[RelayEvent]) -> float:
        """A safety net above :meth:`_publish_all`'s deadlines, under which each send
        and each confirmation may take up to twice the timeout."""
        return 4 * self.timeout * (len(events) + 2)

    def _stop_failed(self, err: Exception) -> None:
        log.warning("close %s publisher %s: %s", self.broker, self.masked_url, _describe(err))

    @property
    def masked_url(self) -> str:
        """The publisher's URL with any password hidden."""
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked_url!r})"

    @abc.abstractmethod
    async def _start(self) -> None:
        """Connect and declare what the broker needs (exchange, stream).

        Raises :class:`~esrc_core.errors.BackendConfigError` when the broker's setup
        cannot work with the publisher's options (the constructor passes it on as it
        is); any other exception becomes
        :class:`~esrc_core.errors.BrokerUnavailableError`."""

    @abc.abstractmethod
    async def _stop(self) -> None:
        """Disconnect; called once, also after a failed :meth:`_start`."""

    async def _send(self, event: RelayEvent) -> Awaitable[Any]:
        """Send ``event`` and return an awaitable of the broker's confirmation.

        Returns once the event is on its way, so that an event sent by a later call
        is ordered after it; awaiting the result raises if the broker refused it.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _send or _publish_all")

    async def _publish_all(self, events: Sequence[RelayEvent]) -> None:
        """Send ``events`` in order, at most :attr:`max_in_flight` unconfirmed at a
        time, and await each confirmation in order.

        If sending an event fails, the events already sent are still awaited and
        counted. Raises :class:`PartialPublish` (chaining the cause) with the number of
        leading events confirmed; confirmations still pending after a failed one are
        cancelled, and no later event is sent. Each send and each confirmation may take
        from :attr:`timeout` up to twice that before it fails as timed out.
        """
        loop = asyncio.get_running_loop()
        timeout = self.timeout
        limit = self.max_in_flight
        pending: deque[asyncio.Future[Any]] = deque()
        confirmed = 0
        send_failure: Exception | None = None
        sending = False
        try:
            # One deadline for the sends, pushed back whenever less than ``timeout`` of
            # it is left: a timeout per step (two per event) cost more than the rest of
            # this loop.
            async with asyncio.timeout_at(loop.time() + 2 * timeout) as window:
                for event in events:
                    while len(pending) >= limit:
                        _extend(window, loop, timeout)
                        await pending[0]
                        pending.popleft()
                        confirmed += 1
                    _extend(window, loop, timeout)
                    sending = True
                    try:
                        sent = await self._send(event)
                    except Exception as err:
                        send_failure = err
                        break
                    if window.expired():  # the client caught the cancellation
                        send_failure = TimeoutError()
                        break
                    sending = False
                    pending.append(asyncio.ensure_future(sent))
        except TimeoutError as err:
            if not sending:  # a confirmation timed out
                _cancel(pending)
                raise PartialPublish(confirmed) from err
            send_failure = err  # the send itself timed out: count what came before
        except BaseException as err:
            _cancel(pending)
            if not isinstance(err, Exception):
                raise  # cancelled from outside: nothing more to count
            raise PartialPublish(confirmed) from err
        confirmed = await self._confirm_all(pending, confirmed)
        if send_failure is not None:
            raise PartialPublish(confirmed) from send_failure

    async def _confirm_all(self, pending: deque[asyncio.Future[Any]], confirmed: int) -> int:
        """Await the ``pending`` confirmations in order (each within the timeout, as in
        :meth:`_publish_all`); return ``confirmed`` plus their number. On a failure,
        cancel the rest and raise :class:`PartialPublish` with the count so far."""
        loop = asyncio.get_running_loop()
        timeout = self.timeout
        try:
            async with asyncio.timeout_at(loop.time() + 2 * timeout) as window:
                while pending:
                    _extend(window, loop, timeout)
                    await pending[0]
                    pending.popleft()
                    confirmed += 1
        except BaseException as err:
            _cancel(pending)
            if not isinstance(err, Exception):
                raise
            raise PartialPublish(confirmed) from err
        return confirmed

    def publish(self, event: RelayEvent) -> None:
        """Publish one event and wait for the broker's confirmation; raise
        :class:`~esrc_core.errors.PublishError` if it was not confirmed."""
        self.publish_batch([event])

    def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        """Publish ``events`` in order and wait until the broker confirmed all of them.

        On failure raises :class:`~esrc_core.errors.PublishError` whose ``published``
        counts the leading events the broker confirmed.
        """
        events = list(events)
        if not events:
            return
        with self._calls:
            try:
                if self._loop is None:
                    raise LoopClosedError("opened for asyncio: publish through its async face")
                self._loop.run(self._publish_all(events), self._limit(events))
            except Exception as err:
                failure = self._publish_failure(events, err)
                raise failure from failure.__cause__

    def close(self) -> None:
        """Disconnect from the broker and stop the publisher's loop. Calling it twice
        is harmless."""
        with self._calls:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._loop is None or self._loop.closed:
            return
        try:
            self._loop.run(self._stop(), self.timeout)
        except Exception as err:
            self._stop_failed(err)
        finally:
            self._loop.close()


class AsyncBrokerFace(AsyncCloseable):
    """The async face of a broker publisher, an
    :class:`~esrc_core.relay.AsyncBatchPublisher`: the publisher's own coroutines (its
    connection, sends and confirmations) run on the caller's event loop, with no thread
    of its own.

    Open it with ``await AsyncBrokerFace.open(PublisherClass, url, **options)`` (what
    :func:`~esrc_core.plugins.open_async_publisher` does for the broker backends). It
    keeps :class:`AsyncBrokerPublisher`'s contract with coroutines: opening raises
    :class:`~esrc_core.errors.BackendConfigError` or
    :class:`~esrc_core.errors.BrokerUnavailableError` as the constructor does;
    :meth:`publish_batch` returns once every event was confirmed and raises
    :class:`~esrc_core.errors.PublishError` with the count of leading events confirmed;
    after :meth:`close` (or the end of an ``async with`` block), publishing raises
    :class:`~esrc_core.errors.PublishError`.
    Use it on the loop that opened it; calls of several tasks take turns. A task
    cancelled while publishing leaves the events sent so far on their way (the relay
    marks none of them, so they are published again: duplicates, never a loss).
    """

    def __init__(self, publisher: AsyncBrokerPublisher) -> None:
        self._publisher = publisher
        self._calls = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(
        cls, publisher_class: type[AsyncBrokerPublisher], url: str, **options: Any
    ) -> AsyncBrokerFace:
        """Construct ``publisher_class(url, **options)`` (which checks the options) and
        connect it on the running loop within its ``timeout``."""
        token = _ON_CALLERS_LOOP.set(True)
        try:
            publisher = publisher_class(url, **options)
        finally:
            _ON_CALLERS_LOOP.reset(token)
        face = cls(publisher)
        try:
            await asyncio.wait_for(publisher._start(), publisher.timeout)
        except BaseException as err:
            face._closed = True
            await face._stop()
            failure = publisher._open_failure(err)
            if failure is err:
                raise
            raise failure from err
        return face

    @property
    def broker(self) -> str:
        """What the messages call the broker, e.g. ``"RabbitMQ"``."""
        return self._publisher.broker

    @property
    def url(self) -> str:
        """The publisher's URL."""
        return self._publisher.url

    @property
    def masked_url(self) -> str:
        """The publisher's URL with any password hidden."""
        return self._publisher.masked_url

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or opening failed)."""
        return self._closed

    def __repr__(self) -> str:
        return f"AsyncBrokerFace({self._publisher!r})"

    async def publish(self, event: RelayEvent) -> None:
        """Publish one event and wait for the broker's confirmation; raise
        :class:`~esrc_core.errors.PublishError` if it was not confirmed."""
        await self.publish_batch([event])

    async def publish_batch(self, events: Sequence[RelayEvent]) -> None:
        """Publish ``events`` in order and wait until the broker confirmed all of them;
        see :meth:`AsyncBrokerPublisher.publish_batch`."""
        events = list(events)
        if not events:
            return
        publisher = self._publisher
        async with self._calls:
            try:
                if self._closed:
                    raise LoopClosedError("the publisher is closed")
                await asyncio.wait_for(publisher._publish_all(events), publisher._limit(events))
            except Exception as err:
                failure = publisher._publish_failure(events, err)
                raise failure from failure.__cause__

    async def close(self) -> None:
        """Disconnect from the broker. Calling it twice is harmless."""
        async with self._calls:
            if self._closed:
                return
            self._closed = True
            await self._stop()

    async def _stop(self) -> None:
        publisher = self._publisher
        try:
            await asyncio.wait_for(publisher._stop(), publisher.timeout)
        except Exception as err:
            publisher._stop_failed(err)


def _cancel(pending: deque[asyncio.Future[Any]]) -> None:
    for future in pending:
        future.cancel()


def _extend(window: asyncio.Timeout, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
    """Push ``window``'s deadline to ``2 * timeout`` from now when less than ``timeout``
    of it is left, so the next step has at least ``timeout`` seconds.

    Raises ``TimeoutError`` if the window already expired: a client that caught the
    cancellation and returned anyway must not hide the timeout."""
    if window.expired():
        raise TimeoutError
    when = window.when()
    now = loop.time()
    if when is not None and when - now < timeout:
        window.reschedule(now + 2 * timeout)


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def _describe(err: BaseException) -> str:
    """``err`` as text for a message, with any password in a URL inside it hidden."""
    text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    if isinstance(err, TimeoutError) and not str(err):
        text = "timed out"
    return _URL_IN_TEXT.sub(lambda found: mask_url(found.group(0)), text)
