"""A relay's Prometheus metrics and health check: the text format as written, the
metrics of a runner relaying in this process scraped over HTTP, and ``esrc relay
--metrics-port`` as a process whose store or broker goes away and comes back,
``/healthz`` turning 503 and 200 again and the error counter rising. The process
logs JSON lines (``--log-format json``), from which the tests read the port."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from esrc_core._exposition import Family, render
from esrc_core.backoff import Backoff
from esrc_core.errors import BrokerUnavailableError
from esrc_core.events import RawEvent
from esrc_core.inspection import RelayProgress
from esrc_core.relay_metrics import MetricsServer, health, metrics_text
from esrc_core.relay_status import RelayStatus
from esrc_core.runner import RelayRunner
from esrc_memory.publisher import MemoryPublisher
from esrc_memory.store import MemoryEventStore
from esrc_sqlalchemy.store import SqlEventStore
from esrc_sqlalchemy.testing import drop_store_tables

from .harness import RelayProcess, TcpProxy, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)\Z")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|\Z)')


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], text)


def parse(text: str) -> Samples:
    """The samples of a page in the Prometheus text format, checking its rules:
    every sample follows the ``# TYPE`` of its metric, HELP and TYPE come once per
    metric, counters end with ``_total``, the page ends with a line feed."""
    assert text.endswith("\n"), "the page must end with a line feed"
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: Samples = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helps, f"two HELP lines for {name}"
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"two TYPE lines for {name}"
            assert kind in {"counter", "gauge"}, line
            assert kind != "counter" or name.endswith("_total"), line
            types[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match is not None, f"not a sample line: {line!r}"
        name, labels_text, value = match.groups()
        assert name in types, f"sample before the TYPE of {name}"
        labels = frozenset((m[1], _unescape(m[2])) for m in _LABEL.finditer(labels_text or ""))
        assert "".join(m[0] for m in _LABEL.finditer(labels_text or "")) == (labels_text or "")
        samples[(name, labels)] = float(value)
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of metric ``name`` with exactly ``labels``, or ``None``."""
    return samples.get((name, frozenset(labels.items())))


