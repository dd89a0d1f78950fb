"""The standard library's log records (the shared bus consumer, confdb) in ctid's twisted log: one stream on
stderr, one format (with its timestamp), one level filter.

A record made in another thread (the bus consumer's) is handed to the reactor, where the observers run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import IO, Any

from twisted.logger import LogLevel, eventAsText, globalLogPublisher
from twisted.python.failure import Failure
from twisted.python.threadable import isInIOThread

Event = dict[str, Any]

_LEVELS = (
    (logging.CRITICAL, LogLevel.critical),
    (logging.ERROR, LogLevel.error),
    (logging.WARNING, LogLevel.warn),
    (logging.INFO, LogLevel.info),
)
STDLIB_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def twisted_level(levelno: int) -> LogLevel:
    return next((level for floor, level in _LEVELS if levelno >= floor), LogLevel.debug)


def to_event(record: logging.LogRecord) -> Event:
    event: Event = {
        "log_namespace": record.name,
        "log_level": twisted_level(record.levelno),
        "log_format": "{log_text}",
        "log_text": record.getMessage(),
        "log_time": record.created,
        "log_source": None,
    }
    if record.exc_info and record.exc_info[1] is not None:
        _, value, tb = record.exc_info
        event["log_failure"] = Failure(value, type(value), tb)
    return event


class TwistedHandler(logging.Handler):
    """Publishes each record as a twisted log event, in the reactor thread."""

    def __init__(
        self,
        call_from_thread: Callable[..., object],
        publish: Callable[[Event], None] = globalLogPublisher,
    ) -> None:
        super().__init__()
        self._call = call_from_thread
        self._publish = publish

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = to_event(record)
        except Exception:
            self.handleError(record)
            return
        if isInIOThread():
            self._publish(event)
        else:
            self._call(self._publish, event)


def route_stdlib(level: str, call_from_thread: Callable[..., object]) -> None:
    """Send every standard library record at ``level`` (ctid's ``log.level``) or above to twisted's log."""
    root = logging.getLogger()
    root.handlers[:] = [TwistedHandler(call_from_thread)]
    root.setLevel(STDLIB_LEVELS[level])


_PRIORITIES = {LogLevel.critical: 2, LogLevel.error: 3, LogLevel.warn: 4, LogLevel.info: 6, LogLevel.debug: 7}


def journal_observer(stream: IO[str]) -> Callable[[Event], None]:
    """Under systemd: each line starts with its syslog priority (`<3>` for an error), which the journal
    reads, and carries no timestamp (the journal stamps it)."""

    def observe(event: Event) -> None:
        text = eventAsText(event, includeTimestamp=False)
        if not text:
            return
        priority = _PRIORITIES.get(event.get("log_level", LogLevel.info), 6)
        stream.write("".join(f"<{priority}>{line}\n" for line in text.splitlines()))
        stream.flush()

    return observe
