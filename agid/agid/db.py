"""agid's way to PostgreSQL: one bounded async pool of role ``pbx_agid``, every use bounded in time.

``await db.run(query, *args, timeout=...)`` borrows a connection, runs ``query(conn, *args)`` (a coroutine
of :mod:`confdb.read.agid`) and returns its result, or raises :class:`DBUnavailable` when it could not be
done in time: no connection free within the timeout, PostgreSQL down, slow or frozen (the server-side
``statement_timeout`` catches a slow query, the client-side timeout a frozen or unreachable server).
Handlers catch DBUnavailable and degrade; they never wait longer than their budget.

A connection abandoned in the middle of a query is closed, not reused (the pool replaces it in the
background). After ``FAILURES`` unavailabilities in a row the database is considered down for
``retry_interval`` seconds: calls then fail at once, except one probe at a time, so that a dead database
costs each call nothing instead of its whole budget.
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
        self._probing = False
        self._returning: set[asyncio.Task[None]] = set()
        self.stats = {"ok": 0, "unavailable": 0, "fast_fail": 0, "errors": 0}

    async def open(self) -> None:
        """Start the pool without waiting for PostgreSQL (agid starts even if the database is down)."""
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close(timeout=1.0)

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    async def run(self, query: Callable[..., Awaitable[T]], *args: Any, timeout: float) -> T:
        probe = False
        if self.down:
            if self._probing:
                self.stats["fast_fail"] += 1
                raise DBUnavailable("database marked down after repeated failures")
            probe = self._probing = True
        try:
            result = await self._run(query, args, timeout)
        except DBUnavailable:
            self._failed()
            raise
        finally:
            if probe:
                self._probing = False
        self._failures = 0
        self._down_until = 0.0
        self.stats["ok"] += 1
        return result

    def _failed(self) -> None:
        self.stats["unavailable"] += 1
        self._failures += 1
        if self._failures >= FAILURES:
            if not self.down:
                log.warning("database unavailable %d times in a row; failing fast for %.1fs",
                            self._failures, self.retry_interval)  # fmt: skip
            self._down_until = time.monotonic() + self.retry_interval

    def _give_back(self, getting: asyncio.Future[Any]) -> None:
        if getting.cancelled() or getting.exception() is not None:
            return
        task = asyncio.get_running_loop().create_task(self._pool.putconn(getting.result()))
        self._returning.add(task)
        task.add_done_callback(self._returning.discard)

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
            raise DBUnavailable(f"no database connection within {timeout:.3f}s") from None
        except psycopg.Error as exc:
            raise DBUnavailable(f"database connection: {exc}") from None
        clean = False
        try:
            async with asyncio.timeout_at(deadline):
                result = await query(conn, *args)
            clean = True
            return result
        except TimeoutError:
            raise DBUnavailable(f"no database answer within {timeout:.3f}s") from None
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
            if not clean or conn.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                # abandoned in the middle of something: never hand it out again (close does not block)
                await conn.close()
            await self._pool.putconn(conn)