def _get(url: str) -> tuple[int, str, str]:
    """GET ``url``: status, content type, body (an error status is returned too)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def scrape(base: str) -> Samples:
    """``base``/metrics, parsed."""
    status, content_type, body = _get(f"{base}/metrics")
    assert status == 200, body
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    return parse(body)


def healthz(base: str) -> tuple[int, dict[str, Any]]:
    """``base``/healthz: the status code and the JSON body."""
    status, content_type, body = _get(f"{base}/healthz")
    assert content_type == "application/json"
    return status, json.loads(body)


# --- the text format ---------------------------------------------------------------------


def test_the_text_format_escapes_help_and_label_values() -> None:
    family = Family("x_total", "counter", 'back\\slash and\nline "quoted"')
    family.add(3, relay='a"b\\c\nd')
    page = render([family, Family("y", "gauge", "no samples"), Family("z", "gauge", "z").add(0.25)])
    assert page == (
        '# HELP x_total back\\\\slash and\\nline "quoted"\n'
        "# TYPE x_total counter\n"
        'x_total{relay="a\\"b\\\\c\\nd"} 3\n'
        "# HELP y no samples\n"
        "# TYPE y gauge\n"
        "# HELP z z\n"
        "# TYPE z gauge\n"
        "z 0.25\n"
    )
    assert parse(page) == {
        ("x_total", frozenset({("relay", 'a"b\\c\nd')})): 3.0,
        ("z", frozenset()): 0.25,
    }


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Family("relayed", "counter", "h"), "should end with _total"),
        (lambda: Family("9lives", "gauge", "h"), "not a metric name"),
        (lambda: Family("g", "gauge", "h").add(1, **{"bad-label": "x"}), "not label names"),
    ],
    ids=["counter-without-total", "bad-name", "bad-label"],
)
def test_a_family_refuses_what_prometheus_would(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# --- the relay's metrics and health from its status --------------------------------------

NOW = dt.datetime(2026, 12, 2, 13, 10, 0, tzinfo=dt.UTC)

STATUS = RelayStatus(
    name='orders "eu"',
    state="retrying",
    holds_lock=True,
    took_over=False,
    relayed=1200,
    last_position=3456,
    consecutive_failures=2,
    failed_attempts=5,
    locks_lost=1,
    last_error="StoreUnavailableError: read the outbox of orders: connection refused",
    updated_at=NOW,
    pid=4242,
    batches=31,
    last_batch_at=NOW - dt.timedelta(seconds=30),
    errors={"store": 4, "publisher": 1, "lock": 0, "config": 0, "other": 0},
    last_error_kind="store",
)


def test_every_metric_comes_from_the_status_and_the_progress() -> None:
    progress = RelayProgress('orders "eu"', 1200, 17, NOW - dt.timedelta(seconds=12.5))
    samples = parse(metrics_text(STATUS, progress, NOW))
    relay = {"relay": 'orders "eu"'}
    assert sample(samples, "esrc_relay_events_relayed_total", **relay) == 1200
    assert sample(samples, "esrc_relay_batches_total", **relay) == 31
    errors = {
        k: sample(samples, "esrc_relay_errors_total", **relay, kind=k)
        for k in ("store", "publisher", "lock", "config", "other")
    }
    assert errors == {"store": 4, "publisher": 1, "lock": 0, "config": 0, "other": 0}
    assert sample(samples, "esrc_relay_locks_lost_total", **relay) == 1
    assert sample(samples, "esrc_relay_lag_events", **relay) == 17
    assert sample(samples, "esrc_relay_lag_seconds", **relay) == 12.5
    assert sample(samples, "esrc_relay_lock_held", **relay) == 1
    states = {
        s: sample(samples, "esrc_relay_state", **relay, state=s)
        for s in ("starting", "standby", "relaying", "retrying", "stopped")
    }
    assert states == {"starting": 0, "standby": 0, "relaying": 0, "retrying": 1, "stopped": 0}
    assert sample(samples, "esrc_relay_healthy", **relay) == 0
    assert sample(samples, "esrc_relay_consecutive_failures", **relay) == 2
    last_batch = sample(samples, "esrc_relay_last_batch_timestamp_seconds", **relay)
    assert last_batch == (NOW - dt.timedelta(seconds=30)).timestamp()
    assert sample(samples, "esrc_relay_position", **relay) == 3456


def test_without_progress_or_a_batch_those_metrics_have_no_sample() -> None:
    fresh = RelayStatus(**{**vars(STATUS), "last_batch_at": None, "last_position": None})
    names = {name for name, _ in parse(metrics_text(fresh, None, NOW))}
    absent = {
        "esrc_relay_lag_events",
        "esrc_relay_lag_seconds",
        "esrc_relay_position",
        "esrc_relay_last_batch_timestamp_seconds",
    }
    assert not names & absent
    caught_up = RelayProgress('orders "eu"', 1200, 0, None)
    samples = parse(metrics_text(fresh, caught_up, NOW))
    assert sample(samples, "esrc_relay_lag_seconds", relay='orders "eu"') == 0


def test_health_is_503_with_the_error_while_failing_and_200_when_well() -> None:
    code, body = health(STATUS)
    assert (code, body) == (
        503,
        {
            "relay": 'orders "eu"',
            "healthy": False,
            "state": "retrying",
            "holds_lock": True,
            "consecutive_failures": 2,
            "error_kind": "store",
            "error": STATUS.last_error,
        },
    )
    well = RelayStatus(**{**vars(STATUS), "state": "standby", "consecutive_failures": 0})
    code, body = health(well)
    assert code == 200
    assert body["healthy"] is True
    assert "error" not in body


# --- a runner in this process, scraped over HTTP -----------------------------------------


def _append(store: MemoryEventStore, key: str, count: int) -> None:
    events = [RawEvent("Opened", b"{}", {})] + [RawEvent("Deposited", b"{}", {})] * (count - 1)
    store.add_aggregate("Account", key, events)


@pytest.fixture
def running() -> Iterator[tuple[RelayRunner, MemoryEventStore, str]]:
    """A runner relaying ``memory://`` to the memory publisher on a thread, with its
    metrics served on a port the system picked; yields it, its store and the base URL."""
    store = MemoryEventStore()
    runner = RelayRunner(store, MemoryPublisher(), name="metrics", poll_interval=0.02)
    thread = threading.Thread(target=runner.run, daemon=True)
    with MetricsServer(lambda: runner.status, runner.progress) as server:
        assert server.port > 0
        thread.start()
        try:
            yield runner, store, server.url
        finally:
            runner.stop()
            thread.join(30)
    store.close()


def test_counters_move_as_events_are_relayed(
    running: tuple[RelayRunner, MemoryEventStore, str],
) -> None:
    runner, store, base = running
    wait_until(lambda: runner.state == "relaying", "the runner relays")
    before = scrape(base)
    assert sample(before, "esrc_relay_events_relayed_total", relay="metrics") == 0
    assert sample(before, "esrc_relay_lock_held", relay="metrics") == 1
    _append(store, "a", 3)
    _append(store, "b", 2)
    wait_until(lambda: runner.relayed == 5, "the runner relayed the 5 events")
    after = scrape(base)
    assert sample(after, "esrc_relay_events_relayed_total", relay="metrics") == 5
    batches = sample(after, "esrc_relay_batches_total", relay="metrics")
    assert batches is not None
    assert 1 <= batches <= 2
    assert sample(after, "esrc_relay_lag_events", relay="metrics") == 0
    assert sample(after, "esrc_relay_lag_seconds", relay="metrics") == 0
    assert sample(after, "esrc_relay_position", relay="metrics") == 5
    assert sample(after, "esrc_relay_last_batch_timestamp_seconds", relay="metrics") is not None
    assert healthz(base) == (
        200,
        {
            "relay": "metrics",
            "healthy": True,
            "state": "relaying",
            "holds_lock": True,
            "consecutive_failures": 0,
        },
    )


def test_other_paths_are_404_and_head_has_no_body(
    running: tuple[RelayRunner, MemoryEventStore, str],
) -> None:
    _, _, base = running
    status, _, _ = _get(f"{base}/nothing-here")
    assert status == 404
    request = urllib.request.Request(f"{base}/metrics", method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) > 0
        assert response.read() == b""


def test_a_runner_back_on_standby_after_a_failure_is_healthy_again() -> None:
    """A runner whose first attempt failed (the broker away) and whose next attempt
    finds another relay holding the lock is well again on standby: the store answered
    and the publisher opened, so /healthz would be 200 and the error stays counted."""
    store = MemoryEventStore()
    holder = store.relay_lock("busy")
    assert holder.acquire(0.0)
    opened: list[int] = []

    def open_publisher() -> MemoryPublisher:
        opened.append(1)
        if len(opened) == 1:
            raise BrokerUnavailableError("open memory://: the broker is away (on purpose)")
        return MemoryPublisher()

    statuses: list[RelayStatus] = []
    runner = RelayRunner(
        store,
        open_publisher,
        name="busy",
        backoff=Backoff(base_delay=0.01, max_delay=0.01),
        on_status=statuses.append,
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: runner.state == "standby", "the runner stands by")
        status = runner.status
    finally:
        runner.stop()
        thread.join(30)
        holder.release()
        store.close()
    assert [s.state for s in statuses][:3] == ["starting", "retrying", "starting"], statuses
    assert any(not s.healthy and s.last_error_kind == "publisher" for s in statuses)
    assert status.healthy, status
    assert (status.consecutive_failures, status.failed_attempts) == (0, 1)
    assert status.errors["publisher"] == 1
    assert health(status)[0] == 200


# --- esrc relay --metrics-port as a process ----------------------------------------------


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (it was free a moment ago): for a
    server that is away, or for the relay to serve on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _json_lines(relay: RelayProcess) -> list[dict[str, Any]]:
    """Every line the process logged, each parsed as a JSON object."""
    records = []
    for line in relay.text().splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    return records


def _metrics_url(relay: RelayProcess) -> str:
    """The base URL the process serves metrics on, from its JSON log line."""

    def served() -> dict[str, Any] | None:
        return next((r for r in _json_lines(relay) if r["logger"] == "esrc.metrics"), None)

    wait_until(lambda: served() is not None, "the relay logs where it serves metrics", 30)
    record = served()
    assert record is not None
    return f"http://{record['host']}:{record['port']}"


def test_a_broker_away_is_503_with_the_publisher_error_counted(tmp_path: Path) -> None:
    """``esrc relay --metrics-port 0`` with a broker that cannot be reached: /healthz
    answers 503 naming the publisher, and the publisher's error counter rises with
    each attempt."""
    publisher = f"amqp://guest:secret@127.0.0.1:{_closed_port()}/"
    relay = RelayProcess(
        tmp_path / "relay.log",
        [
            "--store",
            "memory://",
            "--publisher",
            publisher,
            "--metrics-port",
            "0",
            "--log-format",
            "json",
        ],
    )
    try:
        base = _metrics_url(relay)
        relay.wait_for_status(lambda s: s.consecutive_failures >= 1, "an attempt failed")
        code, body = healthz(base)
        assert code == 503, body
        assert (body["healthy"], body["error_kind"]) == (False, "publisher")
        assert "BrokerUnavailableError" in body["error"]
        assert "secret" not in body["error"]
        first = sample(scrape(base), "esrc_relay_errors_total", relay="default", kind="publisher")
        assert first is not None
        assert first >= 1
        relay.wait_for_status(lambda s: s.errors["publisher"] > first, "another attempt failed")
        later = sample(scrape(base), "esrc_relay_errors_total", relay="default", kind="publisher")
        assert later is not None
        assert later > first
        assert relay.terminate() == 0, relay.tail()
    finally:
        relay.close()
    assert "secret" not in relay.text()
    failed = [r for r in _json_lines(relay) if " failed: " in r["message"]]
    assert failed, relay.tail()
    assert all((r["relay"], r["error_kind"]) == ("default", "publisher") for r in failed), failed


@pytest.mark.postgresql
def test_healthz_follows_the_store_going_away_and_coming_back(
    postgresql_url: str, tmp_path: Path, unique: str
) -> None:
    """``esrc relay`` on PostgreSQL through a proxy, with metrics: events appended are
    counted as relayed; with the database cut off, /healthz answers 503 naming the
    store and the store's error counter rises; with it back, 200 again and the
    events appended meanwhile are relayed."""
    prefix = f"metrics_{unique}_"
    store = SqlEventStore(postgresql_url, table_prefix=prefix)
    store.migrate()
    host, port = _host_port(postgresql_url)
    proxy = TcpProxy((host, port))
    through_proxy = postgresql_url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
    name = f"metrics-{unique}"
    relay = RelayProcess(
        tmp_path / "relay.log",
        [
            *("--store", through_proxy, "-o", f"table_prefix={prefix}"),
            *("--publisher", "memory://", "--name", name),
            *("--poll-interval", "0.05", "--log-interval", "0.2", "--log-format", "json"),
            *("--metrics-port", "0"),
        ],
    )
    try:
        base = _metrics_url(relay)
        relay.wait_for_status(lambda s: s.holds_lock, "the relay holds the lock")
        for n in range(4):
            store.add_aggregate("Account", f"a{n}", [RawEvent("Opened", b"{}", {})])
        relay.wait_for_status(lambda s: s.relayed == 4, "the relay relayed 4 events")
        samples = scrape(base)
        assert sample(samples, "esrc_relay_events_relayed_total", relay=name) == 4
        assert sample(samples, "esrc_relay_lag_events", relay=name) == 0
        assert sample(samples, "esrc_relay_errors_total", relay=name, kind="store") == 0
        assert healthz(base)[0] == 200

        proxy.upstream = ("127.0.0.1", _closed_port())
        proxy.drop()
        relay.wait_for_status(lambda s: s.consecutive_failures >= 1, "the relay notices")
        code, body = healthz(base)
        assert code == 503, body
        assert body["error_kind"] == "store", body
        assert "StoreUnavailableError" in body["error"]
        failing = scrape(base)
        assert sample(failing, "esrc_relay_healthy", relay=name) == 0
        store_errors = sample(failing, "esrc_relay_errors_total", relay=name, kind="store")
        assert store_errors is not None
        assert store_errors >= 1
        store.add_aggregate("Account", "while-away", [RawEvent("Opened", b"{}", {})])

        proxy.upstream = (host, port)
        relay.wait_for_status(lambda s: s.relayed == 5, "the relay relays what came meanwhile")
        wait_until(lambda: healthz(base)[0] == 200, "/healthz is 200 again", 30)
        samples = scrape(base)
        assert sample(samples, "esrc_relay_events_relayed_total", relay=name) == 5
        assert sample(samples, "esrc_relay_healthy", relay=name) == 1
        assert relay.terminate() == 0, relay.tail()
    finally:
        relay.close()
        proxy.close()
        store.close()
        drop_store_tables(postgresql_url, prefix)
    _check_json_log(_json_lines(relay), name)


def _check_json_log(records: list[dict[str, Any]], name: str) -> None:
    """The relay's JSON log lines carry their values as keys of their own: the
    failed attempts their error kind (store) and the relay name, the progress lines
    the events relayed, the position, the rate and the lag."""
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    failed = [r for r in records if r["message"].startswith(f"relay {name}: attempt ")]
    assert failed, "no failed attempt was logged"
    assert all(r["error_kind"] == "store" for r in failed), failed
    assert all(r["relay"] == name for r in failed), failed
    progress = [r for r in records if " events relayed " in r["message"]]
    assert progress, "no progress line was logged"
    assert {"events", "position", "rate"} <= progress[-1].keys(), progress[-1]
    assert any("lag_events" in r for r in progress), "no progress line carried the lag"


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    return parts.hostname, parts.port or 5432


def _relay_command(*arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "esrc_core.cli", "relay", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **environment},
    )


def test_a_metrics_port_in_use_exits_2_at_once() -> None:
    """A port that cannot be bound is a command that cannot work: status 2, one line
    naming the address, and the relay never starts."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = _relay_command(
            *("--store", "memory://", "--publisher", "memory://", "--metrics-port", str(port))
        )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("esrc relay:")]
    assert len(lines) == 1, result.stderr
    assert f"cannot serve metrics on http://127.0.0.1:{port}" in lines[0]
    assert "starting" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "ESRC_RELAY_METRICS_PORT",
            "http",
            "ESRC_RELAY_METRICS_PORT: not a value for --metrics-port",
        ),
        ("ESRC_RELAY_METRICS_PORT", "70000", "expected a port from 0 to 65535"),
        ("ESRC_RELAY_LOG_FORMAT", "xml", "--log-format takes one of text, json"),
    ],
    ids=["port-not-a-number", "port-too-large", "unknown-log-format"],
)
def test_a_bad_value_from_the_environment_names_the_variable(
    variable: str, value: str, message: str
) -> None:
    result = _relay_command(
        **{"ESRC_STORE_URL": "memory://", "ESRC_PUBLISHER_URL": "memory://", variable: value}
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_the_environment_gives_the_metrics_port_and_the_log_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ESRC_RELAY_METRICS_PORT, ESRC_RELAY_METRICS_HOST and ESRC_RELAY_LOG_FORMAT
    stand for their options: the relay serves /healthz where they say, in JSON lines."""
    port = _closed_port()
    monkeypatch.setenv("ESRC_RELAY_METRICS_PORT", str(port))
    monkeypatch.setenv("ESRC_RELAY_METRICS_HOST", "127.0.0.1")
    monkeypatch.setenv("ESRC_RELAY_LOG_FORMAT", "json")
    relay = RelayProcess(
        tmp_path / "relay.log", ["--store", "memory://", "--publisher", "memory://"]
    )
    try:
        assert _metrics_url(relay) == f"http://127.0.0.1:{port}"
        relay.wait_for_state("relaying")
        assert healthz(f"http://127.0.0.1:{port}")[0] == 200
        assert relay.terminate() == 0, relay.tail()
    finally:
        relay.close()
