"""The publisher contract suite: tests any relay publisher runs against its real broker.

Subclass :class:`PublisherAcceptance` in a test module (the class name must start with
``Test`` there) and provide three things:

- a ``publisher`` fixture that opens the publisher with names unique to the test and
  makes sure everything it publishes can be read back (e.g. binds a queue first);
- :meth:`PublisherAcceptance.received`, which reads back what the broker holds with a
  real consumer;
- :meth:`PublisherAcceptance.unreachable_url`, a URL of the backend whose broker
  cannot be reached.

::

    class TestMyBroker(PublisherAcceptance):
        capabilities = capabilities_of("mybroker://", "publisher")

        @pytest.fixture
        def publisher(self) -> Iterator[Publisher]:
            self.topic = f"esrc-test-{uuid.uuid4().hex}"
            with open_publisher(f"mybroker://localhost/{self.topic}") as publisher:
                yield publisher

        def received(self, n: int, timeout: float) -> list[Received]:
            ...  # read up to n messages of self.topic

        def unreachable_url(self) -> str:
            return "mybroker://127.0.0.1:9/"

Set :attr:`~PublisherAcceptance.capabilities` to what the backend declares
(``capabilities_of(url, "publisher")``): the batch tests run when it declares
``batch``, and a declared capability the publisher does not implement fails
:meth:`~PublisherAcceptance.test_declared_capabilities_are_implemented` (it is never
skipped). Broker behaviour is a class attribute: :attr:`~PublisherAcceptance.deduplicates`
(the broker drops a second message with the same id) and
:meth:`~PublisherAcceptance.refused_event` (an event the publisher refuses, to test
``PublishError.published``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from esrc_core.capabilities import Capability
from esrc_core.closing import Closeable
from esrc_core.errors import EsrcError, PublishError
from esrc_core.events import RawEvent
from esrc_core.plugins import open_publisher
from esrc_core.relay import BatchPublisher, Publisher, RelayEvent

from esrc_testkit.capabilities import check_declared, declared_capabilities

__all__ = ["PublisherAcceptance", "Received", "relay_events"]


@dataclass(frozen=True)
class Received:
    """One message as the broker holds it, decoded by the test's reader.

    ``message_id`` is the broker-level message id (AMQP ``message_id``, JetStream
    ``Nats-Msg-Id``, ...); ``event`` is the relay event rebuilt from the message's
    headers and body; ``headers`` are the raw headers, for backend-specific checks.
    """

    message_id: str
    event: RelayEvent
    headers: dict[str, Any] = field(default_factory=dict)


def relay_events(
    count: int, *, aggregates: int = 1, aggregate_type: str = "Account", start_position: int = 1
) -> list[RelayEvent]:
    """``count`` events spread round-robin over ``aggregates`` aggregates with random
    UUIDs, each aggregate's versions counting from 1, positions counting from
    ``start_position`` in list order; every event's data and metadata name its place."""
    ids = [uuid.uuid4() for _ in range(aggregates)]
    versions = [0] * aggregates
    events = []
    for index in range(count):
        which = index % aggregates
        versions[which] += 1
        events.append(
            RelayEvent(
                aggregate_type=aggregate_type,
                aggregate_id=ids[which],
                version=versions[which],
                position=start_position + index,
                event=RawEvent(f"Event{index % 3}", f"{index}".encode(), {"index": str(index)}),
            )
        )
    return events


def _ids(received: list[Received]) -> list[str]:
    return [r.event.message_id for r in received]


