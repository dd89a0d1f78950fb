"""AMI test server on the Twisted reactor: an Asterisk-20-like manager on a loopback port, recording actions.

Behaviour and scripting: see `testkit.ami.peer` (``reply_with``, ``reply_list``, ``handlers``,
``silent``, ``send_event``, ``drop_connections``, ``pause_reading``, trace replay). For tests that do not run
a Twisted reactor, `testkit.ami.server_threaded.ThreadedAMITestServer` offers the same in threads.

In a trial test::

    server = AMITestServer(username="ctid", secret="s3cret")
    port = server.start()
    self.addCleanup(server.stop)
    ...
    action = yield server.wait_for_action("Reload")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import Factory

from ctid.ami.protocol import AMIProtocol
from testkit.ami.peer import (
    DEFAULT_BANNER,
    AMIServerBase,
    AMIServerConnection,
    Fields,
    Handler,
    RecordedAction,
)
from testkit.ami.traces import Trace

__all__ = ["DEFAULT_BANNER", "AMIServerConnection", "AMITestServer", "Fields", "Handler", "RecordedAction"]


class _ServerFactory(Factory):
    def __init__(self, server: AMITestServer) -> None:
        self.server = server

    def buildProtocol(self, addr: object) -> AMIProtocol:
        connection = AMIServerConnection(self.server, len(self.server.connections))
        self.server.connections.append(connection)
        return AMIProtocol(connection, expect_banner=False)


class AMITestServer(AMIServerBase):
    """A scriptable, recording AMI server on the Twisted reactor."""

    def __init__(
        self,
        *,
        username: str = "ctid",
        secret: str = "test-secret",
        trace: Trace | None = None,
        banner: bytes = DEFAULT_BANNER,
        reactor: Any = None,
    ) -> None:
        super().__init__(username=username, secret=secret, trace=trace, banner=banner)
        self._reactor = reactor or global_reactor
        self._listening: IListeningPort | None = None
        self._waiters: list[tuple[Callable[[], object], Deferred]] = []
        self._closing: dict[int, Deferred] = {}

    def start(self, port: int = 0, interface: str = "127.0.0.1") -> int:
        """Listen (port 0: a free one); returns the port."""
        self._listening = self._reactor.listenTCP(port, _ServerFactory(self), interface=interface)
        self.port = self._listening.getHost().port
        return self.port

    def stop(self) -> Deferred:
        """Stop listening and abort every connection; fires when all are closed."""
        waits = [succeed(None) if self._listening is None else self._listening.stopListening()]
        self._listening = None
        for c in self.open_connections:
            waits.append(self._closing.setdefault(c.index, Deferred()))
            c.abort()
        waiters, self._waiters = self._waiters, []
        for _, d in waiters:
            d.errback(RuntimeError("AMITestServer stopped"))
        return DeferredList(waits, consumeErrors=True)

    def stop_listening(self) -> Deferred:
        """Refuse new connections (Asterisk is down; open ones are left as they are); ``start(server.port)``
        listens again on the same port."""
        listening, self._listening = self._listening, None
        return succeed(None) if listening is None else listening.stopListening()

    def boot_after(self, delay: float) -> IDelayedCall:
        """`boot` in ``delay`` seconds (Asterisk finishing its boot while clients are logged in)."""
        return self._reactor.callLater(delay, self.boot)

    def wait_for_action(self, name: str, count: int = 1, timeout: float = 10.0) -> Deferred:
        """Fires with the ``count``-th action named ``name`` (already received ones count)."""
        return self.wait_until(lambda: self._nth_action(name, count), timeout, f"{count} {name} action(s)")

    def wait_for_logins(self, count: int, timeout: float = 10.0) -> Deferred:
        """Fires once ``count`` successful logins happened in total."""
        return self.wait_until(lambda: self.logins >= count and self.logins, timeout, f"{count} login(s)")

    def wait_until(self, check: Callable[[], object], timeout: float, what: str = "condition") -> Deferred:
        """Fires with ``check()`` once truthy (checked on every connection, action, login and close);
        fails after ``timeout`` seconds with `TimeoutError`."""
        d: Deferred = Deferred()
        result = check()
        if result:
            d.callback(result)
            return d
        entry = (check, d)
        self._waiters.append(entry)

        def expire() -> None:
            if entry in self._waiters:
                self._waiters.remove(entry)
                d.errback(TimeoutError(f"AMITestServer: no {what} within {timeout:g} s"))

        call = self._reactor.callLater(timeout, expire)

        def cancel_timer(result: object) -> object:
            if call.active():
                call.cancel()
            return result

        return d.addBoth(cancel_timer)

    def _connection_closed(self, connection: AMIServerConnection) -> None:
        closing = self._closing.pop(connection.index, None)
        if closing is not None:
            closing.callback(None)
        self._changed()

    def _changed(self) -> None:
        for entry in list(self._waiters):
            check, d = entry
            result = check()
            if result and entry in self._waiters:
                self._waiters.remove(entry)
                d.callback(result)
