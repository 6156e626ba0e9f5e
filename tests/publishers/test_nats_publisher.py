"""The NATS JetStream publisher against the real server (ESRC_TEST_NATS_URL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, ClassVar

import nats
import pytest
from esrc_core.errors import BackendConfigError
from esrc_core.plugins import open_publisher
from esrc_core.relay import Publisher, RelayEvent
from esrc_faststream.headers import header_value
from esrc_faststream.loop import LoopThread
from esrc_nats.destination import NatsDestination
from esrc_testkit.async_publishers import AsyncPublisherAcceptance
from esrc_testkit.publishers import relay_events
from nats.js.api import StreamConfig

from esrc_testkit import capabilities_of

from .destinations import DestinationAcceptance

CONFIG_ERROR_WITHIN = 3.0
"""Seconds in which a stream configuration that cannot work must fail opening: once,
not after retries (the publisher's timeout is 5 s)."""


class TestNatsPublisher(DestinationAcceptance):
    """The publisher contract on NATS JetStream."""

    url_fixture = "nats_url"
    capabilities = capabilities_of("nats://", "publisher")
    deduplicates = True
    open_options: ClassVar[dict[str, Any]] = {"timeout": 2}

    def unreachable_url(self) -> str:
        return "nats://esrc:secret-password@127.0.0.1:9"

    def refused_event(self) -> RelayEvent | None:
        [event] = relay_events(1)
        return RelayEvent(
            event.aggregate_type,
            event.aggregate_id,
            event.version,
            event.position,
            type(event.event)(event.event.name, b"x" * (8 * 1024 * 1024)),
        )

    def test_message_headers_and_subject(self, publisher: Publisher) -> None:
        """Nats-Msg-Id is the message id; the subject follows the rule."""
        [event] = relay_events(1)
        publisher.publish(event)
        [message] = self.read(1, timeout=0)
        assert message.headers["Nats-Msg-Id"] == header_value(event.message_id)
        assert message.destination.endswith(f".Account.{event.event.name}")


class TestNatsPublisherAsync(AsyncPublisherAcceptance, TestNatsPublisher):
    """The same contract (and the NATS-specific cases above) on the publisher's async face
    (``open_async_publisher``), run on the caller's event loop."""


@pytest.fixture
def other_stream(nats_url: str, loop: LoopThread, unique: str) -> Iterator[NatsDestination]:
    """The destination ``esrc-test-<unique>``, whose stream exists but captures the
    subjects ``other-<unique>.>``."""
    destination = NatsDestination(nats_url, f"esrc-test-{unique}")

    async def create() -> None:
        client = await nats.connect(nats_url)
        try:
            await client.jetstream().add_stream(
                StreamConfig(name=destination.stream, subjects=[f"other-{unique}.>"])
            )
        finally:
            await client.close()

    loop.run(create(), 10)
    yield destination
    destination.delete(loop=loop)


def _open_fails_at_once(url: str, match: str) -> BackendConfigError:
    started = time.monotonic()
    with pytest.raises(BackendConfigError, match=match) as caught:
        open_publisher(url, timeout=5)
    took = time.monotonic() - started
    assert took < CONFIG_ERROR_WITHIN, f"took {took:.1f}s, want under {CONFIG_ERROR_WITHIN}s"
    return caught.value


def test_stream_with_other_subjects_is_a_config_error(other_stream: NatsDestination) -> None:
    """An existing stream that does not capture the publisher's subjects fails opening
    at once with a BackendConfigError naming the stream, what it captures and the fix."""
    error = _open_fails_at_once(other_stream.publisher_url(), f"'{other_stream.stream}'")
    assert "captures other-" in str(error)
    assert "set subjects to one of those" in str(error)


def test_missing_stream_without_create_is_a_config_error(nats_url: str, unique: str) -> None:
    """create_stream=false requires the stream to exist: a BackendConfigError at once."""
    destination = NatsDestination(nats_url, f"esrc-test-{unique}")
    error = _open_fails_at_once(destination.publisher_url(create_stream="false"), "does not exist")
    assert "create_stream=true" in str(error)


def test_stream_whose_subjects_overlap_another_is_a_config_error(
    other_stream: NatsDestination, nats_url: str, unique: str
) -> None:
    """A stream JetStream refuses to create (its subjects overlap another stream's) is
    a BackendConfigError at once."""
    url = f"{nats_url}?stream=ESRC_TEST_{unique}_B&subjects=other-{unique}.>"
    _open_fails_at_once(url, "cannot be created")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ("stream=A.B", "not a JetStream stream name"),
        ("subject={aggregate}.x", "names unknown fields aggregate"),
        ("timeout=0", "timeout must be positive"),
        ("max_in_flight=x", "option max_in_flight"),
    ],
)
def test_bad_options_are_config_errors(options: str, match: str) -> None:
    """Options that cannot work fail before connecting, naming the masked URL."""
    with pytest.raises(BackendConfigError, match=match) as caught:
        open_publisher(f"nats://esrc:secret@127.0.0.1:9?{options}")
    assert "secret" not in str(caught.value)


def test_malformed_server_is_a_config_error() -> None:
    """A second server with a port that is not a number fails before connecting."""
    with pytest.raises(BackendConfigError, match="Port could not be cast"):
        open_publisher("nats://127.0.0.1:4222,nats://127.0.0.1:x")
