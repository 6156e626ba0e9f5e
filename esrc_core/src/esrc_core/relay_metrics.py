"""A relay's metrics for Prometheus and its health check, served over HTTP: what
``esrc relay --metrics-port`` runs.

:class:`MetricsServer` answers on a thread of its own, with the standard library's
HTTP server (no dependency to install):

- ``GET /metrics``: :func:`metrics_text`, in the Prometheus text format (0.0.4);
- ``GET /healthz``: :func:`health`, status 200 while the relay is well (relaying or
  on standby) and 503 while it fails to reach its store or publisher, or has stopped,
  with a small JSON body;
- anything else: 404.

It reads the relay only through the functions it is given: one returning the relay's
:class:`~esrc_core.relay_status.RelayStatus` (:attr:`RelayRunner.status
<esrc_core.runner.RelayRunner.status>`), and optionally one returning its
:class:`~esrc_core.inspection.RelayProgress` for the lag
(:meth:`RelayRunner.progress <esrc_core.runner.RelayRunner.progress>`), which asks
the store at each scrape, one scrape at a time.

The metrics, each with the label ``relay`` (the relay name):

===========================================  =======  ==================================
``esrc_relay_events_relayed_total``          counter  events published and marked
``esrc_relay_batches_total``                 counter  batches published and marked
``esrc_relay_errors_total{kind}``            counter  failures by ``ErrorKind``
``esrc_relay_locks_lost_total``              counter  relay locks found lost
``esrc_relay_lag_events``                    gauge    events waiting for the relay
``esrc_relay_lag_seconds``                   gauge    age of the oldest (0: none)
``esrc_relay_lock_held``                     gauge    1 while holding the relay lock
``esrc_relay_state{state}``                  gauge    1 for the current state
``esrc_relay_healthy``                       gauge    1 when ``/healthz`` answers 200
``esrc_relay_consecutive_failures``          gauge    failures since the last success
``esrc_relay_last_batch_timestamp_seconds``  gauge    Unix time of the last batch marked
``esrc_relay_position``                      gauge    position of the last event marked
===========================================  =======  ==================================

The lag is absent when the store does not report relay progress, before anything was
marked under the relay's name, and when asking the store fails (it is not asked while
the relay's own attempts fail on the store).

Logger: ``esrc.metrics``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, get_args

from esrc_core._exposition import CONTENT_TYPE, Family, render
from esrc_core.inspection import RelayProgress
from esrc_core.relay_status import ERROR_KINDS, RelayStatus, RunnerState

__all__ = ["CONTENT_TYPE", "MetricsServer", "health", "metrics_text"]

log = logging.getLogger("esrc.metrics")

_STATES: tuple[RunnerState, ...] = get_args(RunnerState)


def metrics_text(
    status: RelayStatus, progress: RelayProgress | None = None, now: dt.datetime | None = None
) -> str:
    """The relay's metrics (listed in the module docstring) in the Prometheus text
    format, from ``status`` and, for the lag, ``progress`` (``None``: no lag metrics)
    taken at ``now`` (default: the current time)."""
    relay = {"relay": status.name}

    def one(name: str, kind: Literal["counter", "gauge"], help: str, value: float | None) -> Family:
        family = Family(name, kind, help)
        return family if value is None else family.add(value, **relay)

    errors = Family(
        "esrc_relay_errors_total",
        "counter",
        "Failures of the relay by kind (store, publisher, lock, config, other).",
    )
    for kind in ERROR_KINDS:
        errors.add(status.errors.get(kind, 0), **relay, kind=kind)
    states = Family(
        "esrc_relay_state", "gauge", "1 for the relay's current state, 0 for the others."
    )
    for state in _STATES:
        states.add(1 if state == status.state else 0, **relay, state=state)
    lag_events = lag_seconds = None
    if progress is not None:
        lag_events = progress.pending
        lag_seconds = progress.lag_seconds(now) or 0.0
    last_batch = None if status.last_batch_at is None else status.last_batch_at.timestamp()
    return render(
        [
            one(
                "esrc_relay_events_relayed_total",
                "counter",
                "Events published and marked since the relay started.",
                status.relayed,
            ),
            one(
                "esrc_relay_batches_total",
                "counter",
                "Batches published and marked since the relay started.",
                status.batches,
            ),
            errors,
            one(
                "esrc_relay_locks_lost_total",
                "counter",
                "Times the relay found its relay lock lost and stopped publishing.",
                status.locks_lost,
            ),
            one(
                "esrc_relay_lag_events",
                "gauge",
                "Committed events waiting for the relay.",
                lag_events,
            ),
            one(
                "esrc_relay_lag_seconds",
                "gauge",
                "Seconds since the oldest event waiting for the relay was recorded (0: none).",
                lag_seconds,
            ),
            one(
                "esrc_relay_lock_held",
                "gauge",
                "1 while the relay holds its relay lock (0 on standby or unlocked).",
                int(status.holds_lock),
            ),
            states,
            one(
                "esrc_relay_healthy",
                "gauge",
                "1 while the relay runs and its last attempt succeeded (/healthz is 200).",
                int(status.healthy),
            ),
            one(
                "esrc_relay_consecutive_failures",
                "gauge",
                "Failed attempts since the last success.",
                status.consecutive_failures,
            ),
            one(
                "esrc_relay_last_batch_timestamp_seconds",
                "gauge",
                "Unix time when the last batch was marked published.",
                last_batch,
            ),
            one(
                "esrc_relay_position",
                "gauge",
                "Store position of the last event marked published.",
                status.last_position,
            ),
        ]
    )


def health(status: RelayStatus) -> tuple[int, dict[str, Any]]:
    """The ``/healthz`` answer for ``status``: 200 when :attr:`RelayStatus.healthy
    <esrc_core.relay_status.RelayStatus.healthy>`, else 503, and the JSON body:
    ``relay``, ``healthy``, ``state``, ``holds_lock``, ``consecutive_failures``, and
    when unhealthy ``error_kind`` and ``error`` (the last failure in one line,
    passwords masked, as in the status file)."""
    body: dict[str, Any] = {
        "relay": status.name,
        "healthy": status.healthy,
        "state": status.state,
        "holds_lock": status.holds_lock,
        "consecutive_failures": status.consecutive_failures,
    }
    if not status.healthy:
        body["error_kind"] = status.last_error_kind
        body["error"] = status.last_error
    return (HTTPStatus.OK if status.healthy else HTTPStatus.SERVICE_UNAVAILABLE), body


class _Lag:
    """Asks for the relay's progress, one caller at a time: a scrape that comes while
    another is asking gets the last answer instead of a second query."""

    def __init__(self, progress: Callable[[], RelayProgress | None] | None) -> None:
        self._progress = progress
        self._asking = threading.Lock()
        self._last: RelayProgress | None = None

    def get(self, status: RelayStatus) -> RelayProgress | None:
        if self._progress is None:
            return None
        if not status.healthy and status.last_error_kind == "store":
            return None  # the store is failing: asking it would fail or hang as well
        if not self._asking.acquire(blocking=False):
            return self._last
        try:
            self._last = self._progress()
        except Exception as err:
            log.debug("relay %s: no lag for the metrics: %s", status.name, err)
            self._last = None
        finally:
            self._asking.release()
        return self._last


class _Pages:
    """What the server answers, by path."""

    def __init__(self, status: Callable[[], RelayStatus], lag: _Lag) -> None:
        self.status = status
        self.lag = lag

    def answer(self, path: str) -> tuple[int, str, bytes]:
        """Status code, content type and body for a GET of ``path``."""
        path = path.partition("?")[0]
        if path == "/metrics":
            status = self.status()
            text = metrics_text(status, self.lag.get(status))
            return HTTPStatus.OK, CONTENT_TYPE, text.encode()
        if path == "/healthz":
            code, body = health(self.status())
            return code, "application/json", (json.dumps(body) + "\n").encode()
        return HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found: try /metrics\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], pages: _Pages) -> None:
        self.pages = pages
        super().__init__(address, _Handler)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "esrc-relay"
    sys_version = ""  # no Python version in the Server header

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        try:
            code, content_type, body = self.server.pages.answer(self.path)
        except Exception as err:
            log.warning("metrics: answering %s failed: %r", self.path, err)
            code, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: %s %s", self.address_string(), format % args)


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` (see the module docstring) for one relay on
    ``host`` and ``port`` (port 0: one the system picks; :attr:`port` says which).

    ``status`` returns the relay's status now and ``progress`` its progress in the
    store (for the lag; ``None``: no lag metrics); both are called on the server's
    threads, one per request, so they must be callable from any thread
    (:class:`~esrc_core.runner.RelayRunner`'s ``status`` and ``progress`` are).
    :meth:`start` binds and starts serving on a daemon thread; :meth:`close` stops.
    Also a context manager that does both.
    """

    def __init__(
        self,
        status: Callable[[], RelayStatus],
        progress: Callable[[], RelayProgress | None] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port!r}")
        self.host = host
        self._pages = _Pages(status, _Lag(progress))
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port served on: the one asked for, or the one the system picked for 0
        once started."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port``, the server's address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind ``host:port`` and serve on a daemon thread. Raises ``OSError`` when
        the address cannot be bound (a port in use, a host not of this machine), and
        ``RuntimeError`` when already started."""
        if self._server is not None:
            raise RuntimeError(f"metrics server {self.url} already started")
        server_class = _Server6 if ":" in self.host else _Server
        self._server = server_class((self.host, self._requested_port), self._pages)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"esrc-metrics-{self.port}",
            daemon=True,
        )
        self._thread.start()
        name = self._pages.status().name
        log.info(
            "relay %s: serving metrics on %s/metrics, health on %s/healthz",
            name,
            self.url,
            self.url,
            extra={"relay": name, "host": self.host, "port": self.port},
        )

    def close(self) -> None:
        """Stop serving and free the port; requests in flight finish on their threads.
        Does nothing when not started."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
