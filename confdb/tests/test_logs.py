"""The daemons' log lines: stamped by us in a file or a terminal; in the journal, which stamps them, they
carry their priority instead."""

from __future__ import annotations

import re
import subprocess
import sys

SCRIPT = (
    "import logging; from confdb import logs; logs.setup('INFO'); log = logging.getLogger('x');"
    "log.info('hello'); log.error('broken'); log.warning('careful'); log.debug('hidden')"
)


def run(journal: str | None) -> list[str]:
    env = {"PATH": "/usr/bin:/bin", **({"JOURNAL_STREAM": journal} if journal else {})}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
    return done.stderr.splitlines()


def test_a_line_carries_its_timestamp_outside_the_journal() -> None:
    lines = run(None)
    assert len(lines) == 3, lines
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO x: hello", lines[0]), lines


def test_in_the_journal_a_line_carries_its_priority() -> None:
    """journald reads `<N>` as the priority (`journalctl -p err` then finds the daemons' errors)."""
    assert run("8:1234") == ["<6>INFO x: hello", "<3>ERROR x: broken", "<4>WARNING x: careful"]
