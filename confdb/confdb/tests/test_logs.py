"""The daemons' log lines: stamped by us in a file or a terminal, by the journal under systemd."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

SCRIPT = "import logging; from confdb import logs; logs.setup('INFO'); logging.getLogger('x').info('hello')"


@pytest.mark.parametrize(("journal", "stamped"), [(None, True), ("8:1234", False)])
def test_a_line_carries_a_timestamp_unless_the_journal_stamps_it(journal: str | None, stamped: bool) -> None:
    env = {"PATH": "/usr/bin:/bin", **({"JOURNAL_STREAM": journal} if journal else {})}
    err = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True
    ).stderr
    assert err.endswith("INFO x: hello\n")
    assert bool(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO x: hello", err)) is stamped
