"""Live changes to a test PBX (harness.fullpbx) through confdb's writer, as pbx-admin makes them, each one
undone at the end; and what Asterisk and agid did since a mark in their logs.

    changes = Changes(pbx)
    changes.user("1002", dnd=True)                      # agid reads it at the next call: nothing to wait for
    changes.remove_voicemail("1013")                    # returns once Asterisk no longer has the box
    changes.trunk("demo-provider", host="127.0.0.2:5099", register=False)   # ... once Asterisk has it
    changes.undo()                                      # every change reverted, newest first, and waited for

    mark = LogMark.now(pbx)
    ... a call ...
    mark.wait_asterisk(r'VoiceMail\\("PJSIP/abc-\\w+", "1002@default,b"\\)', "the busy greeting")
    mark.agid()                                         # agid's log since the mark

A change reaches Asterisk through the outbox, pbx-event-relay, the bus and confgend's reload (about 1 s);
the waits poll Asterisk's CLI until it shows the change. The Asterisk log read here is its console output
(harness.asterisk: verbose 3, the dialplan as it runs: each application, each sound played).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from confdb import roles
from confdb.writer import outcalls, trunks, user_links, users
from harness import admin, daemons
from harness.fullpbx import FullPbx

TIMEOUT = 15.0
# What app_voicemail says after "the person at extension ...": its busy and unavailable greetings
GREETING_SOUNDS = {"b": "vm-isonphone", "u": "vm-isunavail"}


class Changes:
    """Data changes of one test (or module), written as pbx-admin writes them; ``undo()`` reverts them."""

    def __init__(self, pbx: FullPbx) -> None:
        self.pbx = pbx
        self._undo: list[Callable[[], None]] = []

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.pbx.db.dsn(roles.WRITER))

    def user(self, exten: str, **fields: Any) -> None:
        """users.update_user: ring_seconds, dnd, simultaneous_calls, fwd_* ... (agid reads them per call)."""
        with self._connect() as conn:
            user_id = users.find_user(conn, exten)
            users.validate_fields(fields)  # users.USER_FIELDS only: the names below are column names
            row = conn.execute(f"SELECT {', '.join(fields)} FROM users WHERE id = %s", (user_id,)).fetchone()
            users.update_user(conn, user_id, fields)
        before = dict(zip(fields, row or (), strict=True))
        self._undo.append(lambda: self._write_user(user_id, before))

    def _write_user(self, user_id: int, values: dict[str, Any]) -> None:
        with self._connect() as conn:
            users.update_user(conn, user_id, values)

    def remove_voicemail(self, exten: str) -> None:
        """The user's box deleted (user_links.set_voicemail); returns once Asterisk no longer has it. Undone
        by a new box with the same number, PIN and e-mail address."""
        with self._connect() as conn:
            user_id = users.find_user(conn, exten)
            row = conn.execute(
                "SELECT v.mailbox, v.context, v.pin, v.email FROM users u JOIN voicemails v "
                "ON v.id = u.voicemail_id WHERE u.id = %s",
                (user_id,),
            ).fetchone()
            assert row is not None, f"user {exten} has no voicemail box to remove"
            user_links.set_voicemail(conn, user_id, enabled=False)
        mailbox, context, pin, email = row
        self._wait_mailbox(mailbox, context, present=False)

        def restore() -> None:
            with self._connect() as conn:
                user_links.set_voicemail(conn, user_id, enabled=True, pin=pin, email=email or None)
            self._wait_mailbox(mailbox, context, present=True)

        self._undo.append(restore)

    def _wait_mailbox(self, mailbox: str, context: str, *, present: bool) -> None:
        listed = re.compile(rf"^{re.escape(context)}\s+{re.escape(mailbox)}\s", re.MULTILINE)
        self.wait_cli(
            f"voicemail show users for {context}",
            lambda shown: bool(listed.search(shown)) == present,
            f"voicemail box {mailbox}@{context} {'created' if present else 'deleted'}",
        )

    def trunk(self, name: str, **changes: Any) -> None:
        """trunks.update_trunk (host, register, identify...); returns once Asterisk dials the trunk's
        (new) host."""
        with self._connect() as conn:
            before = next(t for t in trunks.list_trunks(conn) if t["name"] == name)
            trunks.update_trunk(conn, name, **changes)
        self._wait_trunk_host(name, changes.get("host", before["host"]))
        undo = {key: before[key] for key in changes}

        def restore() -> None:
            with self._connect() as conn:
                trunks.update_trunk(conn, name, **undo)
            self._wait_trunk_host(name, before["host"])

        self._undo.append(restore)

    def _wait_trunk_host(self, name: str, host: str) -> None:
        self.wait_cli(
            f"pjsip show aor {name}",
            lambda shown: f"contact              : sip:{host}\n" in shown,
            f"trunk {name} dialling sip:{host}",
        )

    def outcall(self, name: str, *, ring_seconds: int) -> None:
        """outcalls.update_outcall's ring time (agid's outgoing_user reads it per call)."""
        with self._connect() as conn:
            row = conn.execute("SELECT ring_seconds FROM outcalls WHERE name = %s", (name,)).fetchone()
            assert row is not None, f"no outcall {name}"
            outcalls.update_outcall(conn, name, ring_seconds=ring_seconds)

        def restore() -> None:
            with self._connect() as conn:
                outcalls.update_outcall(conn, name, ring_seconds=row[0])

        self._undo.append(restore)

    def undo(self) -> None:
        """Every change reverted, newest first; the first failure is raised once all were tried."""
        failures: list[Exception] = []
        while self._undo:
            try:
                self._undo.pop()()
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    def wait_cli(
        self, command: str, ready: Callable[[str], bool], what: str, timeout: float = TIMEOUT
    ) -> str:
        """Poll ``asterisk -rx command`` until ``ready(output)``: the change has reached Asterisk."""
        return admin.wait_cli(self.pbx, command, ready, what, timeout)


@dataclass(frozen=True)
class LogMark:
    """Where Asterisk's console log and agid's log ended at one moment: what happened since is after it."""

    pbx: FullPbx
    asterisk_at: int
    agid_at: int

    @classmethod
    def now(cls, pbx: FullPbx) -> LogMark:
        return cls(pbx, _size(pbx.asterisk.console_log), _size(daemons.log_file(pbx.base_dir, "agid")))

    def asterisk(self) -> str:
        return _read_from(self.pbx.asterisk.console_log, self.asterisk_at)

    def agid(self) -> str:
        return _read_from(daemons.log_file(self.pbx.base_dir, "agid"), self.agid_at)

    def wait_asterisk(self, pattern: str, what: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """The first match of ``pattern`` in Asterisk's console log since the mark, once it is there."""
        return self._wait(self.asterisk, pattern, what, "Asterisk's console log", timeout)

    def wait_agid(self, pattern: str, what: str, timeout: float = TIMEOUT) -> re.Match[str]:
        return self._wait(self.agid, pattern, what, "agid's log", timeout)

    def wait_voicemail(self, channel: str, mailbox: str, greeting: str, timeout: float = TIMEOUT) -> None:
        """VoiceMail(``mailbox``) ran on the channel named by the regex ``channel`` with ``greeting`` (b:
        busy, u: unavailable), and that greeting's sound was played to it: what the caller heard."""
        self.wait_asterisk(
            rf'VoiceMail\("{channel}", "{re.escape(mailbox)},{greeting}"\)',
            f"VoiceMail({mailbox},{greeting}) on {channel}",
            timeout,
        )
        sound = GREETING_SOUNDS[greeting]
        self.wait_asterisk(rf"<{channel}> Playing '{sound}\.", f"{sound} played to {channel}", timeout)

    @staticmethod
    def _wait(read: Callable[[], str], pattern: str, what: str, where: str, timeout: float) -> re.Match[str]:
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = read()
            found = compiled.search(text)
            if found:
                return found
            if time.monotonic() >= deadline:
                tail = "\n".join(text.splitlines()[-40:]) or "(nothing)"
                raise AssertionError(
                    f"{what}: /{pattern}/ not in {where} within {timeout:g} s; since the mark:\n{tail}"
                )
            time.sleep(0.1)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _read_from(path: Path, offset: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")