class PublisherAcceptance:
    """The contract every :class:`~esrc_core.relay.Publisher` keeps, as tests.

    Not collected by itself (no ``Test`` prefix); a subclass named ``Test...`` runs it.
    """

    capabilities: ClassVar[frozenset[str] | None] = None
    """The capabilities the publisher backend declares (:func:`~esrc_testkit.capabilities_of`
    with ``kind="publisher"``). Must be set: a suite that declares nothing would skip
    the batch tests of a publisher that has them."""

    timeout: ClassVar[float] = 10.0
    """Seconds :meth:`received` may wait for messages that were published."""

    deduplicates: ClassVar[bool] = False
    """True if the broker stores a message once even when it is published twice with
    the same message id (NATS JetStream)."""

    open_options: ClassVar[dict[str, Any]] = {}
    """Options :meth:`test_unreachable_broker_fails` passes to ``open_publisher``,
    e.g. a short ``timeout``."""

    # -- what a subclass provides ------------------------------------------------
    #
    # A ``publisher`` fixture: the publisher under test, open, with names unique to
    # the test, closed afterwards; everything it publishes must be visible to
    # ``received``. (Not declared here, so that subclasses may request other fixtures.)

    def received(self, n: int, timeout: float) -> list[Received]:
        """What the broker holds, in the order it delivers it: up to ``n`` messages.

        Returns as soon as ``n`` messages were read, or after ``timeout`` seconds with
        what was read so far. With ``timeout=0`` it must not wait for deliveries in
        flight, only read what the broker already holds.
        """
        raise NotImplementedError("implement received(n, timeout)")

    def unreachable_url(self) -> str:
        """A URL of this backend whose broker cannot be reached."""
        raise NotImplementedError("implement unreachable_url()")

    def open_publisher(self, url: str, **options: Any) -> Publisher:
        """Open the publisher under test for ``url``: ``open_publisher(url, **options)``
        here; :class:`~esrc_testkit.async_publishers.AsyncPublisherAcceptance` opens the
        async face instead. The ``publisher`` fixture should open with it, so that one
        fixture serves both suites."""
        return open_publisher(url, **options)

    def _open_and_publish(self, url: str, event: RelayEvent) -> None:
        publisher = self.open_publisher(url, **self.open_options)
        try:
            publisher.publish(event)
        finally:
            publisher.close()

    def refused_event(self) -> RelayEvent | None:
        """An event the publisher refuses to publish (too large, bad routing key), or
        ``None`` if there is none; used to test ``PublishError.published``."""
        return None

    # -- the contract -------------------------------------------------------------

    def _batch(self, publisher: Publisher) -> BatchPublisher:
        """``publisher`` as a batch publisher; skips the test when the backend does not
        declare ``batch``, fails it when it declares it without implementing it."""
        if Capability.BATCH not in self._declared():
            pytest.skip("the publisher backend does not declare the 'batch' capability")
        check_declared(self, {"publisher": publisher})
        assert isinstance(publisher, BatchPublisher)
        return publisher

    def _declared(self) -> frozenset[str]:
        if self.capabilities is None:
            pytest.fail(
                f"{type(self).__qualname__} must set capabilities = "
                "capabilities_of(URL, 'publisher') (what its backend declares)"
            )
        return declared_capabilities(self)

    def test_declared_capabilities_are_implemented(self, publisher: Publisher) -> None:
        """Every capability the backend declares is implemented by its publisher."""
        self._declared()
        check_declared(self, {"publisher": publisher})

    def test_published_event_is_held_by_the_broker_when_publish_returns(
        self, publisher: Publisher
    ) -> None:
        """publish returns only after the broker confirmed: read back at once."""
        [event] = relay_events(1)
        publisher.publish(event)
        got = self.received(1, timeout=0)
        assert _ids(got) == [event.message_id], f"got {_ids(got)}, want [{event.message_id}]"

    def test_publish_keeps_order(self, publisher: Publisher) -> None:
        """500 events over 20 aggregates, published one by one, arrive in order."""
        events = relay_events(500, aggregates=20)
        for event in events:
            publisher.publish(event)
        got = self.received(len(events), self.timeout)
        assert _ids(got) == [e.message_id for e in events]

    def test_publish_batch_keeps_order(self, publisher: Publisher) -> None:
        """A batch of 500 events over 20 aggregates arrives in order, after confirms."""
        batch = self._batch(publisher)
        events = relay_events(500, aggregates=20)
        batch.publish_batch(events)
        got = self.received(len(events), self.timeout)
        assert _ids(got) == [e.message_id for e in events]

    def test_batch_is_held_by_the_broker_when_publish_batch_returns(
        self, publisher: Publisher
    ) -> None:
        """publish_batch returns only after the broker confirmed every event."""
        batch = self._batch(publisher)
        events = relay_events(20, aggregates=4)
        batch.publish_batch(events)
        got = self.received(len(events), timeout=0)
        assert _ids(got) == [e.message_id for e in events]

    def test_empty_batch_publishes_nothing(self, publisher: Publisher) -> None:
        """publish_batch([]) is a no-op."""
        self._batch(publisher).publish_batch([])
        [marker] = relay_events(1)
        publisher.publish(marker)
        assert _ids(self.received(2, timeout=0)) == [marker.message_id]

    def test_message_carries_the_event(self, publisher: Publisher) -> None:
        """Type, id (uuid, str, int), version, position, name, metadata and the exact
        bytes travel with each message, and the message id is the event's."""
        events = [
            RelayEvent("Account", uuid.uuid4(), 1, 11, RawEvent("Opened", b"\x00\xff{}", {})),
            RelayEvent(
                "Order",
                "order-42/é",
                7,
                12,
                RawEvent("Shipped", "naïve ☃".encode(), {"trace": "t-1", "ü": "ß=&"}),
            ),
            RelayEvent("Invoice", 2**62, 3, 13, RawEvent("Paid", b"", {"empty": ""})),
        ]
        for event in events:
            publisher.publish(event)
        got = self.received(len(events), self.timeout)
        assert [r.event for r in got] == events
        assert [r.message_id for r in got] == [e.message_id for e in events]

    def test_same_event_twice_has_the_same_message_id(self, publisher: Publisher) -> None:
        """Publishing one event twice gives the broker the same message id twice (or,
        where the broker deduplicates, one message)."""
        first, marker = relay_events(2)
        publisher.publish(first)
        publisher.publish(first)
        publisher.publish(marker)
        if self.deduplicates:
            got = self.received(2, self.timeout)
            assert [r.message_id for r in got] == [first.message_id, marker.message_id]
        else:
            got = self.received(3, self.timeout)
            assert [r.message_id for r in got] == [
                first.message_id,
                first.message_id,
                marker.message_id,
            ]

    def test_publish_after_close_fails(self, publisher: Publisher) -> None:
        """After close, publish raises an esrc error; close twice is harmless."""
        publisher.close()
        publisher.close()
        [event] = relay_events(1)
        with pytest.raises(EsrcError):
            publisher.publish(event)
        if Capability.BATCH in self._declared():
            with pytest.raises(PublishError) as caught:
                self._batch(publisher).publish_batch([event])
            assert caught.value.published == 0

    def test_with_block_closes_the_publisher(self, publisher: Publisher) -> None:
        """``with publisher as p:`` gives the publisher itself and closes it at the end
        of the block: publishing afterwards raises an esrc error, and what was
        published inside the block reached the broker."""
        assert isinstance(publisher, Closeable), f"{publisher!r} has no __enter__/__exit__"
        first, after = relay_events(2)
        with publisher as entered:
            assert entered is publisher, f"with gave {entered!r}, want the publisher"
            publisher.publish(first)
        with pytest.raises(EsrcError):
            publisher.publish(after)
        got = _ids(self.received(2, timeout=0))
        assert got == [first.message_id], f"got {got}, want [{first.message_id}]"

    def test_unreachable_broker_fails(self) -> None:
        """A broker that cannot be reached gives an esrc error (when opening, or at the
        latest on the first publish), never a hang or a silent success; the message
        does not show the password."""
        url = self.unreachable_url()
        [event] = relay_events(1)
        with pytest.raises(EsrcError) as caught:
            self._open_and_publish(url, event)
        assert "secret-password" not in str(caught.value)

    def test_refused_event_stops_the_batch(self, publisher: Publisher) -> None:
        """A batch with a refused third event raises PublishError(published=2); the
        first two are delivered and nothing after the refused one is."""
        bad = self.refused_event()
        if bad is None:
            pytest.skip("the backend names no event its publisher refuses")
        batch = self._batch(publisher)
        first, second, after, marker = relay_events(4, aggregates=2)
        with pytest.raises(PublishError) as caught:
            batch.publish_batch([first, second, bad, after])
        assert caught.value.published == 2, f"got published={caught.value.published}, want 2"
        publisher.publish(marker)
        got = self.received(3, self.timeout)
        assert _ids(got) == [first.message_id, second.message_id, marker.message_id]

    def test_refused_event_fails_publish(self, publisher: Publisher) -> None:
        """publish of a refused event raises PublishError with published=0."""
        bad = self.refused_event()
        if bad is None:
            pytest.skip("the backend names no event its publisher refuses")
        with pytest.raises(PublishError) as caught:
            publisher.publish(bad)
        assert caught.value.published == 0
