"""One FastAGI connection: an asyncio Protocol that feeds an :class:`~agid.protocol.AGIParser`.

It only moves messages: it resolves the environment future, hands each reply to the one command in
flight, records ``HANGUP`` whenever it comes, and turns EOF, resets and protocol errors into an error
for whoever waits. Business logic lives in :mod:`agid.session` and :mod:`agid.server`.

Bounds: at most one command in flight (a second concurrent one is a programming error); a reply that
nobody asked for is a protocol error, except the late reply of a command whose waiter was cancelled
(a handler stopped by the deadline), which is counted and dropped so the stream stays in step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from agid.env import AGIEnv
from agid.errors import AGIConnectionLost, AGIError, AGIProtocolError
from agid.protocol import AGIParser, AGIReply, EnvReceived, HangupReceived, Limits

log = logging.getLogger(__name__)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a future's exception so that an unawaited one is not reported as never retrieved."""
    if not future.cancelled():
        future.exception()


class AGIConnection(asyncio.Protocol):
    """The peer's side of the socket, as awaitable messages."""

    def __init__(self, on_connect: Callable[[AGIConnection], object], limits: Limits | None = None) -> None:
        self._on_connect = on_connect
        self._parser = AGIParser(limits)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._env: asyncio.Future[AGIEnv] = self._loop.create_future()
        self._env.add_done_callback(_consume)
        self._pending: asyncio.Future[AGIReply] | None = None
        self._orphans = 0
        self._error: AGIError | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()
        #: True once Asterisk sent ``HANGUP``.
        self.hungup = False
        #: ``time.monotonic()`` of the accept: the deadlines of a session count from it, queueing in agid
        #: included (the clock of every thread and loop, as the database thread compares with it).
        self.accepted_at = time.monotonic()
        self.peer: object = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.peer = transport.get_extra_info("peername")
        self._on_connect(self)

    def data_received(self, data: bytes) -> None:
        if self._error is not None:
            return
        try:
            events = self._parser.feed(data)
        except AGIProtocolError as exc:
            self._fail(exc)
            return
        for event in events:
            if isinstance(event, AGIReply):
                self._reply(event)
            elif isinstance(event, HangupReceived):
                self.hungup = True
            elif isinstance(event, EnvReceived) and not self._env.done():
                self._env.set_result(event.env)
            if self._error is not None:
                return

    def eof_received(self) -> bool:
        self._fail(AGIConnectionLost("peer closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(AGIConnectionLost(f"connection lost: {exc}" if exc else "connection closed"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- for the session

    @property
    def error(self) -> AGIError | None:
        """Why the connection can no longer be used (None while it can)."""
        return self._error

    @property
    def lost(self) -> bool:
        """True once the connection failed or was closed: no command can be sent any more."""
        return self._error is not None

    @property
    def busy(self) -> bool:
        """True while a command waits for its reply."""
        return self._pending is not None

    async def wait_env(self) -> AGIEnv:
        return await asyncio.shield(self._env)

    async def execute(self, line: bytes) -> AGIReply:
        """Send one command line (from :func:`~agid.protocol.format_command`) and wait for its reply."""
        if self._error is not None:
            raise type(self._error)(str(self._error))
        if self._pending is not None:
            raise RuntimeError("an AGI command is already in flight on this connection")
        if not self._env.done():
            raise RuntimeError("AGI command before the environment was received")
        assert self._transport is not None
        future: asyncio.Future[AGIReply] = self._loop.create_future()
        future.add_done_callback(_consume)
        self._pending = future
        self._transport.write(line)
        try:
            return await future
        except asyncio.CancelledError:
            if self._pending is future:
                # Asterisk will still answer this command: drop that reply when it comes.
                self._pending = None
                self._orphans += 1
            raise

    def close(self) -> None:
        """Close the socket, flushing what was written. Asterisk then ends the AGI; the dialplan goes on."""
        if self._error is None:
            self._error = AGIConnectionLost("connection closed by agid")
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close the socket without flushing."""
        self.close()
        if self._transport is not None:
            self._transport.abort()

    # -- internals

    def _reply(self, reply: AGIReply) -> None:
        if self._pending is not None:
            future, self._pending = self._pending, None
            future.set_result(reply)
        elif self._orphans:
            self._orphans -= 1
            log.debug("dropped the late reply of a cancelled command: %r", reply.line[:200])
        else:
            self._fail(AGIProtocolError(f"reply without a command: {reply.line[:200]!r}"))

    def _fail(self, exc: AGIError) -> None:
        first = self._error is None
        if first:
            self._error = exc
        if not self._env.done():
            self._env.set_exception(exc)
        if self._pending is not None:
            future, self._pending = self._pending, None
            future.set_exception(exc)
        if first and isinstance(exc, AGIProtocolError) and self._transport is not None:
            log.debug("protocol error from %s: %s", self.peer, exc)
            self._transport.abort()
