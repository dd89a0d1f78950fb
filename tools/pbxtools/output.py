"""Bounded, ordered output off the event loop.

The proxies must not block their event loop on a slow terminal, pipe or disk, and must not buffer without
bound either. :class:`OutputSink` queues at most ``max_pending`` writes; a worker task hands them in
batches to a thread, which writes and flushes. When the queue is full, :meth:`OutputSink.write` waits:
the relay of the traffic being displayed then waits too (backpressure), instead of dropping output or
growing memory.

When a write fails (disk full, closed pipe), the sink records the error, discards whatever is still
queued and makes every later :meth:`write` raise :class:`OutputError`. The proxies catch that, say so once
and keep relaying the traffic without output.
"""

from __future__ import annotations

import asyncio
from typing import BinaryIO

DEFAULT_MAX_PENDING = 256
_BATCH = 64


class OutputError(OSError):
    """Output can no longer be written."""


class OutputSink:
    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._queue: asyncio.Queue[tuple[BinaryIO, bytes] | None] = asyncio.Queue(max_pending)
        self._task: asyncio.Task[None] | None = None
        self.error: OSError | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="output-sink")

    async def write(self, stream: BinaryIO, data: bytes) -> None:
        """Queue ``data`` for ``stream``; waits while the queue is full."""
        if self.error is not None:
            raise OutputError(self.error.errno, _describe(self.error))
        if self._task is None:
            self.start()
        await self._queue.put((stream, data))

    async def close(self) -> None:
        """Write everything queued, then stop the worker."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            batch: list[tuple[BinaryIO, bytes]] = []
            done = item is None
            if item is not None:
                batch.append(item)
            while not done and len(batch) < _BATCH and not self._queue.empty():
                extra = self._queue.get_nowait()
                if extra is None:
                    done = True
                else:
                    batch.append(extra)
            if batch and self.error is None:
                try:
                    await asyncio.to_thread(_write_batch, batch)
                except (OSError, ValueError) as exc:  # ValueError: the stream was closed under us
                    self.error = exc if isinstance(exc, OSError) else OSError(str(exc))
            if done:
                return


def _write_batch(batch: list[tuple[BinaryIO, bytes]]) -> None:
    touched: list[BinaryIO] = []
    for stream, data in batch:
        stream.write(data)
        if stream not in touched:
            touched.append(stream)
    for stream in touched:
        stream.flush()


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
