"""The broker-independent parts of the publishers: headers, routing rules, options,
the event loop thread, the projection's once-only handling, plugin registration."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import sys
import threading
import uuid
from collections.abc import Awaitable
from typing import Any
from urllib.parse import quote, unquote

import pytest
from esrc_core.errors import (
    BackendConfigError,
    BackendUnavailableError,
    BrokerUnavailableError,
    InvalidEventError,
    PublishError,
)
from esrc_core.events import RawEvent
from esrc_core.plugins import open_publisher, plugins
from esrc_core.relay import RelayEvent
from esrc_faststream.consumer import MemorySeenMessages, Projection, SeenMessages
from esrc_faststream.headers import (
    AGGREGATE_ID,
    HEADERS,
    MESSAGE_ID,
    METADATA,
    VERSION,
    check_routing_rule,
    header_value,
    metadata_json,
    relay_event_from,
    relay_headers,
    route,
)
from esrc_faststream.loop import LoopClosedError, LoopThread
from esrc_faststream.options import flag, optional_int, split_options
from esrc_faststream.publisher import AsyncBrokerPublisher
from hypothesis import given
from hypothesis import strategies as st

EVENTS = [
    RelayEvent("Account", uuid.uuid4(), 1, 1, RawEvent("Opened", b"\x00\x01", {})),
    RelayEvent("Order", "ä/%20 x", 12, 99, RawEvent("Shipped ✓", b"", {"k": "v%", "é": "\n"})),
    RelayEvent("Invoice", -7, 3, 2**40, RawEvent("Paid", b"{}", {"": ""})),
]


@pytest.mark.parametrize("event", EVENTS, ids=["uuid", "str", "int"])
def test_headers_round_trip(event: RelayEvent) -> None:
    """relay_event_from(relay_headers(e), body) gives back e; headers are ASCII."""
    headers = relay_headers(event)
    assert list(headers) == list(HEADERS)
    assert all(value.isascii() and value.isprintable() for value in headers.values())
    assert relay_event_from(headers, event.event.data) == event
    as_bytes = {name: value.encode() for name, value in headers.items()}
    assert relay_event_from(as_bytes, event.event.data) == event


def test_plain_ascii_headers_travel_unchanged() -> None:
    """An ASCII id without % is readable as is in the headers."""
    event = RelayEvent("Order", "order-42", 7, 8, RawEvent("Shipped", b""))
    headers = relay_headers(event)
    assert headers[MESSAGE_ID] == "Order/s:order-42/7"
    assert headers[AGGREGATE_ID] == "s:order-42"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({VERSION: None}, "missing headers esrc-version"),
        ({VERSION: "seven"}, "invalid literal"),
        ({AGGREGATE_ID: "x:1"}, "not produced by encode_id"),
        ({METADATA: "[1]"}, "not a JSON object"),
        ({METADATA: '{"a": 1}'}, "not a JSON object"),
        ({MESSAGE_ID: "Account/i:1/1"}, "does not match"),
        ({VERSION: "%FF"}, "can't decode"),
    ],
)
def test_malformed_headers_are_rejected(change: dict[str, str | None], message: str) -> None:
    """A missing or malformed header raises InvalidEventError naming the message."""
    headers: dict[str, object] = dict(relay_headers(EVENTS[0]))
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(InvalidEventError, match=message):
        relay_event_from(headers, b"")


def test_route_formats_and_calls() -> None:
    """Format strings see the event's fields; callables get the event."""
    event = EVENTS[2]
    assert route("{aggregate_type}.{event_name}", event) == "Invoice.Paid"
    assert route("x.{aggregate_id}.{version}", event) == "x.i:-7.3"
    assert route(lambda e: e.aggregate_type.upper(), event) == "INVOICE"
    with pytest.raises(ValueError, match="unknown field"):
        route("{position}", event)
    with pytest.raises(ValueError, match="gave ''"):
        route(lambda e: "", event)


def test_split_options_takes_known_options_out_of_the_url() -> None:
    """Known query parameters become options; keywords win; others stay."""
    url, options = split_options(
        "amqp://u:p@h:5672/vh?heartbeat=30&exchange=orders&timeout=2.5&declare=no",
        {"exchange": str, "timeout": float, "declare": flag},
        {"exchange": "billing"},
    )
    assert url == "amqp://u:p@h:5672/vh?heartbeat=30"
    assert options == {"exchange": "billing", "timeout": 2.5, "declare": False}


