"""What the broker publisher tests share: the publisher contract suite run on a
:class:`~esrc_faststream.destination.Destination` of the broker, read back with the
broker distribution's own reader."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

import pytest
from esrc_core.relay import Publisher
from esrc_faststream.destination import Destination, destination
from esrc_faststream.loop import LoopThread
from esrc_faststream.testing import BrokerReader, ReceivedMessage
from esrc_testkit.publishers import PublisherAcceptance, Received

__all__ = ["DestinationAcceptance", "reading"]


class DestinationAcceptance(PublisherAcceptance):
    """:class:`PublisherAcceptance` on the destination ``esrc-test-<unique>`` of the
    broker whose URL the fixture :attr:`url_fixture` gives; :meth:`read` returns the
    reader's messages for broker-specific checks."""

    url_fixture: ClassVar[str]
    """The name of the fixture that gives the broker's URL."""

    destination: Destination
    reader: BrokerReader

    @pytest.fixture
    def publisher(
        self, request: pytest.FixtureRequest, loop: LoopThread, unique: str
    ) -> Iterator[Publisher]:
        url: str = request.getfixturevalue(self.url_fixture)
        self.destination = destination(url, f"esrc-test-{unique}")
        with reading(self.destination, loop) as self.reader:
            publisher = self.open_publisher(self.destination.publisher_url())
            try:
                yield publisher
            finally:
                publisher.close()

    def read(self, n: int, timeout: float) -> list[ReceivedMessage]:
        """Up to ``n`` messages of the destination (see ``BrokerReader.read``)."""
        return self.reader.read(n, timeout)

    def received(self, n: int, timeout: float) -> list[Received]:
        return [Received(m.message_id, m.event, dict(m.headers)) for m in self.read(n, timeout)]


@contextlib.contextmanager
def reading(destination: Destination, loop: LoopThread) -> Iterator[BrokerReader]:
    """A reader of ``destination``, opened before anything is published; afterwards it
    is closed and the destination deleted from the broker."""
    reader = destination.reader(loop)
    try:
        yield reader
    finally:
        try:
            reader.close()
        finally:
            destination.delete(loop=loop)
