"""`CTIServer`: the hub between the call state, the directory, AMI and the CTI sessions.

It owns no socket (see `factory.py`): sessions register here; tracker changes are drained after
``flush_interval`` and fanned out to subscribers only, each event encoded once for all its receivers.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from ctid.ami.errors import AMINotConnectedError, AsteriskNotReadyError
from ctid.cti import PROTOCOL_VERSION, commands
from ctid.cti.commands.base import Client
from ctid.cti.commands.calls import CallsEnv
from ctid.cti.commands.login import LoginEnv
from ctid.cti.commands.queues import QueuesEnv
from ctid.cti.commands.status import SubscribeEnv
from ctid.cti.protocol import CTIProtocol
from ctid.cti.ratelimit import AccountBackoff, LoginRateLimiter
from ctid.cti.session import CTISession, encode
from ctid.cti.validator import names
from ctid.directory import Directory, User, phone_status
from ctid.state.model import Call, line_of_device
from ctid.state.tracker import CallTracker

log = Logger()
_MAX_ORIGINATES = 10000


@dataclass(frozen=True)
class CTIConfig:
    host: str = "127.0.0.1"
    port: int = 5003
    backlog: int = 1024
    """Connections the kernel holds until ctid accepts them (capped by net.core.somaxconn)."""
    tls_cert: str | None = None
    tls_key: str | None = None
    max_message_bytes: int = 65536
    max_output_bytes: int = 1 << 20
    max_clients: int = 5000
    login_timeout: float = 30.0
    max_errors: int = 20
    login_max_failures: int = 5
    login_window: float = 60.0
    login_account_failures: int = 5
    """Attempts for one account that did not succeed before each further one waits (1 s, doubling)."""
    login_account_max_delay: float = 60.0
    password_threads: int = 2
    password_max_waiting: int = 64
    dial_context: str = "internal"
    dial_timeout: float = 30.0
    flush_interval: float = 0.02
    presence_interval: float = 0.1
    """Phone status changes are sent at most this often: one presence message for all who changed."""
    fanout_slice: int = 100
    """Sessions written to per reactor turn when one event goes to many."""


class CTIServer:
    def __init__(
        self,
        config: CTIConfig,
        tracker: CallTracker,
        directory: Directory,
        *,
        clock: Any,
        check_password: Any,
        ami: Any = None,
        asterisk_ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.config = config
        self.tracker = tracker
        self.directory = directory
        self.clock = clock
        self.check_password = check_password
        self.ami = ami
        self.asterisk_ready = asterisk_ready
        """False while Asterisk boots (before FullyBooted) or stops (after Shutdown)."""
        self.limiter = LoginRateLimiter(config.login_max_failures, config.login_window, now=clock.seconds)
        self.accounts = AccountBackoff(
            config.login_account_failures,
            config.login_account_max_delay,
            config.login_window,
            now=clock.seconds,
        )
        self.sessions: set[CTISession] = set()
        self.presence_subs: set[CTISession] = set()
        self.queue_subs: set[CTISession] = set()
        self.call_subs: dict[int, set[CTISession]] = {}
        self.statuses: dict[int, str] = {}
        self.call_users: dict[str, set[int]] = {}
        self.originates: OrderedDict[str, tuple[Client, Any]] = OrderedDict()
        self._flush_timer: IDelayedCall | None = None
        self._presence_timer: IDelayedCall | None = None
        self._presence_pending: set[int] = set()
        self._fanout: deque[tuple[bytes, list[CTISession]]] = deque()
        self._fanout_timer: IDelayedCall | None = None
        self.rejected_clients = 0
        tracker.on_dirty = self._schedule_flush
        commands.check(commands.COMMANDS, names("client"))
        self.commands = commands.bind(commands.COMMANDS, self._envs())

    def _envs(self) -> commands.Envs:
        """The narrow pieces of this server that the command handlers use."""
        return commands.Envs(
            login=LoginEnv(
                limiter=self.limiter,
                accounts=self.accounts,
                user_by_login=lambda login: self.directory.by_login.get(login),
                check_password=lambda password, encoded: self.check_password(password, encoded),
            ),
            subscribe=SubscribeEnv(
                set_topics=self.set_topics,
                presence_snapshot=self.presence_snapshot,
                calls_snapshot=self.calls_snapshot,
                members_snapshot=self.members_snapshot,
            ),
            calls=CallsEnv(
                ami_action=self.ami_action,
                call=lambda call_id: self.tracker.calls.get(call_id),
                peer_channels=self.tracker.peer_channels,
                dial_context=self.dial_context,
                dial_timeout=lambda: self.config.dial_timeout,
                expect_originate=self.expect_originate,
                forget_originate=self.forget_originate,
            ),
            queues=QueuesEnv(
                ami_action=self.ami_action,
                agent_of=lambda user_id: self.directory.agents_by_user.get(user_id),
            ),
        )

    def stop(self) -> None:
        self._fanout.clear()
        for timer in (self._flush_timer, self._presence_timer, self._fanout_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._flush_timer = self._presence_timer = self._fanout_timer = None

    # -- sessions

    def build_protocol(self) -> CTIProtocol | None:
        if len(self.sessions) >= self.config.max_clients:
            self.rejected_clients += 1
            return None
        return CTIProtocol(
            self,
            max_message_bytes=self.config.max_message_bytes,
            max_output_bytes=self.config.max_output_bytes,
        )

    def new_session(self, conn: Any) -> CTISession:
        session = CTISession(
            conn,
            commands=self.commands,
            config=self.config,
            clock=self.clock,
            on_closed=self.session_closed,
        )
        self.sessions.add(session)
        session.send({"class": "welcome", "version": PROTOCOL_VERSION, "server": "ctid"})
        return session

    def session_closed(self, session: CTISession) -> None:
        self.sessions.discard(session)
        self.set_topics(session, frozenset())

    def set_topics(self, session: CTISession, topics: frozenset[str]) -> None:
        session.topics = topics
        for topic, subs in (("presence", self.presence_subs), ("queues", self.queue_subs)):
            if topic in topics:
                subs.add(session)
            else:
                subs.discard(session)
        if session.user is not None:
            uid = session.user.id
            if "calls" in topics:
                self.call_subs.setdefault(uid, set()).add(session)
            elif uid in self.call_subs:
                self.call_subs[uid].discard(session)
                if not self.call_subs[uid]:
                    del self.call_subs[uid]

    # -- helpers for sessions

    def ami_action(self, action: str, headers: Any) -> Deferred:
        if self.ami is None or not self.ami.ready:
            return fail(AMINotConnectedError("AMI is not connected"))
        if not self.asterisk_ready():
            return fail(AsteriskNotReadyError("Asterisk is starting or stopping"))
        return self.ami.send_action(action, headers)

    def dial_context(self, user: User) -> str:
        return user_context(user) or self.config.dial_context

    def expect_originate(self, call_id: str, session: Client, rid: Any) -> None:
        self.originates[call_id] = (session, rid)
        while len(self.originates) > _MAX_ORIGINATES:
            self.originates.popitem(last=False)

    def forget_originate(self, call_id: str) -> None:
        self.originates.pop(call_id, None)

    def status_of(self, user: User) -> str:
        devices = self.tracker.devices
        return phone_status(devices.get(f"PJSIP/{line}", "UNKNOWN") for line in user.lines)

    def presence_snapshot(self) -> list[dict[str, Any]]:
        return [
            {"user_id": u.id, "name": u.name, "status": self.statuses.get(u.id) or self.status_of(u)}
            for u in self.directory.users.values()
        ]

    def calls_snapshot(self, user: User | None) -> list[dict[str, Any]]:
        if user is None:
            return []
        lines = set(user.lines)
        calls = [c for c in self.tracker.calls.values() if c.lines() & lines]
        for call in calls:  # its next change reaches this user even if the flush has not run yet
            self.call_users.setdefault(call.linkedid, set()).add(user.id)
        return [c.to_json() for c in calls]

    def members_snapshot(self) -> list[dict[str, Any]]:
        return [self._member_json(m) for m in self.tracker.members.values()]

    def _member_json(self, member: Any) -> dict[str, Any]:
        data = member.to_json()
        line = line_of_device(member.interface)
        data["user_ids"] = sorted(self.directory.users_of_line(line)) if line else []
        return data

    # -- fan-out

    def _schedule_flush(self) -> None:
        if self._flush_timer is None:
            self._flush_timer = self.clock.callLater(self.config.flush_interval, self.flush)

    def flush(self) -> None:
        self._flush_timer = None
        changes = self.tracker.drain()
        if not changes:
            return
        try:
            self._flush_devices(changes.devices)
            # Transfers and originate results first: the call events that follow show their outcome.
            for notice in changes.notices:
                self._send_notice(notice)
            for call in changes.calls.values():
                self._send_call(call, ended=False)
            for call in changes.ended.values():
                self._send_call(call, ended=True)
            for (queue, interface), member in changes.members.items():
                self._send_member(queue, interface, member)
        except Exception:
            log.failure("CTI: dispatching call state changes failed")

    def _flush_devices(self, devices: dict[str, str]) -> None:
        if not devices:
            return
        pending = self._presence_pending
        for device in devices:
            line = line_of_device(device)
            if line is not None:
                pending |= self.directory.users_of_line(line)
        if pending and self._presence_timer is None:
            self._presence_timer = self.clock.callLater(self.config.presence_interval, self._flush_presence)

    def _flush_presence(self) -> None:
        self._presence_timer = None
        pending, self._presence_pending = self._presence_pending, set()
        try:
            self._update_presence(pending)
        except Exception:
            log.failure("CTI: dispatching presence failed")

    def _update_presence(self, user_ids: Iterable[int]) -> None:
        changed = []
        for uid in user_ids:
            user = self.directory.users.get(uid)
            if user is None:
                if self.statuses.pop(uid, None) is not None:
                    changed.append({"user_id": uid, "status": "unknown"})
                continue
            status = self.status_of(user)
            if self.statuses.get(uid) != status:
                self.statuses[uid] = status
                changed.append({"user_id": uid, "name": user.name, "status": status})
        if changed:
            self.broadcast(self.presence_subs, {"class": "presence", "users": changed})

    def _send_call(self, call: Call, ended: bool) -> None:
        users: set[int] = set()
        for line in call.lines():
            users |= self.directory.users_of_line(line)
        previous = self.call_users.pop(call.linkedid, set())
        if not ended and users:
            self.call_users[call.linkedid] = users
        receivers = [s for uid in users | previous for s in self.call_subs.get(uid, ())]
        if not receivers:
            return
        body = {
            "call_id": call.linkedid,
            "channels": [] if ended else [c.to_json() for c in call.channels.values()],
            "transfers": call.transfers,
        }
        self.broadcast(receivers, {"class": "call", "call": body, "ended": ended})

    def _send_member(self, queue: str, interface: str, member: Any) -> None:
        if not self.queue_subs:
            return
        msg: dict[str, Any] = {
            "class": "queue_member",
            "queue": queue,
            "interface": interface,
            "removed": member is None,
        }
        if member is not None:
            msg["member"] = self._member_json(member)
        self.broadcast(self.queue_subs, msg)

    def _send_notice(self, notice: dict[str, Any]) -> None:
        if notice["kind"] == "originate":
            entry = self.originates.pop(notice["uniqueid"], None)
            if entry is None:
                return
            session, rid = entry
            result = "Success" if notice["result"] == "Success" else "Failure"
            session.send(
                {
                    "class": "originate_result",
                    "request_id": rid,
                    "call_id": notice["uniqueid"],
                    "result": result,
                    "reason": notice["reason"],
                }
            )
            return
        # A transfer goes to everyone who was in its calls when it happened (the transferer's channel may
        # be gone already) and to whoever was in the call at the last flush.
        call_id = notice.get("call_id")
        users = set(self.call_users.get(call_id, ())) if call_id else set()
        for line in notice.get("lines", ()):
            users |= self.directory.users_of_line(line)
        receivers = [s for uid in users for s in self.call_subs.get(uid, ())]
        if receivers:
            msg = {
                "class": "transfer",
                "call_id": call_id,
                "kind": notice["kind"],
                "result": notice["result"],
            }
            if notice.get("exten"):
                msg["exten"] = notice["exten"]
            self.broadcast(receivers, msg)

    def broadcast(self, sessions: Iterable[CTISession], obj: dict[str, Any]) -> None:
        """Send ``obj`` (encoded once) to ``sessions``. A large fan-out is written in slices of
        ``fanout_slice`` sessions per reactor turn, in order, so that requests are served in between."""
        targets = list(sessions)
        if not targets:
            return
        data = encode(obj)
        if not self._fanout and len(targets) <= self.config.fanout_slice:
            for session in targets:
                if not session.closed:
                    session.conn.send_bytes(data)
            return
        self._fanout.append((data, targets))
        if self._fanout_timer is None:
            self._pump()

    def _pump(self) -> None:
        self._fanout_timer = None
        budget = self.config.fanout_slice
        while self._fanout and budget > 0:
            data, targets = self._fanout[0]
            chunk, rest = targets[:budget], targets[budget:]
            for session in chunk:
                if not session.closed:
                    session.conn.send_bytes(data)
            budget -= len(chunk)
            if rest:
                self._fanout[0] = (data, rest)
            else:
                self._fanout.popleft()
        if self._fanout:
            self._fanout_timer = self.clock.callLater(0, self._pump)

    # -- directory changes

    def directory_changed(self, user_ids: set[int]) -> None:
        for session in list(self.sessions):
            user = session.user
            if user is None or user.id not in user_ids:
                continue
            current = self.directory.users.get(user.id)
            if (
                current is None
                or not current.enabled
                or current.cti_login != user.cti_login
                or (current.cti_password_hash != user.cti_password_hash)
            ):
                session.error(None, None, "not_logged_in", "your account changed; log in again")
                session.conn.close()
            else:
                # Same account, maybe new lines: rebind the subscriptions to the fresh object.
                session.user = current
        self._update_presence(user_ids)


def user_context(user: User) -> str | None:
    return user.context
