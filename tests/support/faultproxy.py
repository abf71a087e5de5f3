"""A small TCP proxy that injects network faults between the operator and a server.

It listens on a loopback port and forwards to one upstream address. Faults, switchable at any
time (`proxy.fault(...)`, `proxy.heal()`):
- pass: forward as is;
- latency: hold each chunk sent upstream (a request, a TLS handshake's message) for a random
  delay in [low, high] seconds; answers come back at once, so a call is slowed by about one delay
  per round trip, as by a slow link, not once per TLS record of a long answer;
- bandwidth: forward at most N bytes per second in each direction;
- reset: abort every open connection with a TCP RST, and each new one as it arrives;
- refuse: stop listening (connections are refused by the kernel) and abort the open ones;
- blackhole: accept and keep connections open but deliver nothing, either holding what was sent
  until healed (`buffer=True`: the data arrives late) or dropping it (`buffer=False`).
Loopback only: it never binds another address.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator

from tests.support.pgserver import free_port

LOOPBACK = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class Fault:
    """What the proxy does to the traffic now."""

    kind: str = "pass"  # pass | latency | bandwidth | reset | refuse | blackhole
    low: float = 0.0  # latency: seconds
    high: float = 0.0
    rate: int = 0  # bandwidth: bytes per second
    buffer: bool = True  # blackhole: hold (True) or drop (False) what is sent


PASS = Fault()


def _abort(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), not FIN: the peer sees 'connection reset'."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """`with FaultProxy(host, port) as proxy:` forwards LOOPBACK:proxy.port to host:port."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._fault = PASS
        self._changed = threading.Condition()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.accepted = 0

    # --- control --------------------------------------------------------------------------

    def fault(self, fault: Fault) -> None:
        """Switch to FAULT (applies to open connections too)."""
        with self._changed:
            self._fault = fault
            self._changed.notify_all()
        if fault.kind in {"reset", "refuse"}:
            self._abort_all()
        if fault.kind == "refuse":
            self._close_listener()
        elif self._listener is None:
            self._listen()

    def heal(self) -> None:
        """Back to forwarding as is."""
        self.fault(PASS)

    @contextlib.contextmanager
    def faulted(self, fault: Fault) -> Iterator[None]:
        """FAULT for the duration of the block, then healed."""
        self.fault(fault)
        try:
            yield
        finally:
            self.heal()

    # --- life cycle -----------------------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        self._listen()
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._close_listener()
        self._abort_all()
        for thread in self._threads:
            thread.join(5)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # A thread blocked in accept() keeps a merely closed socket listening (Linux):
            # shutdown stops it at once.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def _abort_all(self) -> None:
        with self._changed:
            connections = list(self._connections)
            self._connections.clear()
        for sock in connections:
            _abort(sock)

    # --- forwarding -----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            listener = self._listener
            if listener is None:
                self._stop.wait(0.1)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            if self._fault.kind in {"reset", "refuse"}:
                _abort(client)
                continue
            self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            _abort(client)
            return
        upstream.settimeout(None)
        client.settimeout(None)
        with self._changed:
            self._connections.update({client, upstream})
        self._spawn(self._pump, client, upstream, True)
        self._pump(upstream, client, False)

    def _pump(self, source: socket.socket, target: socket.socket, upstream: bool) -> None:
        try:
            while not self._stop.is_set():
                data = source.recv(65536)
                if not data:
                    with contextlib.suppress(OSError):
                        target.shutdown(socket.SHUT_WR)
                    return
                if self._deliverable(data, upstream):
                    target.sendall(data)
        except OSError:
            pass
        finally:
            with self._changed:
                self._connections.discard(source)
            _abort(source)
            _abort(target)

    def _deliverable(self, data: bytes, upstream: bool) -> bool:
        """Apply the fault to one chunk: wait, throttle, hold or drop it."""
        fault = self._fault
        if fault.kind == "latency" and upstream:
            time.sleep(random.uniform(fault.low, fault.high))
        elif fault.kind == "bandwidth" and fault.rate > 0:
            time.sleep(len(data) / fault.rate)
        elif fault.kind == "blackhole":
            if not fault.buffer:
                return False
            with self._changed:
                while self._fault.kind == "blackhole" and not self._stop.is_set():
                    self._changed.wait()
        return not self._stop.is_set()
