"""Reloads from the config bus: events poke the `Reloader`, which coalesces bursts into rounds. A round
(in a worker thread) regenerates every file from one snapshot, compares each with what Asterisk last got
(by content), and asks Asterisk over AMI to reload only the modules whose files changed.

Timing: the first round starts `coalesce_seconds` after the first event of a burst; while a round runs,
or for `min_interval` after it started, events only mark the state dirty and one more round follows. So
1,000 writes in one second cause two rounds. A round whose reloads failed (AMI down, busy too long) is
retried with a backoff doubling up to 60 s; its files stay "changed" until a reload succeeds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet import threads
from twisted.python.threadpool import ThreadPool

from confgend.engine import Engine
from confgend.generators import GENERATORS, Generated

log = logging.getLogger("confgend.reload")
IGNORED_OBJECTS = frozenset({"phonebook_entry", "device"})  # nothing we generate depends on them
MAX_BACKOFF = 60.0


class Reloader:
    def __init__(
        self,
        reactor: Any,
        pool: ThreadPool | None,
        engine: Engine,
        reload_modules: Callable[[list[str]], set[str]],
        *,
        coalesce_seconds: float = 0.2,
        min_interval: float = 2.0,
        baseline: Mapping[str, bytes] | None = None,
        generators: Mapping[str, Generated] = GENERATORS,
        in_thread: Callable[[Callable[[], bool]], Any] | None = None,
    ) -> None:
        self.reactor = reactor
        self.in_thread = in_thread or (lambda fn: threads.deferToThreadPool(reactor, pool, fn))
        self.engine = engine
        self.reload_modules = reload_modules
        self.coalesce = coalesce_seconds
        self.min_interval = min_interval
        self.generators = generators
        self._lock = threading.Lock()
        self.baseline: dict[str, bytes] = dict(baseline or {})  # what Asterisk has, per file
        self.dirty = False
        self.running = False
        self.stopped = False
        self.timer: Any = None
        self.last_start = -1e9
        self.backoff = 0.0
        self.rounds = 0
        self.reload_requests: list[list[str]] = []  # modules asked per round (for tests and benchmarks)

    # -- reactor side

    def served(self, name: str, data: bytes) -> None:
        """Asterisk fetched this content itself (its own reload): it is the new baseline."""
        with self._lock:
            self.baseline[name] = data

    def poke(self) -> None:
        if self.stopped:
            return
        self.dirty = True
        self._schedule()

    def stop(self) -> None:
        """No more rounds (a round already running finishes in its thread)."""
        self.stopped = True
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def _schedule(self, extra: float = 0.0) -> None:
        if self.stopped or self.running or self.timer is not None:
            return
        now = self.reactor.seconds()
        delay = max(self.coalesce, self.last_start + self.min_interval - now, extra)
        self.timer = self.reactor.callLater(delay, self._run)

    def _run(self) -> None:
        self.timer = None
        self.dirty = False
        self.running = True
        self.last_start = self.reactor.seconds()
        self.rounds += 1
        d = self.in_thread(self.round)
        d.addCallbacks(self._done, self._crashed)

    def _done(self, failed: bool) -> None:
        self.running = False
        if failed:
            self.backoff = min(MAX_BACKOFF, max(1.0, self.backoff * 2))
            log.warning("reload round incomplete; next attempt in %.0f s", self.backoff)
            self.dirty = True
            self._schedule(self.backoff)
            return
        self.backoff = 0.0
        if self.dirty:
            self._schedule()

    def _crashed(self, failure: Any) -> None:
        log.error("reload round failed: %s", failure.getErrorMessage())
        self._done(True)

    # -- worker thread

    def round(self) -> bool:
        """Regenerate, diff, reload. Returns True when something must be retried."""
        started = time.perf_counter()
        try:
            files = self.engine.generate_all(self.generators)
        except Exception as exc:
            log.warning(
                "cannot regenerate (%s: %s); Asterisk keeps its configuration", type(exc).__name__, exc
            )
            return True
        with self._lock:
            changed = [name for name, data in files.items() if self.baseline.get(name) != data]
        if not changed:
            log.info("config event: no file changed (%.0f ms)", (time.perf_counter() - started) * 1000)
            return False
        modules: dict[str, list[str]] = {}
        for name in changed:
            module = self.generators[name].reload
            if module is None:
                log.warning("%s changed: takes effect at the next Asterisk restart", name)
                with self._lock:
                    self.baseline[name] = files[name]
            else:
                modules.setdefault(module, []).append(name)
        if not modules:
            return False
        self.reload_requests.append(list(modules))
        failed = self.reload_modules(list(modules))
        with self._lock:
            for module, names in modules.items():
                if module not in failed:
                    for name in names:
                        self.baseline[name] = files[name]
        log.info(
            "changed: %s; reloaded: %s%s",
            ", ".join(changed),
            ", ".join(m for m in modules if m not in failed) or "nothing",
            f"; failed: {', '.join(sorted(failed))}" if failed else "",
        )
        return bool(failed)


def interesting(routing_key: str) -> bool:
    return routing_key.split(".", 1)[0] not in IGNORED_OBJECTS
