"""The confgend wire protocol, one request per connection (documented in docs/confgend.md):

    client: <name> LF                      e.g. "asterisk/pjsip.conf\\n" (at most 128 bytes)
    server: OK <length> <fresh|cached> LF <length bytes of content>, then closes
        or: ERR <reason> LF, then closes

`length` lets the client tell a complete answer from a cut one. `cached` means generation failed and this
is the last good copy. `ConfgenProtocol` only frames bytes; `ConfgenFactory` holds the bounds.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from twisted.internet import protocol
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from confgend.engine import UnknownFile
from confgend.service import ConfigService, Reply, Unavailable

log = logging.getLogger("confgend.protocol")
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}(?:/[a-z0-9][a-z0-9_.-]{0,63}){0,2}")
MAX_REQUEST = 128


def encode_reply(reply: Reply) -> bytes:
    return b"OK %d %s\n" % (len(reply.data), b"fresh" if reply.fresh else b"cached") + reply.data


def encode_error(reason: str) -> bytes:
    return b"ERR " + reason.replace("\n", " ").encode("utf-8", "replace")[:200] + b"\n"


class ConfgenProtocol(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST
    factory: ConfgenFactory

    def connectionMade(self) -> None:
        self.answered = False
        if len(self.factory.connections) >= self.factory.max_connections:
            log.warning("too many connections (%d); refusing one", len(self.factory.connections))
            self.transport.write(encode_error("busy"))
            self.transport.loseConnection()
            self.answered = True
            return
        self.factory.connections.add(self)
        self.timer = self.factory.reactor.callLater(self.factory.idle_timeout, self._idle)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.factory.connections.discard(self)
        timer = getattr(self, "timer", None)
        if timer is not None and timer.active():
            timer.cancel()

    def _idle(self) -> None:
        if not self.answered:
            self._answer(encode_error("timeout waiting for the request"))

    def lineLengthExceeded(self, line: bytes) -> None:
        self._answer(encode_error("request too long"))

    def lineReceived(self, line: bytes) -> None:
        if self.answered or getattr(self, "asked", False):
            return
        self.asked = True
        if self.timer.active():
            self.timer.cancel()  # from now on the generation's own bounds apply (pool, statement timeout)
        try:
            name = line.rstrip(b"\r").decode("ascii")
        except UnicodeDecodeError:
            name = ""
        if not NAME.fullmatch(name):
            self._answer(encode_error("bad request"))
            return
        d = self.factory.service.request(name)
        d.addCallbacks(lambda reply: self._answer(encode_reply(reply)), self._failed)

    def _failed(self, failure: Failure) -> None:
        if failure.check(UnknownFile):
            self._answer(encode_error(f"unknown file {failure.value}"))
        elif failure.check(Unavailable):
            self._answer(encode_error(str(failure.value)))
        else:
            log.error("request failed: %s", failure.getErrorMessage())
            self._answer(encode_error("internal error"))

    def _answer(self, data: bytes) -> None:
        if self.answered:
            return
        self.answered = True
        if self.transport is not None and self.connected:
            self.transport.write(data)
            self.transport.loseConnection()


class ConfgenFactory(protocol.ServerFactory):
    protocol = ConfgenProtocol

    def __init__(
        self, service: ConfigService, reactor: Any, max_connections: int, idle_timeout: float
    ) -> None:
        self.service = service
        self.reactor = reactor
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.connections: set[ConfgenProtocol] = set()
