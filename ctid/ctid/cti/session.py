"""`CTISession`: one client's requests, as a plain object (the protocol feeds it lines).

Each request is checked against its JSON Schema (``schemas/client/<class>.json``) before anything else;
commands act only on the logged-in user's own line, calls and queue memberships.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from ctid.ami.errors import (
    AMIActionError,
    AMIBackpressureError,
    AMIConnectionLostError,
    AMINotConnectedError,
    AMITimeoutError,
    AsteriskNotReadyError,
)
from ctid.cti import PROTOCOL_VERSION, text
from ctid.cti.passwords import PasswordCheckBusy
from ctid.cti.validator import SchemaError, load, validate
from ctid.directory import User
from ctid.state.model import Channel

if TYPE_CHECKING:
    from ctid.cti.server import CTIServer

log = Logger()
_OPEN = {"login", "ping"}


def encode(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        return data.encode() + b"\n"
    except UnicodeEncodeError:  # bytes from Asterisk that were not UTF-8 (a Latin-1 caller name)
        return text.scrub(data).encode() + b"\n"


class CTISession:
    def __init__(self, hub: CTIServer, conn: Any) -> None:
        self.hub = hub
        self.conn = conn
        self.peer = getattr(conn, "peer_host", "?")
        self.user: User | None = None
        self.topics: frozenset[str] = frozenset()
        self.closed = False
        self._logging_in = False
        self.errors = 0
        cfg = hub.config
        self._login_timer = hub.clock.callLater(cfg.login_timeout, self._login_timeout)

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
        if self.user is None and cls not in _OPEN:
            self.error(rid, cls, "not_logged_in", "log in first")
            return
        getattr(self, "do_" + cls)(rid, msg)

    def too_large(self) -> None:
        self.error(
            None, None, "too_large", f"a message is limited to {self.hub.config.max_message_bytes} bytes"
        )

    def connection_lost(self) -> None:
        self.closed = True
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        self.hub.session_closed(self)

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
            if self.errors > self.hub.config.max_errors:
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

    # -- requests

    def do_ping(self, rid: Any, msg: dict[str, Any]) -> None:
        self.respond(rid, "ping")

    def do_login(self, rid: Any, msg: dict[str, Any]) -> None:
        if self.user is not None:
            return self.error(rid, "login", "already_logged_in", "this session is logged in already")
        if self._logging_in:
            return self.error(rid, "login", "busy", "a login is already being checked")
        version = msg.get("version", PROTOCOL_VERSION)
        if version != PROTOCOL_VERSION:
            return self.error(
                rid,
                "login",
                "unsupported_version",
                f"this server speaks version {PROTOCOL_VERSION}, not {version}",
            )
        login = msg["login"]
        for wait, whose in (
            (self.hub.limiter.retry_after(self.peer), "from this address"),
            (self.hub.accounts.retry_after(login, self.peer), "for this account"),
        ):
            if wait > 0:
                return self.error(
                    rid,
                    "login",
                    "rate_limited",
                    f"too many failed logins {whose}; retry in {math.ceil(wait)} s",
                    retry_after=math.ceil(wait * 10) / 10,
                )
        user = self.hub.directory.by_login.get(login)
        encoded = user.cti_password_hash if user is not None and user.enabled else None
        self.hub.accounts.attempted(login)
        self._logging_in = True

        def checked(ok: bool) -> None:
            self._logging_in = False
            if self.closed:
                return
            current = self.hub.directory.by_login.get(login)
            if not ok or current is None or not current.enabled or current.cti_password_hash != encoded:
                self.hub.limiter.failed(self.peer)
                log.info("CTI: failed login {login!r} from {peer}", login=login[:64], peer=self.peer)
                self.error(rid, "login", "login_failed", "wrong login or password")
                return
            self.hub.limiter.succeeded(self.peer)
            self.hub.accounts.succeeded(login, self.peer)
            self.user = current
            if self._login_timer is not None and self._login_timer.active():
                self._login_timer.cancel()
            self._login_timer = None
            self.hub.logged_in(self)
            self.respond(
                rid,
                "login",
                user={
                    "id": current.id,
                    "name": current.name,
                    "login": login,
                    "exten": current.exten,
                    "lines": list(current.lines),
                },
            )

        def failed(failure: Failure) -> None:
            self._logging_in = False
            if failure.check(PasswordCheckBusy):
                self.error(rid, "login", "busy", "too many logins are being checked; retry shortly")
            else:
                log.failure("CTI: password check failed", failure)
                self.error(rid, "login", "busy", "the login could not be checked; retry shortly")

        self.hub.check_password(msg["password"], encoded).addCallbacks(checked, failed)

    def do_subscribe(self, rid: Any, msg: dict[str, Any]) -> None:
        topics = frozenset(msg["topics"])
        self.hub.set_topics(self, topics)
        snapshot: dict[str, Any] = {"topics": sorted(topics)}
        if "presence" in topics:
            snapshot["presence"] = self.hub.presence_snapshot()
        if "calls" in topics:
            snapshot["calls"] = self.hub.calls_snapshot(self.user)
        if "queues" in topics:
            snapshot["members"] = self.hub.members_snapshot()
        self.respond(rid, "subscribe", **snapshot)

    def do_dial(self, rid: Any, msg: dict[str, Any]) -> None:
        user = self.user
        assert user is not None
        if user.main_line is None:
            return self.error(rid, "dial", "no_line", "you have no line to dial from")
        number = msg["number"]
        call_id = "ctid-" + os.urandom(8).hex()
        headers = [
            ("Channel", f"PJSIP/{user.main_line}"),
            ("Context", self.hub.dial_context(user)),
            ("Exten", number),
            ("Priority", "1"),
            ("CallerID", f'"{number}" <{number}>'),
            ("Timeout", str(int(self.hub.config.dial_timeout * 1000))),
            ("Async", "true"),
            ("ChannelId", call_id),
            ("Variable", f"CTID_USER={user.id}"),
        ]
        self.hub.expect_originate(call_id, self, rid)
        self._ami(
            rid,
            "dial",
            [("Originate", headers)],
            lambda: self.respond(rid, "dial", call_id=call_id),
            on_error=lambda: self.hub.forget_originate(call_id),
        )

    def _own_channels(self, call_id: str) -> list[Channel]:
        assert self.user is not None
        call = self.hub.tracker.calls.get(call_id)
        if call is None:
            return []
        lines = set(self.user.lines)
        return [c for c in call.channels.values() if c.line in lines]

    def do_hangup(self, rid: Any, msg: dict[str, Any]) -> None:
        own = self._own_channels(msg["call_id"])
        if not own:
            return self.error(rid, "hangup", "no_such_call", "no such call of yours")
        self._ami(
            rid,
            "hangup",
            [("Hangup", {"Channel": c.name}) for c in own],
            lambda: self.respond(rid, "hangup", call_id=msg["call_id"]),
        )

    def do_transfer(self, rid: Any, msg: dict[str, Any]) -> None:
        assert self.user is not None
        own = self._own_channels(msg["call_id"])
        if not own:
            return self.error(rid, "transfer", "no_such_call", "no such call of yours")
        own.sort(key=lambda c: (c.bridge is None, c.state != "Up"))
        mine = own[0]
        context = self.hub.dial_context(self.user)
        if msg["mode"] == "blind":
            lines = set(self.user.lines)
            if not [p for p in self.hub.tracker.peer_channels(mine) if p.line not in lines]:
                return self.error(rid, "transfer", "not_bridged", "the call has no other party to transfer")
            # As a phone's REFER does: Asterisk sends every other party to the number, takes the user's
            # channel out of the bridge and reports a BlindTransfer event (a Redirect reports nothing).
            action = ("BlindTransfer", {"Channel": mine.name, "Context": context, "Exten": msg["number"]})
        else:
            action = ("Atxfer", {"Channel": mine.name, "Context": context, "Exten": msg["number"]})
        self._ami(rid, "transfer", [action], lambda: self.respond(rid, "transfer", call_id=msg["call_id"]))

    def do_queue_pause(self, rid: Any, msg: dict[str, Any]) -> None:
        assert self.user is not None
        if self.user.main_line is None:
            return self.error(rid, "queue_pause", "no_line", "you have no line in queues")
        headers = {
            "Interface": f"PJSIP/{self.user.main_line}",
            "Paused": "true" if msg["paused"] else "false",
        }
        if "queue" in msg:
            headers["Queue"] = msg["queue"]
        if msg.get("reason"):
            headers["Reason"] = msg["reason"]
        self._ami(rid, "queue_pause", [("QueuePause", headers)], lambda: self.respond(rid, "queue_pause"))

    def _agent_queues(self, rid: Any, request: str) -> tuple[Any, str] | None:
        assert self.user is not None
        agent = self.hub.directory.agents_by_user.get(self.user.id)
        if agent is None:
            self.error(rid, request, "not_an_agent", "you are not an agent")
            return None
        if self.user.main_line is None:
            self.error(rid, request, "no_line", "you have no line to take calls on")
            return None
        return agent, f"PJSIP/{self.user.main_line}"

    def do_agent_login(self, rid: Any, msg: dict[str, Any]) -> None:
        found = self._agent_queues(rid, "agent_login")
        if found is None:
            return
        agent, interface = found
        actions = [
            (
                "QueueAdd",
                {
                    "Queue": q,
                    "Interface": interface,
                    "MemberName": f"Agent {agent.number}",
                    "StateInterface": interface,
                },
            )
            for q in agent.queues
        ]
        self._ami(
            rid, "agent_login", actions, lambda: self.respond(rid, "agent_login", queues=list(agent.queues))
        )

    def do_agent_logout(self, rid: Any, msg: dict[str, Any]) -> None:
        found = self._agent_queues(rid, "agent_logout")
        if found is None:
            return
        agent, interface = found
        actions = [("QueueRemove", {"Queue": q, "Interface": interface}) for q in agent.queues]
        self._ami(
            rid, "agent_logout", actions, lambda: self.respond(rid, "agent_logout", queues=list(agent.queues))
        )

    # -- AMI

    def _ami(
        self,
        rid: Any,
        request: str,
        actions: list[tuple[str, Any]],
        on_ok: Callable[[], None],
        on_error: Callable[[], None] | None = None,
    ) -> None:
        if not actions:
            on_ok()
            return
        d: Deferred = gatherResults([self.hub.ami_action(a, h) for a, h in actions], consumeErrors=True)

        def ok(_: Any) -> None:
            if not self.closed:
                on_ok()

        def failed(failure: Failure) -> None:
            if on_error is not None:
                on_error()
            exc = failure.value
            exc = getattr(exc, "subFailure", None).value if hasattr(exc, "subFailure") else exc
            if isinstance(exc, AsteriskNotReadyError):
                self.error(rid, request, "ami_unavailable", "Asterisk is starting or stopping; retry shortly")
            elif isinstance(exc, AMINotConnectedError | AMIConnectionLostError | AMIBackpressureError):
                self.error(
                    rid, request, "ami_unavailable", "Asterisk is not reachable right now; retry later"
                )
            elif isinstance(exc, AMITimeoutError):
                self.error(rid, request, "ami_unavailable", "Asterisk did not answer in time")
            elif isinstance(exc, AMIActionError):
                reason = exc.response.get("Message", "refused") if hasattr(exc, "response") else str(exc)
                self.error(rid, request, "ami_error", f"Asterisk refused: {reason}"[:300])
            else:
                log.failure("CTI: {request} failed", failure, request=request)
                self.error(rid, request, "ami_error", "the request failed")

        d.addCallbacks(ok, failed)
