"""Reads of one kind, asked by concurrent sessions, gathered into one query per turn of the event loop.

``loader.load(key, deadline)`` returns a future at once. Keys asked during one turn of the loop are sent
together in the next turn, as one ``query(conn, keys)`` through :meth:`agid.db.Database.run` (one
connection, one round trip, one statement timeout), which returns ``{key: value}``; a key it leaves out
gets None. Under light load a batch holds one key and costs what a single query did; under load, tens of
sessions share one query instead of queueing for connections.

Each caller has its own future, and its own deadline (a time of ``time.monotonic()``): its future is done at
the latest at that deadline (:class:`~agid.db.DBUnavailable` if the answer is not there yet), whatever the
other waiters of its batch; the batch query itself is bounded by the latest deadline of its waiters. A
caller cancelled at its deadline cancels only its own wait. When the batch fails, every waiter gets
DBUnavailable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from agid.errors import DBUnavailable

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Keys in one query at most; more keys asked in one turn make several batches.
MAX_KEYS = 250

BatchQuery = Callable[[Any, Sequence[K]], Awaitable[Mapping[K, V]]]


class BatchLoader(Generic[K, V]):
    def __init__(
        self, run: Callable[..., Awaitable[Any]], query: BatchQuery[K, V], *, max_keys: int = MAX_KEYS,
    ) -> None:  # fmt: skip
        self._db_run = run  # Database.run
        self.query = query
        self.max_keys = max_keys
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._deadlines: dict[K, float] = {}  # the latest deadline of the waiters of each key
        self._flush_scheduled = False
        self._running: set[asyncio.Task[None]] = set()
        self.stats = {"batches": 0, "keys": 0, "failed": 0}

    def load(self, key: K, deadline: float) -> asyncio.Future[V | None]:
        """The value of ``key`` (None: none), or DBUnavailable, at the latest at ``deadline``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V | None] = loop.create_future()
        left = deadline - time.monotonic()
        if left <= 0:
            future.set_exception(DBUnavailable("no time left before the deadline"))
            return future
        expiry = loop.call_later(left, _expire, future)
        future.add_done_callback(lambda _: expiry.cancel())
        self._waiting.setdefault(key, []).append(future)
        self._deadlines[key] = max(deadline, self._deadlines.get(key, deadline))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        waiting, self._waiting = self._waiting, {}
        deadlines, self._deadlines = self._deadlines, {}
        # keys whose every waiter is gone already (expired or cancelled) are not asked
        keys = [key for key, futures in waiting.items() if not all(f.done() for f in futures)]
        loop = asyncio.get_running_loop()
        for start in range(0, len(keys), self.max_keys):
            batch = {key: waiting[key] for key in keys[start : start + self.max_keys]}
            deadline = max(deadlines[key] for key in batch)
            task = loop.create_task(self._run(batch, deadline))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: dict[K, list[asyncio.Future[V | None]]], deadline: float) -> None:
        self.stats["batches"] += 1
        self.stats["keys"] += len(batch)
        try:
            values = await self._db_run(self.query, list(batch), deadline=deadline)
        except asyncio.CancelledError:
            for futures in batch.values():
                for future in futures:
                    future.cancel()
            raise
        except Exception as exc:  # DBUnavailable, or a bug of ours: each waiter decides what to do
            self.stats["failed"] += 1
            unavailable = isinstance(exc, DBUnavailable)
            if not unavailable:
                log.error("batch query %s failed", getattr(self.query, "__name__", self.query), exc_info=exc)
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(DBUnavailable(str(exc)) if unavailable else exc)
            return
        for key, futures in batch.items():
            value = values.get(key)
            for future in futures:
                if not future.done():  # a waiter cancelled at its deadline
                    future.set_result(value)

    async def close(self) -> None:
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.wait(set(self._running), timeout=1.0)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(DBUnavailable("no database answer before the deadline"))
