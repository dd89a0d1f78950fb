"""agid's way to PostgreSQL: one bounded async pool of role ``pbx_agid``, every use bounded in time.

``await db.run(query, *args, timeout=...)`` borrows a connection, runs ``query(conn, *args)`` (a coroutine
of :mod:`confdb.read.agid`) and returns its result, or raises :class:`DBUnavailable` when it could not be
done in time: no connection free within the timeout, PostgreSQL down, slow or frozen (the server-side
``statement_timeout`` catches a slow query, the client-side timeout a frozen or unreachable server).
Handlers catch DBUnavailable and degrade; they never wait longer than their budget.

A caller that stops waiting abandons the wait, not the connection: the query goes on in the background
(PostgreSQL cancels it at ``statement_timeout``) and its connection goes back to the pool when it ends,
so that a burst of slow answers does not also cost a burst of reconnections. A query still running
``ABANDON_GRACE`` seconds past its statement timeout (a frozen or unreachable server) is cancelled and
its connection closed (the pool replaces it in the background).

A call that fails while other calls get answers is overload (no connection free in time, a late answer),
not an outage: that call degrades, the others go on. After ``FAILURES`` failures in a row with no answer
to anybody meanwhile, the database is considered down for ``retry_interval`` seconds: calls then fail at
once, except one probe at a time, so that a dead database costs each call nothing instead of its whole
budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from psycopg_pool.base import ConnectionAttempt

log = logging.getLogger(__name__)

T = TypeVar("T")
FAILURES = 3
ABANDON_GRACE = 2.0


class DBUnavailable(Exception):
    """The database could not answer within the time given (down, slow, frozen, pool exhausted)."""


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
        self._pool = _Pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            open=False,
            name="agid",
            kwargs={
                "autocommit": True,
                "application_name": "agid",
                "connect_timeout": max(2, round(connect_timeout)),
                "options": f"-c statement_timeout={max(1, int(statement_timeout * 1000))}",
            },
            timeout=max(statement_timeout, 0.05),
            reconnect_timeout=3600.0 * 24 * 365,  # keep trying for ever; never give the pool up
        )
        self._failures = 0
        self._down_until = 0.0
        self._last_answer = float("-inf")  # monotonic time of the last answer (never: -inf)
        self._probing = False
        self._background: set[asyncio.Task[Any]] = set()
        self._in_use = 0  # connections taken from the pool and not given back yet
        self.stats = {"ok": 0, "unavailable": 0, "fast_fail": 0, "errors": 0, "overload": 0, "abandoned": 0}

    async def open(self) -> None:
        """Start the pool without waiting for PostgreSQL (agid starts even if the database is down)."""
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close(timeout=1.0)

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    async def run(self, query: Callable[..., Awaitable[T]], *args: Any, timeout: float) -> T:
        started = time.monotonic()
        probe = False
        if self.down:
            if self._probing:
                self.stats["fast_fail"] += 1
                raise DBUnavailable("database marked down after repeated failures")
            probe = self._probing = True
        try:
            result = await self._run(query, args, timeout)
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

    def _succeeded(self) -> None:
        self._failures = 0
        self._down_until = 0.0
        self._last_answer = time.monotonic()

    def _failed(self) -> None:
        self.stats["unavailable"] += 1
        self._failures += 1
        if self._failures >= FAILURES:
            if not self.down:
                log.warning("database unavailable %d times in a row; failing fast for %.1fs",
                            self._failures, self.retry_interval)  # fmt: skip
            self._down_until = time.monotonic() + self.retry_interval

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _give_back(self, getting: asyncio.Future[Any]) -> None:
        if getting.cancelled() or getting.exception() is not None:
            return
        self._keep(asyncio.get_running_loop().create_task(self._pool.putconn(getting.result())))

    async def _run(self, query: Callable[..., Awaitable[T]], args: tuple[Any, ...], timeout: float) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # psycopg_pool 3.1 leaves a cancelled getconn() in its queue of waiters, and later hands it a
        # connection that nobody returns: getconn runs in its own task, bounded by the pool's timeout, and
        # if we are cancelled meanwhile the connection it gets is given back.
        getting = asyncio.ensure_future(self._pool.getconn(timeout=timeout))
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
            done, _ = await asyncio.wait({work}, timeout=max(0.0, deadline - loop.time()))
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
            if not task.cancelled() and task.exception() is None:
                self._succeeded()  # it answered, late (a busy event loop): slow is not down

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
            await self._pool.putconn(conn)
