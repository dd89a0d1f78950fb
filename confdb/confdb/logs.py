"""One logging set-up for the daemons (agid, confgend, pbx-event-relay): a line per record on stderr.

Under systemd, stderr goes to the journal, which stamps every line itself (JOURNAL_STREAM is set);
anywhere else (the local stack's log files, a terminal) the line carries its own timestamp.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable

JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"
FILE_FORMAT = "%(asctime)s " + JOURNAL_FORMAT


def line_format() -> str:
    return JOURNAL_FORMAT if os.environ.get("JOURNAL_STREAM") else FILE_FORMAT


def setup(level: int | str, *, quiet: Iterable[str] = (), quiet_level: int = logging.WARNING) -> None:
    """The root logger at ``level`` writing to stderr; the loggers in ``quiet`` at ``quiet_level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(line_format()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in quiet:
        logging.getLogger(name).setLevel(quiet_level)
