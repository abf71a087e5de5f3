"""The test support's TCP fault proxy, against an echo server on loopback."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.faultproxy import Fault, FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with FaultProxy("127.0.0.1", server.server_address[1]) as running:
        yield running
    server.shutdown()
    server.server_close()


def _connect(proxy: FaultProxy, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def _echo(sock: socket.socket, data: bytes = b"ping") -> bytes:
    sock.sendall(data)
    return sock.recv(65536)


def test_pass_and_latency(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _echo(sock) == b"ping"
        proxy.fault(Fault("latency", low=0.3, high=0.4))
        started = time.monotonic()
        assert _echo(sock) == b"ping"
        assert 0.3 <= time.monotonic() - started < 1.0  # the request held, the answer not


def test_refuse_then_heal(proxy: FaultProxy) -> None:
    proxy.fault(Fault("refuse"))
    with pytest.raises(ConnectionRefusedError):
        _connect(proxy)
    proxy.heal()
    with _connect(proxy) as sock:
        assert _echo(sock) == b"ping"


def test_reset_aborts_open_connections(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _echo(sock) == b"ping"
        proxy.fault(Fault("reset"))
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            _echo(sock)


def test_blackhole_holds_or_drops(proxy: FaultProxy) -> None:
    with _connect(proxy, timeout=0.5) as sock:
        assert _echo(sock) == b"ping"
        proxy.fault(Fault("blackhole", buffer=True))
        sock.sendall(b"held")
        with pytest.raises(TimeoutError):
            sock.recv(10)
        proxy.heal()
        assert sock.recv(10) == b"held"  # delivered late
        proxy.fault(Fault("blackhole", buffer=False))
        sock.sendall(b"lost")
        with pytest.raises(TimeoutError):
            sock.recv(10)
        proxy.heal()
        assert _echo(sock, b"next") == b"next"  # the dropped chunk never arrives
