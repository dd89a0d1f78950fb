"""pbx-admin against a test PBX (harness.fullpbx), as an administrator changes a running PBX.

    admin(pbx, "incall", "set", "0123456800", "--callerid-name-prefix", "VIP ")
    trunks = admin(pbx, "trunk", "list")             # --json: the parsed answer

Each change goes through the writer and is announced on the bus at once (the stack's pbx-admin has the
bus URL too); confgend then has Asterisk reload what changed. ``wait_cli`` polls Asterisk's CLI until
a change shows there: the live change has reached the calls.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from typing import Any

from confdb import roles
from harness.fullpbx import PBX_ADMIN, FullPbx


class AdminError(AssertionError):
    """pbx-admin refused or failed; the message has its exit status and output."""


def admin(pbx: FullPbx, *args: str, timeout: float = 30.0) -> Any:
    """``pbx-admin --json ARGS``: the parsed JSON it printed (None when it printed nothing)."""
    env = (
        os.environ | pbx.env | {"PBX_ADMIN_DSN": pbx.db.dsn(roles.WRITER), "PBX_ADMIN_BUS_URL": pbx.amqp_url}
    )
    argv = [str(PBX_ADMIN), "--json", *args]
    try:
        done = subprocess.run(
            argv,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise AdminError(f"pbx-admin {' '.join(args)}: no exit within {timeout:g} s") from exc
    if done.returncode != 0:
        raise AdminError(
            f"pbx-admin {' '.join(args)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return json.loads(done.stdout) if done.stdout.strip() else None


def wait_cli(
    pbx: FullPbx, command: str, ready: Callable[[str], bool], what: str, timeout: float = 15.0
) -> str:
    """Poll ``asterisk -rx command`` until ``ready(output)``; its output, or AssertionError naming ``what``
    with the last output seen."""
    deadline = time.monotonic() + timeout
    shown = ""
    while True:
        shown = pbx.asterisk.cli(command)
        if ready(shown):
            return shown
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{what}: not in Asterisk within {timeout:g} s; `{command}` shows:\n{shown}\n"
                f"--- confgend ---\n{pbx.daemon_log('confgend')[-3000:]}"
            )
        time.sleep(0.2)


class LogMark:
    """What a daemon logs from now on: ``mark = LogMark(pbx, "agid")``, then ``mark.wait(regex, what)``."""

    def __init__(self, pbx: FullPbx, daemon: str) -> None:
        self.pbx = pbx
        self.daemon = daemon
        self.start = len(pbx.daemon_log(daemon))

    def text(self) -> str:
        return self.pbx.daemon_log(self.daemon)[self.start :]

    def wait(self, pattern: str, what: str, timeout: float = 5.0) -> re.Match[str]:
        """The first match of ``pattern`` (a regex, multiline) in what was logged since the mark."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.text(), re.M)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{what}: no line matching {pattern!r} in {self.daemon}'s log within {timeout:g} s; "
                    f"it logged since the mark:\n{self.text()[-4000:]}"
                )
            time.sleep(0.1)
