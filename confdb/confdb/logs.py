"""One logging set-up for the daemons (agid, confgend, pbx-event-relay): a line per record on stderr.

Under systemd, stderr goes to the journal, which stamps every line itself (JOURNAL_STREAM is set) and
reads a syslog priority prefix (`<3>` for an error): each line starts with its record's, so that
`journalctl -p err` finds the daemons' errors. Anywhere else (the local stack's log files, a terminal)
the line carries its own timestamp instead.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable

JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"
FILE_FORMAT = "%(asctime)s " + JOURNAL_FORMAT


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 2 critical, 3 error, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    return 6 if levelno >= logging.INFO else 7


class JournalFormatter(logging.Formatter):
    """``<priority>`` then the line: systemd's journal takes the prefix as the record's priority."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{syslog_priority(record.levelno)}>{super().format(record)}"


def formatter() -> logging.Formatter:
    if os.environ.get("JOURNAL_STREAM"):
        return JournalFormatter(JOURNAL_FORMAT)
    return logging.Formatter(FILE_FORMAT)


def setup(level: int | str, *, quiet: Iterable[str] = (), quiet_level: int = logging.WARNING) -> None:
    """The root logger at ``level`` writing to stderr; the loggers in ``quiet`` at ``quiet_level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in quiet:
        logging.getLogger(name).setLevel(quiet_level)
