"""Test doubles shared by the daemon tests."""

from __future__ import annotations

import threading
from pathlib import Path

from confgend import cache
from confgend.engine import UnknownFile
from confgend.generators import GENERATORS


class FakeEngine:
    """Engine stand-in: `generate` blocks until `release` is set, counts calls, fails when told."""

    generators = GENERATORS

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.calls = 0
        self.release = threading.Event()
        self.release.set()
        self.fail: Exception | None = None
        self.content = b"[general]\nx = 1\n"
        self.lock = threading.Lock()

    def generate(self, name: str) -> bytes:
        if name not in self.generators:
            raise UnknownFile(name)
        with self.lock:
            self.calls += 1
        self.release.wait(10)
        if self.fail is not None:
            raise self.fail
        cache.write_atomic(cache.path_for(self.cache_dir, name), self.content)
        return self.content

    def cached(self, name: str) -> bytes | None:
        return cache.read(cache.path_for(self.cache_dir, name))
