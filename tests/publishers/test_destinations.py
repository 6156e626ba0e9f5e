"""Destinations and their readers on every broker: found from the URL, publisher and
reader agree on the names, and the reader's read_all, listen and purge do what the
relay tests and the benchmark rely on."""

from __future__ import annotations

import threading

import pytest
from esrc_core.errors import BackendConfigError, UnknownBackendError
from esrc_core.relay import BatchPublisher
from esrc_faststream.destination import destination, destination_class
from esrc_faststream.loop import LoopThread
from esrc_faststream.testing import ReceivedMessage
from esrc_nats.destination import NatsDestination
from esrc_rabbitmq.destination import RabbitDestination
from esrc_redis.destination import RedisDestination
from esrc_testkit.publishers import relay_events

from .destinations import reading

BROKERS = {"rabbitmq": "amqp_url", "nats": "nats_url", "redis": "redis_url"}


def test_destination_is_found_by_the_publisher_url() -> None:
    """Each scheme gives its broker's class; the names follow the one name."""
    assert isinstance(destination("amqps://h/", "orders"), RabbitDestination)
    nats = destination("nats+tls://h:4222", "orders")
    assert isinstance(nats, NatsDestination)
    assert (nats.url, nats.stream, nats.subjects) == ("tls://h:4222", "ORDERS", "orders.>")
    redis = destination("rediss://h/0", "orders")
    assert isinstance(redis, RedisDestination)
    assert redis.publisher_url(maxlen="5") == "rediss://h/0?stream=orders&maxlen=5"
    assert destination_class("rabbitmq") is RabbitDestination


def test_unknown_broker_and_bad_name_are_refused() -> None:
    with pytest.raises(UnknownBackendError, match=r"no broker destination .* 'memory'"):
        destination("memory://", "orders")
    with pytest.raises(BackendConfigError, match=r"'orders\.eu'.*letters, digits") as caught:
        destination("redis://u:secret@h/0", "orders.eu")
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_reader_reads_all_listens_and_purges(
    broker: str, request: pytest.FixtureRequest, loop: LoopThread, unique: str
) -> None:
    """read_all returns every message once nothing more comes; listen delivers as
    messages arrive; after purge, read sees only what is published later."""
    place = destination(request.getfixturevalue(BROKERS[broker]), f"esrc-test-{unique}")
    with reading(place, loop) as reader:
        publisher = place.open_publisher()
        assert isinstance(publisher, BatchPublisher)
        try:
            first, second, third = relay_events(3), relay_events(4), relay_events(2)
            publisher.publish_batch(first)
            got = reader.read_all(2, quiet=0.3, timeout=10)
            assert [m.event for m in got] == first

            heard: list[ReceivedMessage] = []
            all_heard = threading.Event()

            def hear(message: ReceivedMessage) -> None:
                heard.append(message)
                if len(heard) == len(second):
                    all_heard.set()

            stop = reader.listen(hear)
            try:
                publisher.publish_batch(second)
                assert all_heard.wait(10), f"heard {len(heard)} of {len(second)}"
            finally:
                stop()
            assert [m.event for m in heard] == second

            publisher.publish_batch(relay_events(5))
            reader.purge()
            publisher.publish_batch(third)
            assert [m.event for m in reader.read(10, timeout=0.5)] == third
        finally:
            publisher.close()
