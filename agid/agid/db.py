"""agid's way to PostgreSQL: one bounded async pool of role ``pbx_agid``, every use bounded in time.

``await db.run(query, *args, deadline=...)`` borrows a connection, runs ``query(conn, *args)`` (a coroutine
of :mod:`confdb.read.agid`) and returns its result, or raises :class:`DBUnavailable` when it could not be
done in time: no connection free before the deadline, PostgreSQL down, slow or frozen (the server-side
``statement_timeout`` catches a slow query, the client-side deadline a frozen or unreachable server).
``deadline`` is a time of ``time.monotonic()``, the same clock in every thread and event loop: the
session's one deadline (see :mod:`agid.session`), passed down as it is; every wait is ``deadline - now``.
Handlers catch DBUnavailable and degrade; they never wait past their deadline.
``db.load(query, key, deadline=...)`` does the same for one key of a batch query, gathered with the keys of
the other sessions of the same turn of the event loop into one query (:mod:`agid.batch`).

The pool and its queries live in a thread of their own, with its own event loop: a busy session loop
(thousands of sessions) never delays an answer of PostgreSQL past its timeout, and the timeouts are kept
where the answers arrive. Callers stay in their loop; only the query crosses, one hop each way.

A caller that stops waiting abandons the wait, not the connection: the query goes on in the background
(PostgreSQL cancels it at ``statement_timeout``) and its connection goes back to the pool when it ends,
so that a burst of slow answers does not also cost a burst of reconnections. A query still running
``ABANDON_GRACE`` seconds past its statement timeout (a frozen or unreachable server) is cancelled and
its connection closed (the pool replaces it in the background).

A call that fails while other calls get answers is overload (no connection free in time, a late answer),
not an outage: that call degrades, the others go on. After ``FAILURES`` failures in a row with no answer
to anybody meanwhile, the database is considered down until it answers again: calls then fail at once,
except one call every ``retry_interval`` seconds that tries it, so that a dead or frozen database costs
each call nothing instead of its whole budget.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from psycopg_pool.base import ConnectionAttempt

from agid.batch import BatchLoader, BatchQuery
from agid.errors import DBUnavailable

log = logging.getLogger(__name__)

__all__ = ["DBUnavailable", "Database"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
FAILURES = 3
ABANDON_GRACE = 2.0


class _Attempt(ConnectionAttempt):
    """A reconnection schedule whose delay stops doubling at MAX_DELAY seconds."""

    MAX_DELAY = 1.0

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, self.MAX_DELAY)


class _Pool(AsyncConnectionPool):
    """psycopg_pool 3.1 retries a lost connection with a delay doubling without bound (1, 2, 4 ... s): after
    a minute of outage agid would stay without database long after PostgreSQL is back. Cap it (this
    overrides a private method of psycopg_pool 3.1, the version of Debian bookworm)."""

    async def _add_connection(self, attempt: ConnectionAttempt | None, growing: bool = False) -> None:
        if attempt is None:
            attempt = _Attempt(reconnect_timeout=self.reconnect_timeout)
        await super()._add_connection(attempt, growing)


class Database:
    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        statement_timeout: float = 0.5,
        connect_timeout: float = 2.0,
        retry_interval: float = 1.0,
    ) -> None:
        self.dsn = dsn
        self.retry_interval = retry_interval
        self.statement_timeout = statement_timeout
        self._pool_args: dict[str, Any] = {
            "min_size": min_size,
            "max_size": max_size,
            "open": False,
            "name": "agid",
            "kwargs": {
                "autocommit": True,
                "application_name": "agid",
                "connect_timeout": max(2, round(connect_timeout)),
                # JIT compiles a plan in tens of milliseconds: a loss for queries that take one
                "options": f"-c statement_timeout={max(1, int(statement_timeout * 1000))} -c jit=off",
            },
            "timeout": max(statement_timeout, 0.05),
            "reconnect_timeout": 3600.0 * 24 * 365,  # keep trying for ever; never give the pool up
        }
        self._pool: _Pool | None = None
        self._home: asyncio.AbstractEventLoop | None = None  # the loop of the callers
        self._loop: asyncio.AbstractEventLoop | None = None  # the database thread's own loop
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._tripped = False  # FAILURES failures with no answer meanwhile, and no answer since
        self._next_probe = 0.0  # monotonic time from which one call may go through to try again
        self._last_answer = float("-inf")  # monotonic time of the last answer (never: -inf)
        self._probing = False
        self._background: set[asyncio.Task[Any]] = set()
        self._in_use = 0  # connections taken from the pool and not given back yet
        self._loaders: dict[Any, BatchLoader[Any, Any]] = {}
        self.stats = {"ok": 0, "unavailable": 0, "fast_fail": 0, "errors": 0, "overload": 0, "abandoned": 0}

    async def open(self) -> None:
        """Start the database thread and the pool, without waiting for PostgreSQL (agid starts even if the
        database is down)."""
        self._home = asyncio.get_running_loop()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agid-db", daemon=True)
        self._thread.start()
        await self._in_thread(self._open_pool())

    async def _open_pool(self) -> None:
        self._pool = _Pool(self.dsn, **self._pool_args)
        await self._pool.open(wait=False)

    async def close(self) -> None:
        for loader in self._loaders.values():
            await loader.close()
        if self._loop is None or self._thread is None:
            return
        try:
            await self._in_thread(self._close_pool())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5.0)
            if not self._thread.is_alive():
                self._loop.close()
            self._loop = self._thread = None

    async def _close_pool(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(set(self._background), timeout=1.0)
        if self._pool is not None:
            await self._pool.close(timeout=1.0)

    @property
    def _opened_pool(self) -> _Pool:
        assert self._pool is not None, "Database.open() first"
        return self._pool

    def _in_thread(self, work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """Run ``work`` in the database thread; its result (or error) comes back to the caller's loop."""
        if self._loop is None:
            work.close()
            raise DBUnavailable("database not opened")
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    @property
    def down(self) -> bool:
        """True from FAILURES failures in a row with no answer to anybody meanwhile, to the next answer."""
        return self._tripped

    async def run(self, query: Callable[..., Awaitable[T]], *args: Any, deadline: float) -> T:
        started = time.monotonic()
        if deadline <= started:  # the caller's time is spent: not the database's fault
            raise DBUnavailable("no time left before the deadline")
        probe = False
        if self._tripped:
            if self._probing or started < self._next_probe:
                self.stats["fast_fail"] += 1
                raise DBUnavailable("database marked down after repeated failures")
            probe = self._probing = True  # this call tries; the others keep failing at once
        try:
            result = await self._in_thread(self._run(query, args, deadline))
        except DBUnavailable:
            # An outage only if nobody got an answer while this call waited: under load a few calls of
            # hundreds may time out (no connection free, a late answer) while the others are answered.
            if self._last_answer < started:
                self._failed()
            else:
                self.stats["overload"] += 1
            raise
        finally:
            if probe:
                self._probing = False
        self._succeeded()
        self.stats["ok"] += 1
        return result

    def load(self, query: BatchQuery[K, V], key: K, *, deadline: float) -> asyncio.Future[V | None]:
        """The value of ``key`` from ``query(conn, keys) -> {key: value}`` (None when it has none), gathered
        with the keys other sessions ask in the same turn of the loop (:mod:`agid.batch`): awaiting it
        raises DBUnavailable as :meth:`run` does, at the latest at ``deadline``."""
        loader = self._loaders.get(query)
        if loader is None:
            loader = self._loaders[query] = BatchLoader(self.run, query)
        return loader.load(key, deadline)

    @property
    def batch_stats(self) -> dict[str, int]:
        """Batches, keys and failed batches of every loader, summed."""
        total = {"batches": 0, "keys": 0, "failed": 0}
        for loader in self._loaders.values():
            for name, value in loader.stats.items():
                total[name] += value
        return total

    def _succeeded(self) -> None:
        if self._tripped:
            log.warning("database answers again")
        self._failures = 0
        self._tripped = False
        self._last_answer = time.monotonic()

    def _failed(self) -> None:
        self.stats["unavailable"] += 1
        self._failures += 1
        if self._failures >= FAILURES:
            if not self._tripped:
                log.warning("database unavailable %d times in a row: failing fast, one try each %.1fs",
                            self._failures, self.retry_interval)  # fmt: skip
            self._tripped = True
            self._next_probe = time.monotonic() + self.retry_interval

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _give_back(self, getting: asyncio.Future[Any]) -> None:
        if getting.cancelled() or getting.exception() is not None:
            return
        self._keep(asyncio.get_running_loop().create_task(self._opened_pool.putconn(getting.result())))

    async def _run(self, query: Callable[..., Awaitable[T]], args: tuple[Any, ...], deadline: float) -> T:
        loop = asyncio.get_running_loop()
        timeout = deadline - time.monotonic()
        # psycopg_pool 3.1 leaves a cancelled getconn() in its queue of waiters, and later hands it a
        # connection that nobody returns: getconn runs in its own task, bounded by the pool's timeout, and
        # if we are cancelled meanwhile the connection it gets is given back.
        getting = asyncio.ensure_future(self._opened_pool.getconn(timeout=max(0.0, timeout)))
        try:
            conn = await asyncio.shield(getting)
        except asyncio.CancelledError:
            getting.add_done_callback(self._give_back)
            raise
        except (PoolTimeout, TimeoutError):
            busy = " (all busy)" if self._in_use else ""
            raise DBUnavailable(f"no database connection within {timeout:.3f}s{busy}") from None
        except psycopg.Error as exc:
            raise DBUnavailable(f"database connection: {exc}") from None
        self._in_use += 1
        work = loop.create_task(self._query(conn, query, args))
        try:
            done, _ = await asyncio.wait({work}, timeout=max(0.0, deadline - time.monotonic()))
        except asyncio.CancelledError:
            self._abandon(work)
            raise
        if not done:
            self._abandon(work)
            raise DBUnavailable(f"no database answer within {timeout:.3f}s")
        return work.result()

    def _abandon(self, work: asyncio.Task[Any]) -> None:
        """Let ``work`` end in the background (its connection then goes back); cancel it if it outlives
        the statement timeout by ABANDON_GRACE (its connection is then closed)."""
        self.stats["abandoned"] += 1
        self._keep(work)
        timer = asyncio.get_running_loop().call_later(self.statement_timeout + ABANDON_GRACE, work.cancel)

        def ended(task: asyncio.Task[Any]) -> None:
            timer.cancel()
            if not task.cancelled() and task.exception() is None and self._home is not None:
                # it answered, late: slow is not down
                self._home.call_soon_threadsafe(self._succeeded)

        work.add_done_callback(ended)

    async def _query(self, conn: Any, query: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
        """``query(conn, *args)``; the connection always goes back to the pool, closed if left unusable."""
        clean = False
        try:
            result = await query(conn, *args)
            clean = True
            return result
        except psycopg.errors.QueryCanceled as exc:
            clean = True
            raise DBUnavailable(f"query cancelled (statement_timeout): {exc}") from None
        except (psycopg.OperationalError, OSError) as exc:
            raise DBUnavailable(f"database error: {exc}") from None
        except psycopg.Error as exc:  # a bug of ours (privileges, SQL): degrade too, loudly
            self.stats["errors"] += 1
            log.error("database query %s failed: %s", getattr(query, "__name__", query), exc)
            clean = True
            raise DBUnavailable(f"query error: {exc}") from None
        finally:
            self._in_use -= 1
            if not clean or conn.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                # cancelled or broken in the middle of something: never hand it out again
                await conn.close()
            await self._opened_pool.putconn(conn)
