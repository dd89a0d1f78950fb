"""Generation, blocking, for worker threads: read one snapshot through the pool, run generators, keep the
result on disk. All or nothing: a file is returned (and cached) only if its whole generation succeeded.

Thread-safe: each call takes its own pooled connection; the cache is written with rename, and only when
the content changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from confdb.read.confgend import Snapshot, load_snapshot, paused_gc
from confgend import cache
from confgend.generators import GENERATORS, Generated
from confgend.generators.base import Context

log = logging.getLogger("confgend.engine")

EMPTY = Snapshot()


class UnknownFile(LookupError):
    pass


class Engine:
    def __init__(
        self,
        connection: Callable[[], AbstractContextManager[Any]],
        cache_dir: Path,
        settings: Mapping[str, Any] | None = None,
        generators: Mapping[str, Generated] = GENERATORS,
        check_connections: Callable[[], None] | None = None,
    ) -> None:
        self.connection = connection  # e.g. ConnectionPool.connection
        self.check_connections = check_connections  # e.g. ConnectionPool.check
        self.cache_dir = cache_dir
        self.settings = settings or {}
        self.generators = generators
        # What the cache holds, per file: an unchanged file is not written (and fsync'd) again.
        self._on_disk: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def knows_on_disk(self, name: str, data: bytes) -> None:
        """`data` is what the cache file of `name` holds (read at start)."""
        with self._lock:
            self._on_disk[name] = data

    def snapshot(self) -> Snapshot:
        try:
            return self._read_snapshot()
        except (PoolTimeout, psycopg.errors.ConnectionTimeout):
            raise  # no connection at all: the database is down, not a connection lost
        except psycopg.OperationalError as exc:
            # After a PostgreSQL restart every pooled connection is stale and fails once: check them (the
            # pool replaces the broken ones) and try once more before calling the database down.
            log.warning("database connection lost (%s); trying once more", str(exc).strip().splitlines()[0])
            if self.check_connections is not None:
                self.check_connections()
            return self._read_snapshot()

    def _read_snapshot(self) -> Snapshot:
        with self.connection() as conn:
            return load_snapshot(conn)

    def generate(self, name: str) -> bytes:
        """One file from a fresh snapshot; cached on success. Raises on any failure."""
        gen = self.generators.get(name)
        if gen is None:
            raise UnknownFile(name)
        started = time.perf_counter()
        with paused_gc:  # hundreds of thousands of short-lived objects, no cycle among them
            snap = self.snapshot() if gen.needs_db else EMPTY
            data = self._render(name, gen, snap)
        log.info("generated %s: %d bytes in %.0f ms", name, len(data), (time.perf_counter() - started) * 1000)
        return data

    def generate_all(self, names: Iterable[str] | None = None) -> dict[str, bytes]:
        """Several files from ONE snapshot (consistent with each other); a failing file is left out."""
        names = list(names or self.generators)
        out = {}
        with paused_gc:
            snap = self.snapshot() if any(self.generators[n].needs_db for n in names) else EMPTY
            for name in names:
                try:
                    out[name] = self._render(name, self.generators[name], snap)
                except Exception:
                    log.exception("generating %s failed; its last good copy stays", name)
        return out

    def _render(self, name: str, gen: Generated, snap: Snapshot) -> bytes:
        ctx = Context(self.settings)
        data = gen.generate(snap, ctx).encode("utf-8")
        if ctx.skipped:
            log.warning("%s: %d object(s) left out (see above)", name, len(ctx.skipped))
        with self._lock:
            unchanged = self._on_disk.get(name) == data
        if not unchanged:
            cache.write_atomic(cache.path_for(self.cache_dir, name), data)
            with self._lock:
                self._on_disk[name] = data
        return data

    def cached(self, name: str) -> bytes | None:
        if name not in self.generators:
            return None
        return cache.read(cache.path_for(self.cache_dir, name))
