"""Small process helpers shared by the server wrappers."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import time
from collections.abc import Sequence
from pathlib import Path


class ServerError(RuntimeError):
    """A harness server failed to start or stop; the message carries its log tail."""


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, or a note that it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:])


def fail(what: str, log: Path, detail: str = "") -> ServerError:
    """Build a ServerError naming what failed, with the log tail."""
    extra = f"\n{detail.rstrip()}" if detail else ""
    return ServerError(f"{what}{extra}\n--- last lines of {log} ---\n{log_tail(log)}")


def as_user(cmd: Sequence[str], user: str | None) -> list[str]:
    """Prefix ``cmd`` so that it runs as ``user`` when we are root (and as ourselves otherwise)."""
    if user is None or os.geteuid() != 0:
        return list(cmd)
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *cmd]


def chown_to(path: Path, user: str | None) -> None:
    """Give ``path`` (not recursively) to ``user`` when we are root."""
    if user is None or os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) is in parentheses and may contain spaces: split after its closing paren.
    return raw[raw.rindex(")") + 2 :].split()


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def pid_runs(pid: int | None, program: str) -> bool:
    """True if ``pid`` is alive and runs ``program`` (its /proc comm), so a stale pid file is not believed."""
    if pid is None or not pid_alive(pid):
        return False
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == program
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid``, parents before children."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = parents.get(todo.pop(0), [])
        found.extend(kids)
        todo.extend(kids)
    return found


def signal_quietly(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to ``pid``, ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has exited (or is a zombie); True if it did within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def read_pid(path: Path) -> int | None:
    """The pid in the first line of a pid file, or None."""
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None
