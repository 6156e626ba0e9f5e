"""A TCP proxy for the cluster tests: it forwards every connection made to its loopback
port to a target port, and can be cut (every open connection closed, new ones accepted
and closed at once) and healed. Cutting the proxies between nodes partitions a cluster
without stopping a process."""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["TcpProxy"]


class TcpProxy:
    """Forwards connections from ``127.0.0.1:<port>`` to ``127.0.0.1:<target>``.

    Started on construction; every call is thread-safe. While cut, the proxy forwards
    nothing: connections that were open are closed at once (both sides see the close),
    and new ones are accepted and closed before a byte is read. :meth:`close` stops it
    for good.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        """The port the proxy listens on."""
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._upstream_ports: set[int] = set()
        self._cut = False
        self._closed = False
        self.refused = 0
        """How many connections were closed unforwarded because the proxy was cut."""
        threading.Thread(target=self._accept, daemon=True, name=f"proxy-{self.port}").start()

    @property
    def upstream_ports(self) -> frozenset[int]:
        """The local ports of every connection the proxy opened to its target: the
        target sees a forwarded connection coming from one of these ports."""
        with self._lock:
            return frozenset(self._upstream_ports)

    @property
    def is_cut(self) -> bool:
        """Whether the proxy is cut."""
        with self._lock:
            return self._cut

    def cut(self) -> None:
        """Close every forwarded connection and forward no new one until :meth:`heal`."""
        with self._lock:
            self._cut = True
            doomed = list(self._open)
            self._open.clear()
        for sock in doomed:
            _hang_up(sock)

    def heal(self) -> None:
        """Forward new connections again."""
        with self._lock:
            self._cut = False

    def close(self) -> None:
        """Cut the proxy and stop listening."""
        self.cut()
        with self._lock:
            self._closed = True
        _hang_up(self._listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                refuse = self._cut or self._closed
                if refuse:
                    self.refused += 1
            if refuse:
                _hang_up(client)
                continue
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        upstream = socket.socket()
        try:
            # Bound before connecting, so the port is known before the target sees it.
            upstream.bind(("127.0.0.1", 0))
            with self._lock:
                self._upstream_ports.add(upstream.getsockname()[1])
            upstream.settimeout(2)
            upstream.connect(("127.0.0.1", self.target))
            upstream.settimeout(None)
        except OSError:
            _hang_up(client)
            _hang_up(upstream)
            return
        with self._lock:
            forward = not (self._cut or self._closed)
            if forward:
                self._open.update((client, upstream))
            else:
                self.refused += 1
        if not forward:
            _hang_up(client)
            _hang_up(upstream)
            return
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
        self._pump(upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy bytes from ``source`` to ``sink`` until either side closes; then close
        both, so that a half-closed connection does not linger."""
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open.discard(source)
            self._open.discard(sink)
        _hang_up(source)
        _hang_up(sink)


def _hang_up(sock: socket.socket) -> None:
    """Shut ``sock`` down both ways (waking a thread blocked on it) and close it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