def test_split_options_errors() -> None:
    """An unknown keyword and a bad value are configuration errors naming the option
    and the masked URL."""
    with pytest.raises(BackendConfigError, match=r"'redis://u:\*\*\*@h': unknown options bogus"):
        split_options("redis://u:pw@h", {"stream": str}, {"bogus": 1})
    with pytest.raises(
        BackendConfigError, match=r"option maxlen in 'redis://u:\*\*\*@h/0\?maxlen=x'"
    ):
        split_options("redis://u:pw@h/0?maxlen=x", {"maxlen": optional_int}, {})
    with pytest.raises(ValueError, match="expected true or false"):
        flag("maybe")
    assert optional_int("none") is None


def test_loop_thread_runs_times_out_and_closes() -> None:
    """run returns results and raises errors; a slow coroutine times out; after close
    run raises LoopClosedError; close twice is harmless."""
    loop = LoopThread()

    async def answer() -> int:
        return 42

    async def fail() -> None:
        raise KeyError("boom")

    assert loop.run(answer(), 5) == 42
    with pytest.raises(KeyError, match="boom"):
        loop.run(fail(), 5)
    with pytest.raises(TimeoutError):
        loop.run(asyncio.sleep(30), 0.05)
    loop.close()
    loop.close()
    with pytest.raises(LoopClosedError):
        loop.run(answer(), 5)


def test_projection_applies_each_message_once() -> None:
    """Handlers run by event name, once per message id; unknown names are ignored."""
    projection = Projection()
    applied: list[str] = []

    @projection.on("Opened", "Paid")
    def apply(event: RelayEvent) -> None:
        applied.append(event.message_id)

    assert projection.event_names == {"Opened", "Paid"}
    results = [projection.handle(e) for e in (EVENTS[0], EVENTS[1], EVENTS[2], EVENTS[0])]
    assert results == [True, False, True, False]
    assert applied == [EVENTS[0].message_id, EVENTS[2].message_id]
    with pytest.raises(ValueError, match="Paid already"):
        projection.on("Paid")(apply)


def test_failed_handler_is_retried_on_redelivery() -> None:
    """A handler that raises leaves the id unrecorded; the next delivery applies it."""
    seen = MemorySeenMessages()
    assert isinstance(seen, SeenMessages)
    projection = Projection(seen)
    calls: list[int] = []

    @projection.on("Opened")
    def apply(event: RelayEvent) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        projection.handle(EVENTS[0])
    assert EVENTS[0].message_id not in seen
    assert projection.handle(EVENTS[0]) is True
    assert projection.handle(EVENTS[0]) is False
    assert (len(calls), len(seen)) == (2, 1)


def test_concurrent_deliveries_apply_once() -> None:
    """Two threads delivering the same message: exactly one applies it."""
    projection = Projection()
    applied: list[str] = []
    projection.on("Opened")(lambda e: applied.append(e.message_id))
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def deliver() -> None:
        barrier.wait()
        results.append(projection.handle(EVENTS[0]))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert applied == [EVENTS[0].message_id]


def test_publishers_are_registered() -> None:
    """Each scheme resolves to its distribution's publisher backend."""
    found = {
        scheme: (backend.name, backend.distribution)
        for scheme in ("amqp", "amqps", "nats", "redis", "rediss")
        for backend in [plugins().resolve(f"{scheme}://host/", "publisher")[0]]
    }
    assert found == {
        "amqp": ("rabbitmq", "esrc-rabbitmq"),
        "amqps": ("rabbitmq", "esrc-rabbitmq"),
        "nats": ("nats", "esrc-nats"),
        "redis": ("redis", "esrc-redis"),
        "rediss": ("redis", "esrc-redis"),
    }


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("amqp://guest:secret-password@127.0.0.1:9/", "guest:***@127.0.0.1:9"),
        ("nats://esrc:secret-password@127.0.0.1:9", "esrc:***@127.0.0.1:9"),
        ("redis://esrc:secret-password@127.0.0.1:9/0", "esrc:***@127.0.0.1:9"),
    ],
    ids=["rabbitmq", "nats", "redis"],
)
def test_unreachable_message_masks_the_password(url: str, masked: str) -> None:
    """The error names the broker URL with the password hidden."""
    with pytest.raises(BrokerUnavailableError) as caught:
        open_publisher(url, timeout=3)
    assert masked in str(caught.value)
    assert "secret-password" not in str(caught.value)


