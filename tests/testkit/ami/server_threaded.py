"""The AMI test server in plain threads, for tests that run no Twisted reactor (blocking or asyncio clients).

Same behaviour and scripting as `testkit.ami.server.AMITestServer` (see `testkit.ami.peer`); the
waits block instead of returning Deferreds. Handlers run in the connection's thread while holding
``server.lock``; so do the recording and the replies::

    with ThreadedAMITestServer(username="confgend", secret="s3cret") as server:
        server.reply_with("Command", {"Response": "Success", "Message": "Command output follows"})
        ...  # point the code under test at 127.0.0.1:server.port
        action = server.wait_for_action("Command", timeout=5)
"""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from ctid.ami.message import Message
from ctid.ami.parser import AMIParser
from testkit.ami.peer import DEFAULT_BANNER, AMIServerBase, AMIServerConnection
from testkit.ami.traces import Trace

_POLL = 0.05


class _SocketLink:
    """`ServerLink` over a blocking socket owned by one handler thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False
        self.reading = threading.Event()
        self.reading.set()
        self._write_lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._write_lock:
            if not self.closed:
                try:
                    self.sock.sendall(data)
                except OSError:
                    self.closed = True

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def pause_reading(self) -> None:
        self.reading.clear()

    def resume_reading(self) -> None:
        self.reading.set()


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        ami = self.server.ami
        link = _SocketLink(self.request)
        with ami.lock:
            conn = AMIServerConnection(ami, len(ami.connections))
            ami.connections.append(conn)
            conn.connection_made(link)
        parser = AMIParser(expect_banner=False, on_error=conn.parse_error)
        try:
            while not link.closed and not self.server.stopping:
                if not link.reading.wait(_POLL):
                    continue
                if not select.select([link.sock], [], [], _POLL)[0]:
                    continue
                data = link.sock.recv(65536)
                if not data:
                    break
                messages = parser.feed(data)
                with ami.lock:
                    for msg in messages:
                        if link.closed:
                            break
                        conn.message_received(msg)
        except (OSError, ValueError):
            pass
        finally:
            link.closed = True
            with ami.lock:
                conn.connection_lost(None)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], ami: ThreadedAMITestServer) -> None:
        self.ami = ami
        self.stopping = False
        super().__init__(address, _Handler)


class ThreadedAMITestServer(AMIServerBase):
    """A scriptable, recording AMI server on a loopback port, served by threads."""

    def __init__(
        self,
        *,
        username: str = "ctid",
        secret: str = "test-secret",
        trace: Trace | None = None,
        banner: bytes = DEFAULT_BANNER,
    ) -> None:
        super().__init__(username=username, secret=secret, trace=trace, banner=banner)
        self.lock = threading.RLock()
        self._changes = threading.Condition(self.lock)
        self._server: _TCPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ThreadedAMITestServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, port: int = 0, interface: str = "127.0.0.1") -> int:
        """Listen (port 0: a free one) and serve in a background thread; returns the port."""
        self._server = _TCPServer((interface, port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(_POLL,), daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop listening, close every connection and wait for the threads."""
        if self._server is None:
            return
        self._server.stopping = True
        self._server.shutdown()
        self.drop_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self._server = None

    def wait_for_action(self, name: str, count: int = 1, timeout: float = 10.0) -> Message:
        """The ``count``-th action named ``name`` (already received ones count); `TimeoutError` after
        ``timeout`` seconds."""
        return self.wait_until(lambda: self._nth_action(name, count), timeout, f"{count} {name} action(s)")

    def wait_for_logins(self, count: int, timeout: float = 10.0) -> int:
        return self.wait_until(lambda: self.logins >= count and self.logins, timeout, f"{count} login(s)")

    def wait_until(self, check: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        with self._changes:
            while not (result := check()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"ThreadedAMITestServer: no {what} within {timeout:g} s")
                self._changes.wait(left)
            return result

    def _changed(self) -> None:
        with self._changes:
            self._changes.notify_all()
