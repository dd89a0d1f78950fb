"""A tiny progress reporter for long pbx-admin commands (import, demo), on stderr, without dependencies.

Three modes: ``bar`` redraws one line with a carriage return (for a terminal, or forced by --progress);
``lines`` prints one line per 10 % step (logs, pipes); ``off`` prints nothing.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 30
REDRAW_SECONDS = 0.1


def choose_mode(stream: TextIO, *, forced: bool = False, quiet: bool = False) -> str:
    if quiet:
        return "off"
    if forced:
        return "bar"
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


class Progress:
    """``phase(label, total)`` starts a phase, ``advance(n)`` moves it on, ``done()`` ends the output."""

    def __init__(self, stream: TextIO | None = None, mode: str = "lines", prefix: str = "") -> None:
        if mode not in ("bar", "lines", "off"):
            raise ValueError(f"unknown progress mode {mode!r}")
        self.stream = stream if stream is not None else sys.stderr
        self.mode = mode
        self.prefix = prefix
        self.label = ""
        self.total = 0
        self.count = 0
        self._started = 0.0
        self._last_draw = 0.0
        self._last_step = -1
        self._open_bar = False

    def phase(self, label: str, total: int) -> None:
        self._finish_bar()
        self.label = f"{self.prefix}: {label}" if self.prefix else label
        self.total, self.count = max(total, 0), 0
        self._started = time.monotonic()
        self._last_step = -1
        self._draw(force=True)

    def advance(self, n: int = 1) -> None:
        self.count = min(self.count + n, self.total) if self.total else self.count + n
        self._draw(force=self.count >= self.total)

    def done(self) -> None:
        self._finish_bar()

    def _percent(self) -> int:
        return 100 if not self.total else self.count * 100 // self.total

    def _draw(self, *, force: bool = False) -> None:
        if self.mode == "off":
            return
        percent = self._percent()
        if self.mode == "lines":
            step = percent // 10
            if step > self._last_step:
                self._last_step = step
                self.stream.write(f"{self.label}: {percent}% ({self.count}/{self.total})\n")
                self.stream.flush()
            return
        now = time.monotonic()
        if not force and now - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = now
        filled = BAR_WIDTH * percent // 100
        elapsed = now - self._started
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent:3d}% "
            f"{self.count}/{self.total} {elapsed:.1f}s"
        )
        self.stream.flush()
        self._open_bar = True

    def _finish_bar(self) -> None:
        if self._open_bar:
            self.stream.write("\n")
            self.stream.flush()
            self._open_bar = False