@pytest.mark.parametrize(
    ("broker", "client", "url"),
    [
        ("rabbitmq", "faststream.rabbit", "amqp://guest:guest@127.0.0.1:9/"),
        ("nats", "nats", "nats://127.0.0.1:9"),
        ("redis", "redis.asyncio", "redis://127.0.0.1:9/0"),
    ],
)
def test_missing_client_names_the_distribution(
    monkeypatch: pytest.MonkeyPatch, broker: str, client: str, url: str
) -> None:
    """Without the client library, opening names the distribution to install."""
    plugin = importlib.import_module(f"esrc_{broker}.plugin")
    monkeypatch.delitem(sys.modules, f"esrc_{broker}.publisher", raising=False)
    monkeypatch.setitem(sys.modules, client, None)
    with pytest.raises(BackendUnavailableError, match=f"pip install esrc-{broker}"):
        plugin.SPEC.open(url, {})


_PRINTABLE_ASCII_BUT_PERCENT = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


@given(st.text())
def test_header_value_percent_encodes_all_but_printable_ascii(text: str) -> None:
    """The shortcut for plain values gives what quote() gives for every text."""
    assert header_value(text) == quote(text, safe=_PRINTABLE_ASCII_BUT_PERCENT)
    assert unquote(header_value(text), errors="strict") == text


@given(st.lists(st.dictionaries(st.text(), st.text(), max_size=4), min_size=1, max_size=4))
def test_metadata_json_is_sorted_compact_ascii_json(metadatas: list[dict[str, str]]) -> None:
    """Each metadata (also one equal to the one before) encodes as json.dumps does."""
    for metadata in [*metadatas, *metadatas[:1]]:
        expected = json.dumps(metadata, sort_keys=True, separators=(",", ":"))
        assert metadata_json(metadata) == expected
        assert json.loads(metadata_json(metadata)) == metadata


def test_metadata_json_refuses_values_that_are_not_text() -> None:
    with pytest.raises(TypeError):
        metadata_json({"attempt": 3})  # type: ignore[dict-item]


def test_route_by_type_and_name_serves_each_pair_and_other_rules_per_event() -> None:
    """A rule of type and name gives each pair its own destination; a rule with the id
    or version follows every event."""
    opened = [RelayEvent("Account", n, 1, n, RawEvent("Opened", b"")) for n in range(1, 4)]
    closed = RelayEvent("Account", 1, 2, 9, RawEvent("Closed", b""))
    rule = "acct.{aggregate_type}.{event_name}"
    assert {route(rule, e) for e in opened} == {"acct.Account.Opened"}
    assert route(rule, closed) == "acct.Account.Closed"
    assert route("{aggregate_type!s}-{event_name:>8}", closed) == "Account-  Closed"
    per_event = [route("{aggregate_type}.{aggregate_id}.{version}", e) for e in opened]
    assert per_event == ["Account.i:1.1", "Account.i:2.1", "Account.i:3.1"]
    nested = RelayEvent("Account", 1, 9, 10, RawEvent("Closed", b""))
    assert route("{event_name:>{version}}", closed) == "Closed"
    assert route("{event_name:>{version}}", nested) == "   Closed"
    with pytest.raises(ValueError, match="Invalid format specifier 'i:1'"):
        route("{event_name:{aggregate_id}}", closed)  # the field is given; the spec is bad
    with pytest.raises(ValueError, match="expected '}'"):
        route("{aggregate_type", closed)
    with pytest.raises(ValueError, match="unknown field"):
        route("{}", closed)


@pytest.mark.parametrize(
    ("rule", "match"),
    [
        ("{position}", "names unknown fields position"),
        ("{}", "names unknown fields"),
        ("{aggregate_type", "expected '}'"),
        ("{event_name:{aggregate_id}}", "Invalid format specifier"),
    ],
)
def test_check_routing_rule_refuses_rules_that_cannot_route(rule: str, match: str) -> None:
    """A rule that would fail for every event is a configuration error before anything
    is published; it names the option and where."""
    with pytest.raises(BackendConfigError, match=match) as caught:
        check_routing_rule(rule, option="routing", where="'amqp://h/'")
    assert "routing rule" in str(caught.value)
    assert "'amqp://h/'" in str(caught.value)


def test_check_routing_rule_accepts_rules_and_functions() -> None:
    for rule in ("{aggregate_type}.{event_name}", "{event_name:>{version}}.{aggregate_id}"):
        check_routing_rule(rule, option="routing", where="here")
    check_routing_rule(lambda event: "anything", option="routing", where="here")


