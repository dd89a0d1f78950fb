"""Reverse lookup: a caller's number -> a name, from several sources asked at once by one deadline.

Sources, in priority order by default (``lookup_sources``): ``users`` (internal users by caller-ID number
or extension), ``phonebook`` (the phonebook table, by normalised number), ``csv`` (CSV files loaded in
memory, by normalised number). All are started together; the answer is the highest-priority source that
found a name, as soon as every source above it has answered "no" (so a hit from ``users`` returns at
once). Whatever has not answered by the deadline counts as unknown. The deadline is absolute (a time of
``time.monotonic()``, the session's, see :mod:`agid.handlers.reverse_lookup`): the wait and the database
reads of the sources all end by it.

Results are cached per normalised number for ``lookup_cache_ttl`` seconds (bounded, least recently used
out first). A miss is cached only when every source answered, so a database outage does not remember
"nobody" for a number that has a name.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from agid.db import Database, DBUnavailable
from confdb.numbers import normalize
from confdb.read import agid as read

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LookupResult:
    number: str  # normalised
    name: str | None
    source: str | None  # users / phonebook / csv, or None
    complete: bool  # every source answered (False: some timed out or failed)
    cached: bool = False


class TTLCache:
    """A bounded mapping whose entries expire ``ttl`` seconds after they were put."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, LookupResult]] = OrderedDict()

    def get(self, key: str) -> LookupResult | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def put(self, key: str, value: LookupResult) -> None:
        if self.size <= 0:
            return
        self._data[key] = (self._clock() + self.ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class CSVDirectory:
    """Names by normalised number from CSV files with a header row (columns ``number`` and ``name``;
    ``display_name`` is accepted for ``name``). Loaded in a thread, reloaded when a file changes; while a
    load runs, lookups use the previous contents."""

    def __init__(self, paths: Sequence[str], country: str) -> None:
        self.paths = [Path(p) for p in paths]
        self.country = country
        self._names: dict[str, str] = {}
        self._stamp: tuple[tuple[str, float, int], ...] | None = None
        self._loading: asyncio.Task[None] | None = None

    def _current_stamp(self) -> tuple[tuple[str, float, int], ...]:
        stamp = []
        for path in self.paths:
            try:
                st = path.stat()
                stamp.append((str(path), st.st_mtime, st.st_size))
            except OSError:
                stamp.append((str(path), 0.0, -1))
        return tuple(stamp)

    def _load(self, stamp: tuple[tuple[str, float, int], ...]) -> None:
        names: dict[str, str] = {}
        for path in self.paths:
            try:
                with path.open(newline="", encoding="utf-8", errors="replace") as handle:
                    for row in csv.DictReader(handle):
                        number = (row.get("number") or "").strip()
                        name = (row.get("name") or row.get("display_name") or "").strip()
                        name = "".join(c for c in name if c.isprintable())[:128]
                        if number and name:
                            names.setdefault(normalize(number, country=self.country), name)
            except (OSError, csv.Error) as exc:
                log.warning("reverse lookup CSV %s not read: %s", path, exc)
        self._names = names
        self._stamp = stamp

    async def _refresh(self) -> None:
        stamp = await asyncio.to_thread(self._current_stamp)
        if stamp != self._stamp:
            await asyncio.to_thread(self._load, stamp)

    async def find(self, normalized: str) -> str | None:
        if not self.paths:
            return None
        if self._loading is None or self._loading.done():
            self._loading = asyncio.get_running_loop().create_task(self._refresh())
        # the load goes on in the background if our deadline passes first
        await asyncio.shield(self._loading)
        return self._names.get(normalized)

    async def close(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
            with contextlib.suppress(BaseException):
                await self._loading


class ReverseLookup:
    def __init__(
        self,
        db: Database | None,
        *,
        country: str,
        sources: Sequence[str] = ("users", "phonebook", "csv"),
        csv_files: Sequence[str] = (),
        budget: float = 0.2,
        cache_ttl: float = 60.0,
        cache_size: int = 10000,
    ) -> None:
        self.db = db
        self.country = country
        self.sources = tuple(sources)
        self.budget = budget
        self.cache = TTLCache(cache_ttl, cache_size)
        self.csv = CSVDirectory(csv_files, country)
        # the sources asked: without ``csv`` when it has no file (it would only answer "no")
        self._asked = self.sources if self.csv.paths else tuple(s for s in self.sources if s != "csv")
        self._late: set[asyncio.Task[object]] = set()

    def _source(self, name: str, raw: str, normalized: str, deadline: float) -> asyncio.Future[str | None]:
        """The answer of one source as a future: a batched database read, or the CSV files."""
        if name == "csv":
            task = asyncio.get_running_loop().create_task(self.csv.find(normalized))
            self._late.add(task)
            task.add_done_callback(self._late.discard)
            return task
        if self.db is None:
            future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            future.set_exception(DBUnavailable("no database configured"))
            return future
        if name == "users":
            forms = tuple(sorted({raw, normalized, "+" + normalized} - {"", "+"}))
            return self.db.load(read.internal_names, forms, deadline=deadline)
        return self.db.load(read.phonebook_names, normalized, deadline=deadline)

    async def lookup(self, raw: str, deadline: float | None = None) -> LookupResult:
        """The name of ``raw``, asked until ``deadline`` (``time.monotonic()``; None: ``budget`` from now)."""
        if deadline is None:
            deadline = time.monotonic() + self.budget
        normalized = normalize(raw, country=self.country)
        if not normalized:
            return LookupResult(normalized, None, None, True)
        cached = self.cache.get(normalized)
        if cached is not None:
            return LookupResult(cached.number, cached.name, cached.source, True, cached=True)
        if deadline <= time.monotonic():
            return LookupResult(normalized, None, None, False)  # no time left to ask anybody
        # Sources still running at the deadline are not cancelled: a database read is over by then (its
        # query, shared with other sessions, ends by itself: one cancelled in flight would cost its
        # connection); the CSV files go on loading for the next lookups.
        answers = {name: self._source(name, raw, normalized, deadline) for name in self._asked}
        for name, answer in answers.items():
            answer.add_done_callback(partial(_log_failure, name))
        pending = set(answers.values())
        while pending and self._decided(answers) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            _, pending = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        found = self._decided(answers, final=True)
        complete = all(_answered(answer) for answer in answers.values())
        if found is not None:
            result = LookupResult(normalized, found[1], found[0], complete)
        else:
            result = LookupResult(normalized, None, None, complete)
        if found is not None or complete:
            self.cache.put(normalized, result)
        return result

    @staticmethod
    def _decided(
        answers: dict[str, asyncio.Future[str | None]], final: bool = False
    ) -> tuple[str, str] | None:
        """(source, name) of the first source in priority order that found a name, once all sources
        before it have answered (``final``: skipping those that did not); None if undecided or unknown."""
        for name, answer in answers.items():
            if not answer.done():
                if final:
                    continue
                return None
            found = answer.result() if _answered(answer) else None
            if found:
                return name, found
        return None

    async def close(self) -> None:
        for task in list(self._late):
            task.cancel()
        await self.csv.close()


def _answered(answer: asyncio.Future[str | None]) -> bool:
    """True when the source answered (a name or "no"), False while it runs or when it failed."""
    return answer.done() and not answer.cancelled() and answer.exception() is None


def _log_failure(source: str, answer: asyncio.Future[str | None]) -> None:
    if answer.cancelled():
        return
    exc = answer.exception()  # retrieved here, awaited or not
    if isinstance(exc, DBUnavailable):
        log.info("reverse lookup source %s unavailable: %s", source, exc)
    elif exc is not None:
        log.error("reverse lookup source %s failed", source, exc_info=exc)
