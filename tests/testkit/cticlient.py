"""A CTI client for tests and benchmarks, on the Twisted reactor: send requests, wait for messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import count
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory
from twisted.protocols.basic import LineOnlyReceiver

Msg = dict[str, Any]


class CTITestClient(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 1 << 24

    def __init__(self, reactor: Any = None) -> None:
        self.messages: list[Msg] = []
        self._waiters: list[tuple[Callable[[Msg], bool], Deferred, int]] = []
        self._ids = count(1)
        self._reactor = reactor or global_reactor
        self.connected_d: Deferred = Deferred()
        self.lost_d: Deferred = Deferred()
        self.keep = True
        """False: do not keep messages (benchmarks); waiters still see them."""

    def connectionMade(self) -> None:
        self.connected_d.callback(self)

    def connectionLost(self, reason: Any = None) -> None:
        for _, d, _ in self._waiters:
            d.errback(ConnectionError("CTI connection lost"))
        self._waiters = []
        self.lost_d.callback(None)

    def lineReceived(self, line: bytes) -> None:
        msg = json.loads(line)
        if self.keep:
            self.messages.append(msg)
        for entry in list(self._waiters):
            pred, d, _ = entry
            if pred(msg):
                self._waiters.remove(entry)
                d.callback(msg)

    def send(self, obj: Msg) -> None:
        self.transport.write(json.dumps(obj).encode() + b"\n")

    def request(self, cls: str, timeout: float = 10.0, **fields: Any) -> Deferred:
        """Send a request; fires with its response or error message."""
        rid = next(self._ids)
        d = self.wait_for(
            lambda m: m.get("id") == rid and m["class"] in ("response", "error"), timeout, past=False
        )
        self.send({"class": cls, "id": rid, **fields})
        return d

    def wait_for(self, pred: Callable[[Msg], bool], timeout: float = 10.0, past: bool = True) -> Deferred:
        """Fires with the first message (already received ones too, if ``past``) matching ``pred``."""
        d: Deferred = Deferred()
        if past:
            for msg in self.messages:
                if pred(msg):
                    d.callback(msg)
                    return d
        entry = (pred, d, 0)
        self._waiters.append(entry)

        def expire() -> None:
            if entry in self._waiters:
                self._waiters.remove(entry)
                d.errback(TimeoutError("no matching CTI message in time"))

        call = self._reactor.callLater(timeout, expire)
        return d.addBoth(lambda r: (call.cancel() if call.active() else None, r)[1])


class _Factory(ClientFactory):
    def __init__(self, client: CTITestClient) -> None:
        self.client = client

    def buildProtocol(self, addr: Any) -> CTITestClient:
        return self.client

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.client.connected_d.errback(reason)


def connect(
    port: int, host: str = "127.0.0.1", reactor: Any = None, tls: Any = None, source: str | None = None
) -> Deferred:
    """Fires with a connected `CTITestClient`; ``tls``: client TLS options (``ssl.optionsForClientTLS``);
    ``source``: the local address to connect from (127.0.0.2, ... are loopback too on Linux)."""
    reactor = reactor or global_reactor
    client = CTITestClient(reactor)
    bind = None if source is None else (source, 0)
    if tls is None:
        reactor.connectTCP(host, port, _Factory(client), bindAddress=bind)
    else:
        reactor.connectSSL(host, port, _Factory(client), tls, bindAddress=bind)
    return client.connected_d
