"""`CTISession`: one client's requests, as a plain object (the protocol feeds it lines).

Each request is checked against its JSON Schema (``schemas/client/<class>.json``) before anything else,
then runs its handler from the command table (`ctid.cti.commands`); commands act only on the logged-in
user's own line, calls and queue memberships.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from ctid.cti import text
from ctid.cti.commands import Bound
from ctid.cti.validator import SchemaError, load, validate
from ctid.directory import User

if TYPE_CHECKING:
    from ctid.cti.server import CTIConfig

log = Logger()


def encode(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        return data.encode() + b"\n"
    except UnicodeEncodeError:  # bytes from Asterisk that were not UTF-8 (a Latin-1 caller name)
        return text.scrub(data).encode() + b"\n"


class CTISession:
    def __init__(
        self,
        conn: Any,
        *,
        commands: Mapping[str, Bound],
        config: CTIConfig,
        clock: Any,
        on_closed: Callable[[CTISession], None],
    ) -> None:
        self.conn = conn
        self.commands = commands
        self.config = config
        self._on_closed = on_closed
        self.peer = getattr(conn, "peer_host", "?")
        self.user: User | None = None
        self.topics: frozenset[str] = frozenset()
        self.closed = False
        self.logging_in = False
        self.errors = 0
        self._login_timer = clock.callLater(config.login_timeout, self._login_timeout)

    def describe(self) -> str:
        return self.user.cti_login or f"user {self.user.id}" if self.user else "not logged in"

    # -- from the protocol

    def line_received(self, line: bytes) -> None:
        try:
            msg = text.parse(line)
        except text.Malformed as exc:
            self.error(None, None, "malformed", str(exc))
            return
        if not isinstance(msg, dict):
            self.error(None, None, "malformed", "a message must be a JSON object")
            return
        rid = msg.get("id")
        if not (rid is None or (isinstance(rid, str) and len(rid) <= 64) or type(rid) is int):
            rid = None
        cls = msg.get("class")
        where = text.lone_surrogate(line, msg)
        if where is not None:  # no value that cannot be written as UTF-8 goes any further
            known = isinstance(cls, str) and load("client", cls) is not None
            self.error(
                rid if not isinstance(rid, str) or text.is_text(rid) else None,
                cls if known else None,
                "malformed",
                f"{where[:100]}: a lone surrogate (\\ud800-\\udfff escape without its pair) is not text",
            )
            return
        schema = load("client", cls) if isinstance(cls, str) else None
        if schema is None:
            shown = cls if isinstance(cls, str) and len(cls) <= 40 else None
            self.error(rid, shown, "unknown_class", f"unknown message class {json.dumps(cls)[:60]}")
            return
        try:
            validate(msg, schema)
        except SchemaError as exc:
            self.error(rid, cls, "invalid_request", str(exc)[:300])
            return
        command = self.commands[cls]  # the table matches the schemas (checked when the server is built)
        if self.user is None and not command.before_login:
            self.error(rid, cls, "not_logged_in", "log in first")
            return
        command.run(self, rid, cls, msg)

    def too_large(self) -> None:
        self.error(None, None, "too_large", f"a message is limited to {self.config.max_message_bytes} bytes")

    def connection_lost(self) -> None:
        self.closed = True
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        self._on_closed(self)

    # -- output

    def send(self, obj: dict[str, Any]) -> None:
        if not self.closed:
            self.conn.send_bytes(encode(obj))

    def respond(self, rid: Any, request: str, **data: Any) -> None:
        self.send({"class": "response", "id": rid, "request": request, "ok": True, **data})

    def error(self, rid: Any, request: str | None, code: str, message: str, **extra: Any) -> None:
        self.send(
            {
                "class": "error",
                "id": rid,
                "request": request,
                "ok": False,
                "code": code,
                "message": message,
                **extra,
            }
        )
        if code in ("malformed", "too_large", "invalid_request", "unknown_class"):
            self.errors += 1
            if self.errors > self.config.max_errors:
                log.warn(
                    "CTI: client {peer} ({who}) sent too many bad messages; disconnected",
                    peer=self.peer,
                    who=self.describe(),
                )
                self.send(
                    {
                        "class": "error",
                        "id": None,
                        "request": None,
                        "ok": False,
                        "code": "too_many_errors",
                        "message": "too many bad messages",
                    }
                )
                self.conn.close()

    def _login_timeout(self) -> None:
        self._login_timer = None
        if self.user is None and not self.closed:
            self.error(None, None, "timeout", "no login in time")
            self.conn.close()

    # -- for the command handlers (`ctid.cti.commands.base.Client`)

    def logged_in(self, user: User) -> None:
        self.user = user
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        self._login_timer = None
