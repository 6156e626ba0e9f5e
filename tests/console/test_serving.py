"""Serving the console for real: ``esrc_console.testing.serve`` in a thread, and the
``esrc console`` command in a process of its own on a SQLite store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from esrc_console.testing import serve

from esrc_console import create_app
from esrc_core import RawEvent, open_event_store


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_serve_runs_the_app_on_a_free_local_port(unique: str) -> None:
    store = open_event_store(f"memory://serving-{unique}")
    store.add_aggregate("Thing", 1, [RawEvent("Created", b"{}")])
    with serve(create_app(store)) as base:
        assert base.startswith("http://127.0.0.1:")
        assert _get(f"{base}/healthz") == (200, "ok")
        status, body = _get(f"{base}/streams")
        assert status == 200
        assert 'class="stream"' in body
    store.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_esrc_console_serves_a_store_with_its_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = open_event_store(url, table_prefix="app_")
    store.add_aggregate("Thing", 1, [RawEvent("Created", b"{}")])
    store.close()
    port = _free_port()
    command = [sys.executable, "-m", "esrc_core.cli", "console", url, "-o", "table_prefix=app_"]
    command += ["--port", str(port), "--refresh", "1"]
    environment = {**os.environ, "ESRC_CONSOLE_TOKEN": "tok"}
    server = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while _probe(base) is None:
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "esrc console did not start within 30 s"
            time.sleep(0.1)
        assert _probe(base) == 401
        status, body = _get(f"{base}/api/streams?token=tok")
        assert status == 200, body
        assert '"aggregate_type":"Thing"' in body
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=15)
    assert f"on {base}/" in out


def _probe(base: str) -> int | None:
    try:
        return _get(f"{base}/healthz")[0]
    except OSError:
        return None
