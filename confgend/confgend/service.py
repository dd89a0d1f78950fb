"""The request side of the daemon, on the reactor: generation runs in a thread pool, concurrent requests
for one file share one generation, and any failure serves the last good copy.

`ConfigService.request(name)` -> Deferred firing with a `Reply` (content + whether it is fresh), or failing
with `Unavailable` when there is neither a fresh nor a cached copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, threads
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from confgend.engine import Engine, UnknownFile

log = logging.getLogger("confgend.service")


@dataclass(frozen=True)
class Reply:
    name: str
    data: bytes
    fresh: bool  # False: the last good copy, served because generation failed


class Unavailable(Exception):
    pass


class ConfigService:
    """`last_good` (name -> bytes) is the in-memory copy of the cache, loaded at start: serving it needs no
    thread, so it works even when every worker is stuck on a frozen database."""

    def __init__(
        self,
        reactor: Any,
        pool: ThreadPool,
        engine: Engine,
        *,
        deadline: float = 3.0,
        last_good: dict[str, bytes] | None = None,
        db_retry: float = 5.0,
    ) -> None:
        self.reactor = reactor
        self.pool = pool
        self.engine = engine
        self.deadline = deadline
        # After the database failed or was too slow, files that have a last good copy get it at once for
        # `db_retry` seconds: an Asterisk reload asks for every file in a row, and should not wait for
        # each. The next request after the window tries the database again.
        self.db_retry = db_retry
        self.db_down_until = float("-inf")
        self.last_good: dict[str, bytes] = dict(last_good or {})
        self._inflight: dict[str, list[defer.Deferred[Reply]]] = {}
        # Called with each reply as it goes to a client: the reloader's idea of what Asterisk has.
        self.on_served: list[Callable[[Reply], None]] = []
        self.generations = 0

    def known(self, name: str) -> bool:
        return name in self.engine.generators

    def request(self, name: str) -> defer.Deferred[Reply]:
        if not self.known(name):
            return defer.fail(UnknownFile(name))
        recently_down = self.reactor.seconds() < self.db_down_until
        if recently_down and name in self.last_good and self.engine.generators[name].needs_db:
            return defer.succeed(self._served(Reply(name, self.last_good[name], False)))
        waiter: defer.Deferred[Reply] = defer.Deferred()
        timer = self.reactor.callLater(self.deadline, self._too_slow, name, waiter)
        waiter.addBoth(_cancel_timer, timer)
        waiting = self._inflight.get(name)
        if waiting is not None:
            waiting.append(waiter)  # join the generation already running
            return waiter
        self._inflight[name] = [waiter]
        self.generations += 1
        d = threads.deferToThreadPool(self.reactor, self.pool, self.engine.generate, name)
        d.addCallbacks(lambda data: Reply(name, data, True), lambda f: self._failed(name, f))
        d.addBoth(self._deliver, name)
        return waiter

    def _fallback(self, name: str) -> Reply:
        data = self.last_good.get(name)
        if data is None:
            raise Unavailable(f"{name}: generation failed and there is no last good copy")
        return Reply(name, data, False)

    def _too_slow(self, name: str, waiter: defer.Deferred[Reply]) -> None:
        if waiter.called:
            return
        log.error("generating %s takes more than %.1f s; serving the last good copy", name, self.deadline)
        self.db_down_until = self.reactor.seconds() + self.db_retry
        waiters = self._inflight.get(name, [])
        if waiter in waiters:
            waiters.remove(waiter)  # the generation goes on; the others keep waiting for it
        try:
            reply = self._fallback(name)
        except Unavailable as exc:
            waiter.errback(exc)
            return
        waiter.callback(self._served(reply))

    def _failed(self, name: str, failure: Failure) -> Reply:
        if _expected(failure):
            self.db_down_until = self.reactor.seconds() + self.db_retry
        log.error(
            "generating %s failed (%s: %s); serving the last good copy",
            name,
            failure.type.__name__,
            str(failure.value).strip()[:500],
            exc_info=None
            if _expected(failure)
            else (failure.type, failure.value, failure.getTracebackObject()),
        )
        return self._fallback(name)

    def _served(self, reply: Reply) -> Reply:
        """`reply` goes to a client (Asterisk): the hooks learn what Asterisk now has."""
        for hook in self.on_served:
            hook(reply)
        return reply

    def _deliver(self, result: Reply | Failure, name: str) -> None:
        waiters = [w for w in self._inflight.pop(name, []) if not w.called]
        if isinstance(result, Reply) and result.fresh:
            self.last_good[name] = result.data
        if not waiters:
            return  # everyone got the last good copy already (too slow): Asterisk does not have this one
        if isinstance(result, Failure):
            for waiter in waiters:
                waiter.errback(result)
            return
        self._served(result)
        for waiter in waiters:
            waiter.callback(result)


def _cancel_timer(result: Any, timer: Any) -> Any:
    if timer.active():
        timer.cancel()
    return result


def _expected(failure: Failure) -> bool:
    """Database down or slow: log one line, no traceback."""
    import psycopg
    import psycopg_pool

    return failure.check(psycopg.OperationalError, psycopg_pool.PoolTimeout) is not None