class _SetupBroker(AsyncBrokerPublisher):
    """A broker whose ``_start`` raises ``failure``."""

    broker = "setup test broker"

    def __init__(self, failure: Exception) -> None:
        self.failure = failure
        super().__init__("setup://u:secret@broker", timeout=1)

    async def _start(self) -> None:
        raise self.failure

    async def _stop(self) -> None:
        pass


def test_a_config_error_from_start_is_raised_as_it_is() -> None:
    """BackendConfigError from _start reaches the caller unchanged (never retried as an
    unavailable broker)."""
    failure = BackendConfigError("stream 'S' captures 'a.>', not 'b.>'")
    with pytest.raises(BackendConfigError) as caught:
        _SetupBroker(failure)
    assert caught.value is failure


def test_other_errors_from_start_make_the_broker_unavailable() -> None:
    with pytest.raises(BrokerUnavailableError, match=r"'setup://u:\*\*\*@broker': OSError: down"):
        _SetupBroker(OSError("down"))


@pytest.mark.parametrize(
    ("options", "match"),
    [({"timeout": 0}, "timeout must be positive"), ({"max_in_flight": 0}, "at least 1")],
)
def test_bad_timeout_or_max_in_flight_is_a_config_error(
    options: dict[str, Any], match: str
) -> None:
    with pytest.raises(BackendConfigError, match=match):
        _SlowBroker(0.0, **options)


class _SlowBroker(AsyncBrokerPublisher):
    """A broker that confirms each event ``delay`` seconds after it was sent (never,
    for the event named ``never``)."""

    broker = "slow test broker"

    def __init__(self, delay: float, **options: Any) -> None:
        self.delay = delay
        self.confirmed: list[int] = []
        super().__init__("slow://broker", **options)

    async def _start(self) -> None:
        pass

    async def _stop(self) -> None:
        pass

    async def _send(self, event: RelayEvent) -> Awaitable[Any]:
        if event.event.name == "stuck":
            await asyncio.Event().wait()  # the client never gets the event out
        if event.event.name == "absorbing":
            # A client that catches the cancellation of its send and returns anyway.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()

        async def confirm() -> None:
            if event.event.name == "never":
                await asyncio.Event().wait()
            await asyncio.sleep(self.delay)
            self.confirmed.append(event.version)

        return asyncio.ensure_future(confirm())


def _numbered(count: int, at: int | None = None, name: str = "never") -> list[RelayEvent]:
    return [
        RelayEvent("T", "t", n, n, RawEvent(name if n == at else "ok", b""))
        for n in range(1, count + 1)
    ]


def test_a_batch_may_take_longer_than_twice_the_timeout_while_each_step_is_quick() -> None:
    """The batch's deadline moves forward as confirmations come: eight confirmations
    of 0.15 s each, one at a time, take longer than two 0.5 s timeouts together."""
    with _SlowBroker(0.15, timeout=0.5, max_in_flight=1) as publisher:
        publisher.publish_batch(_numbered(8))
        assert publisher.confirmed == list(range(1, 9))


def test_a_confirmation_that_never_comes_times_out_counting_those_before_it() -> None:
    with _SlowBroker(0.0, timeout=0.2, max_in_flight=4) as publisher:
        with pytest.raises(
            PublishError, match=r"publish T/s:t/4 \(event 4 of 6\).*timed out"
        ) as err:
            publisher.publish_batch(_numbered(6, at=4))
        assert err.value.published == 3


@pytest.mark.parametrize("hang", ["stuck", "absorbing"])
def test_a_send_that_times_out_fails_counting_the_confirmed_before_it(hang: str) -> None:
    """Events 1 and 2 are confirmed while the send of event 3 hangs, either for good
    ("stuck") or until it swallows the timeout's cancellation and returns anyway
    ("absorbing"): the failure names event 3, counts 2 published, and sends nothing
    after event 3."""
    with _SlowBroker(0.0, timeout=0.2, max_in_flight=4) as publisher:
        with pytest.raises(
            PublishError, match=r"publish T/s:t/3 \(event 3 of 5\).*timed out"
        ) as err:
            publisher.publish_batch(_numbered(5, at=3, name=hang))
        assert err.value.published == 2
        # An absorbing send's event 3 may still reach the broker: it is not counted, so
        # a retry sends it again (a duplicate with the same message id, never a loss).
        assert publisher.confirmed[:2] == [1, 2]
        assert {4, 5}.isdisjoint(publisher.confirmed)
