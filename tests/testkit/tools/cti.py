"""A CTI test server and a CTI client speaking newline-delimited JSON, over real sockets, blocking.

:class:`FakeCtid` plays ctid: it records every byte it receives and answers a few message classes:

* ``login``: ``{"class": "login", "replyid": <commandid>, "status": "ok", "timenow": <time>}``
* ``ping``: ``{"class": "pong", "replyid": <commandid>, "timenow": <time>}``
* ``burst``: ``count`` (default 5) ``event`` messages sent in a single ``sendall`` (one TCP segment when
  small), then ``{"class": "burst_done"}``
* ``split``: one ``event`` message sent in pieces of ``piece`` bytes (default 3), with a short pause
  between them so that they travel in separate segments
* ``bye``: ``{"class": "bye"}``, then the server closes the connection
* a line that is not a JSON object: ``{"class": "error", "error": "invalid message"}``

Like a Twisted server, it closes the connection when the client's side reaches end of stream.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from . import WAIT

LOOPBACK = "127.0.0.1"


def encode(message: dict[str, Any] | bytes) -> bytes:
    """A message as sent on the wire: bytes unchanged, objects as one JSON line."""
    if isinstance(message, bytes):
        return message
    return json.dumps(message).encode("utf-8") + b"\n"


class FakeCtidConnection:
    def __init__(self, server: FakeCtid, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.received = bytearray()
        self.sent = bytearray()
        self.eof = False  # the client side reached end of stream
        self.closed = False
        self.reading = threading.Event()  # clear it to stop reading (backpressure tests)
        self.reading.set()
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._pending = bytearray()
        self._thread = threading.Thread(target=self._serve, name="fake-ctid-conn", daemon=True)
        self._thread.start()

    # -- for tests ---------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(data)
            self.sent += data

    def wait_received(self, predicate: Callable[[bytes], bool], timeout: float = WAIT) -> bytes:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(bytes(self.received)), timeout):
                raise TimeoutError(f"fake ctid: condition not met; received {bytes(self.received)[-300:]!r}")
            return bytes(self.received)

    def wait_eof(self, timeout: float = WAIT) -> bytes:
        with self._cond:
            if not self._cond.wait_for(lambda: self.eof or self.closed, timeout):
                raise TimeoutError("fake ctid: the client did not close its side")
            return bytes(self.received)

    def close(self) -> None:
        with self._cond:
            if self.closed:
                return
            self.closed = True
            self._cond.notify_all()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    # -- the server side -------------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self.closed:
                if not self.reading.wait(0.2):
                    continue
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    break
                if not data:
                    with self._cond:
                        self.eof = True
                        self._cond.notify_all()
                    break
                with self._cond:
                    self.received += data
                    self._cond.notify_all()
                self._pending += data
                while b"\n" in self._pending:
                    line, _, rest = bytes(self._pending).partition(b"\n")
                    self._pending = bytearray(rest)
                    if not self._answer(line):
                        return
        finally:
            self.close()

    def _answer(self, line: bytes) -> bool:
        """Reply to one line; False when the connection must close."""
        if self.server.silent or not line.strip():
            return True
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.send(encode({"class": "error", "error": "invalid message"}))
            return True
        kind = message.get("class")
        reply: dict[str, Any] = {"replyid": message.get("commandid"), "timenow": time.time()}
        if kind == "login":
            self.send(encode({"class": "login", **reply, "status": "ok"}))
        elif kind == "ping":
            self.send(encode({"class": "pong", **reply}))
        elif kind == "burst":
            count = int(message.get("count", 5))
            events = b"".join(
                encode({"class": "event", "n": n, "timenow": time.time()}) for n in range(count)
            )
            self.send(events + encode({"class": "burst_done", **reply}))
        elif kind == "split":
            data = encode({"class": "event", "split": True, **reply})
            piece = max(1, int(message.get("piece", 3)))
            for start in range(0, len(data), piece):
                self.send(data[start : start + piece])
                time.sleep(0.002)  # a pause so that pieces leave in separate segments; not a test wait
        elif kind == "bye":
            self.send(encode({"class": "bye", **reply}))
            return False
        return True


class FakeCtid:
    """A CTI test server on a free loopback port; use as a context manager."""

    def __init__(self, host: str = LOOPBACK, silent: bool = False) -> None:
        self.silent = silent  # record only, never answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.connections: list[FakeCtidConnection] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="fake-ctid", daemon=True)
        self._thread.start()

    def __enter__(self) -> FakeCtid:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.sock.accept()
            except OSError:
                return
            connection = FakeCtidConnection(self, sock)
            with self._cond:
                self.connections.append(connection)
                self._cond.notify_all()

    def wait_connection(self, number: int = 1, timeout: float = WAIT) -> FakeCtidConnection:
        """The ``number``-th connection (1-based), once it is accepted."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.connections) >= number, timeout):
                raise TimeoutError(f"fake ctid: no connection #{number} within {timeout} s")
            return self.connections[number - 1]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for connection in list(self.connections):
            connection.close()


def closed_port(host: str = LOOPBACK) -> int:
    """A port where nothing listens now: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


class CtiClient:
    """A blocking CTI client with timeouts."""

    def __init__(self, port: int, host: str = LOOPBACK, timeout: float = WAIT) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buffer = bytearray()
        self.eof = False

    def __enter__(self) -> CtiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, *messages: dict[str, Any] | bytes) -> None:
        for message in messages:
            self.sock.sendall(encode(message))

    def _fill(self, deadline: float) -> bool:
        """Read once; False at end of stream."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"CTI client: nothing more within {self.timeout} s; have {bytes(self.buffer)[-300:]!r}"
            )
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def read_lines(self, count: int) -> list[bytes]:
        """The next ``count`` lines (without newlines)."""
        deadline = time.monotonic() + self.timeout
        lines: list[bytes] = []
        while len(lines) < count:
            if b"\n" in self.buffer:
                line, _, rest = bytes(self.buffer).partition(b"\n")
                self.buffer = bytearray(rest)
                lines.append(line)
                continue
            if self.eof or not self._fill(deadline):
                raise EOFError(f"CTI client: end of stream after {lines!r}; rest {bytes(self.buffer)!r}")
        return lines

    def read_messages(self, count: int) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.read_lines(count)]

    def read_until_closed(self) -> bytes:
        """Everything until the other side closes."""
        deadline = time.monotonic() + self.timeout
        while not self.eof and self._fill(deadline):
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()
