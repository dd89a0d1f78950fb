"""The Twisted side of AMI framing: bytes from the transport to messages for a sink, and nothing else.

The protocol registers itself as the transport's streaming producer, so the sink learns when the
transport's write buffer is full (`AMISink.writing_paused`) and drained again (`AMISink.writing_resumed`)
and can bound what it queues. Session logic (login, correlation, timeouts) lives in the sink.
"""

from __future__ import annotations

from typing import Protocol as TypingProtocol

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from ctid.ami.message import Message
from ctid.ami.parser import DEFAULT_MAX_HEADERS, DEFAULT_MAX_MESSAGE_BYTES, AMIParseError, AMIParser


class AMISink(TypingProtocol):
    """What an `AMIProtocol` reports to (an AMI client session, or a test server connection)."""

    def connection_made(self, conn: AMIProtocol) -> None: ...

    def banner_received(self, banner: str) -> None: ...

    def message_received(self, msg: Message) -> None: ...

    def parse_error(self, error: AMIParseError) -> None: ...

    def writing_paused(self) -> None: ...

    def writing_resumed(self) -> None: ...

    def connection_lost(self, reason: Failure) -> None: ...


@implementer(IPushProducer)
class AMIProtocol(Protocol):
    """Frames one AMI connection. ``expect_banner`` is true on the client side."""

    def __init__(
        self,
        sink: AMISink,
        *,
        expect_banner: bool = True,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_headers: int = DEFAULT_MAX_HEADERS,
    ) -> None:
        self.sink = sink
        self.parser = AMIParser(
            expect_banner=expect_banner,
            max_message_bytes=max_message_bytes,
            max_headers=max_headers,
            on_error=sink.parse_error,
        )
        self._banner_pending = expect_banner
        self.closing = False
        self.write_paused = False

    # -- Protocol

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        self.sink.connection_made(self)

    def dataReceived(self, data: bytes) -> None:
        messages = self.parser.feed(data)
        if self._banner_pending and self.parser.banner is not None:
            self._banner_pending = False
            self.sink.banner_received(self.parser.banner)
        receive = self.sink.message_received
        for msg in messages:
            if self.closing:
                return
            receive(msg)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closing = True
        self.sink.connection_lost(reason)

    # -- IPushProducer: the transport tells us when its write buffer is full or drained.

    def pauseProducing(self) -> None:
        if not self.write_paused:
            self.write_paused = True
            self.sink.writing_paused()

    def resumeProducing(self) -> None:
        if self.write_paused:
            self.write_paused = False
            self.sink.writing_resumed()

    def stopProducing(self) -> None:
        self.closing = True

    # -- used by the sink

    def write(self, data: bytes) -> None:
        """Hand bytes to the transport (never blocks; see `write_paused` for back-pressure)."""
        self.transport.write(data)

    def close(self) -> None:
        """Close after pending writes are flushed."""
        self.closing = True
        # A registered producer that was paused would keep loseConnection from ever completing.
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def abort(self) -> None:
        """Close now, dropping unsent data."""
        self.closing = True
        self.transport.abortConnection()

    def pause_reading(self) -> None:
        self.transport.pauseProducing()

    def resume_reading(self) -> None:
        self.transport.resumeProducing()
