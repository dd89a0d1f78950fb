"""`CTIProtocol`: frames newline-delimited JSON for one CTI client, with bounded input and output.

It parses bytes into lines and hands them to its `session` (`ctid.cti.session.CTISession`); it sends
what the session gives it. Nothing else.

- Input: a line longer than ``max_message_bytes`` is never held: the bytes are dropped up to the next
  newline and the client gets a ``too_large`` error.
- Output: the protocol is the transport's streaming producer. While the transport's buffer is full, up to
  ``max_output_bytes`` wait in our own queue and reading from the client is paused (a client that does not
  read cannot make us parse more); beyond that the client is disconnected and logged. Memory per client is
  thus bounded by about the transport buffer plus ``max_output_bytes``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()


@implementer(IPushProducer)
class CTIProtocol(Protocol):
    def __init__(
        self, server: Any, *, max_message_bytes: int = 65536, max_output_bytes: int = 1 << 20
    ) -> None:
        self.server = server
        self.max_message_bytes = max_message_bytes
        self.max_output_bytes = max_output_bytes
        self.session: Any = None
        self.peer_host = "?"
        self._buffer = bytearray()
        self._discarding = False
        self._paused = False
        self._backlog: deque[bytes] = deque()
        self._backlog_bytes = 0
        self._closing = False
        self.overflowed = False
        self._read_pausable = True

    # -- connection

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peer_host = getattr(peer, "host", "?")
        # TLS pauses its producer while the handshake is pending: reading must go on then, or the
        # handshake never completes. A TLS client that stops reading is still bounded by the backlog.
        self._read_pausable = not ISSLTransport.providedBy(self.transport)
        self.transport.registerProducer(self, True)
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)  # small answers must not wait for the client's delayed ACK
        self.session = self.server.new_session(self)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._closing = True
        self._backlog.clear()
        self._backlog_bytes = 0
        if self.session is not None:
            self.session.connection_lost()

    # -- input

    def dataReceived(self, data: bytes) -> None:
        buf = self._buffer
        start = 0
        while not self._closing:
            end = data.find(b"\n", start)
            if end < 0:
                rest = data[start:]
                if self._discarding:
                    return
                if len(buf) + len(rest) > self.max_message_bytes:
                    buf.clear()
                    self._discarding = True
                    self.session.too_large()
                    return
                buf += rest
                return
            if self._discarding:
                self._discarding = False
            else:
                chunk = data[start:end]
                if len(buf) + len(chunk) > self.max_message_bytes:
                    buf.clear()
                    self.session.too_large()
                else:
                    if buf:
                        buf += chunk
                        line = bytes(buf)
                        buf.clear()
                    else:
                        line = chunk
                    if line.endswith(b"\r"):
                        line = line[:-1]
                    if line.strip():
                        self.session.line_received(line)
            start = end + 1

    # -- output

    def send_bytes(self, data: bytes) -> bool:
        """Queue one encoded message (ending with a newline). False if the client was dropped for it."""
        if self._closing:
            return False
        if not self._paused:
            self.transport.write(data)
            return True
        self._backlog_bytes += len(data)
        if self._backlog_bytes > self.max_output_bytes:
            self.overflowed = True
            log.warn(
                "CTI: client {peer} ({who}) stopped reading: more than {limit} bytes waiting; disconnected",
                peer=self.peer_host,
                who=self.session.describe() if self.session else "?",
                limit=self.max_output_bytes,
            )
            self.abort()
            return False
        self._backlog.append(data)
        return True

    def close(self) -> None:
        """Close after what is already queued has been sent."""
        if not self._closing:
            self._closing = True
            if self._backlog:
                self.transport.write(b"".join(self._backlog))
                self._backlog.clear()
            self.transport.loseConnection()

    def abort(self) -> None:
        self._closing = True
        self._backlog.clear()
        self._backlog_bytes = 0
        self.transport.abortConnection()

    # IPushProducer, called by the transport about its write buffer
    def pauseProducing(self) -> None:
        self._paused = True
        if self._read_pausable:
            self.transport.pauseProducing()  # stop reading from a client that does not read

    def resumeProducing(self) -> None:
        self._paused = False
        while self._backlog and not self._paused:
            data = self._backlog.popleft()
            self._backlog_bytes -= len(data)
            self.transport.write(data)
        if not self._paused and not self._closing and self._read_pausable:
            self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self._closing = True
