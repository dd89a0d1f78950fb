"""Keeps an `AMIClient` connected: TCP connect, and reconnect with capped, jittered exponential backoff.

The delay grows on every failed attempt (refused connection, refused login, lost connection) and is reset
only by a successful login, so a wrong secret does not turn into a tight reconnect loop. A connection that
could not be made at all (Asterisk down or restarting) is retried within ``connect_retry_max`` (1 s), so
that ctid logs in while a restarted Asterisk is still booting; those retries are logged sparingly.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConnector, IDelayedCall
from twisted.internet.protocol import ClientFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from ctid.ami.client import AMIClient
from ctid.ami.protocol import AMIProtocol

log = Logger()


class Backoff:
    """Delays ``min(maximum, initial * factor**n) * uniform(1 - jitter, 1 + jitter)`` for n = 0, 1, ..."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        factor: float = 2.0,
        jitter: float = 0.1,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rng = rng
        self.attempt = 0

    def next(self) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        return base * (1 + self.jitter * (2 * self._rng() - 1))

    def reset(self) -> None:
        self.attempt = 0


class _Factory(ClientFactory):
    noisy = False  # no "Starting factory" line at each attempt: the service logs the attempts itself

    def __init__(self, service: AMIService) -> None:
        self.service = service

    def buildProtocol(self, addr: object) -> AMIProtocol:
        config = self.service.client.config
        return AMIProtocol(
            self.service.client,
            expect_banner=True,
            max_message_bytes=config.max_message_bytes,
            max_headers=config.max_headers,
        )

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        self.service._attempt_ended(reason, connected=False)

    def clientConnectionLost(self, connector: IConnector, reason: Failure) -> None:
        self.service._attempt_ended(reason, connected=True)


class AMIService(Service):
    """Connects ``client`` to ``client.config.host:port`` while running; reconnects after any loss."""

    def __init__(
        self, client: AMIClient, reactor: object = None, rng: Callable[[], float] = random.random
    ) -> None:
        self.client = client
        self._reactor = reactor or global_reactor
        c = client.config
        self.backoff = Backoff(c.backoff_initial, c.backoff_max, c.backoff_factor, c.backoff_jitter, rng)
        self._factory = _Factory(self)
        self._connector: IConnector | None = None
        self._retry: IDelayedCall | None = None
        self._stopped: list[Deferred] = []
        self.attempts = 0
        self.delays: list[float] = []  # the reconnect delays used so far, newest last (bounded)
        self._unreachable = 0  # connections in a row that could not be made
        client.add_connected_hook(lambda _client: self.backoff.reset())

    def startService(self) -> None:
        super().startService()
        self._connect()

    def stopService(self) -> Deferred:
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._connector is None:
            return succeed(None)
        d: Deferred = Deferred()
        self._stopped.append(d)
        self.client.close()
        self._connector.disconnect()
        return d

    def _connect(self) -> None:
        self._retry = None
        self.attempts += 1
        c = self.client.config
        self._connector = self._reactor.connectTCP(  # type: ignore[attr-defined]
            c.host, c.port, self._factory, timeout=c.connect_timeout
        )

    def _attempt_ended(self, reason: Failure, *, connected: bool = True) -> None:
        self._connector = None
        if not self.running:
            stopped, self._stopped = self._stopped, []
            for d in stopped:
                d.callback(None)
            return
        delay = self.backoff.next()
        self._unreachable = 0 if connected else self._unreachable + 1
        if not connected:
            delay = min(delay, self.client.config.connect_retry_max)
        self.delays = [*self.delays[-99:], delay]
        n = self._unreachable
        # a refused connection is retried every second: log the 1st, 2nd, 4th, 8th... of a streak
        emit = log.info if n & (n - 1) == 0 else log.debug
        emit(
            "AMI: connection to {host}:{port} ended ({reason}); retrying in {delay:.2f} s{streak}",
            host=self.client.config.host,
            port=self.client.config.port,
            reason=reason.getErrorMessage(),
            delay=delay,
            streak=f" (attempt {n + 1})" if n > 1 else "",
        )
        self._retry = self._reactor.callLater(delay, self._connect)  # type: ignore[attr-defined]
