"""AMI client session: login, ActionID correlation, list collection, timeouts, bounded writes, events.

A plain object behind `AMIProtocol` (it is the protocol's `AMISink`): tests can drive it with a fake
protocol and a `twisted.internet.task.Clock`. One connection at a time; `AMIService` (re)connects it.

Guarantees:
- every action gets a unique ActionID and a Deferred that fires with its response (`Message`), or with an
  `EventList` for a list action, or fails with an `AMIError`; never later than its timeout;
- answers that arrive after the timeout are dropped (counted in `late_dropped`), never dispatched;
- writes never block: bytes go to the transport while its buffer has room; otherwise up to
  ``max_queued_bytes`` wait in order; beyond that, or beyond ``max_pending_actions`` in flight, a new
  action fails at once with `AMIBackpressureError`;
- on disconnect every pending action fails with `AMIConnectionLostError`;
- events not claimed by a pending action go to ``on_event``; connected hooks run after each login.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from itertools import chain, count

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ctid.ami.config import AMIConfig
from ctid.ami.errors import (
    AMIActionError,
    AMIBackpressureError,
    AMIConnectionLostError,
    AMIError,
    AMIListTooLongError,
    AMINotConnectedError,
    AMIProtocolError,
    AMITimeoutError,
)
from ctid.ami.message import AMIEncodeError, HeaderValue, Message, command_output, encode_message
from ctid.ami.parser import BANNER_PREFIX, AMIParseError
from ctid.ami.pending import EventList, PendingAction
from ctid.ami.protocol import AMIProtocol

EventHandler = Callable[[Message], object]
ConnectedHook = Callable[["AMIClient"], object]
DisconnectedHook = Callable[["AMIClient", Failure], object]
Headers = Mapping[str, HeaderValue] | Iterable[tuple[str, HeaderValue]]

_DEAD_IDS = 1024  # how many timed-out ActionIDs are remembered to drop their late answers
_RESERVED = {"action", "actionid"}

log = Logger()


class AMIClient:
    """AMI session logic. `state` is one of: disconnected, banner, login, ready."""

    def __init__(
        self, config: AMIConfig, *, on_event: EventHandler | None = None, clock: IReactorTime | None = None
    ) -> None:
        self.config = config
        self.on_event: EventHandler = on_event or (lambda msg: None)
        self._clock: IReactorTime = clock or global_reactor  # type: ignore[assignment]
        self._connected_hooks: list[ConnectedHook] = []
        self._disconnected_hooks: list[DisconnectedHook] = []
        self._ids = count(1)
        self._id_prefix = f"ctid-{os.getpid()}-{os.urandom(3).hex()}-"
        self._conn: AMIProtocol | None = None
        self.state = "disconnected"
        self.banner: str | None = None
        self._pending: dict[str, PendingAction] = {}
        self._dead: dict[str, None] = {}
        self._queue: deque[PendingAction] = deque()
        self._queued_bytes = 0
        self._paused = False
        self._login_timer: IDelayedCall | None = None
        self._ping_timer: IDelayedCall | None = None
        # counters, for ctid's status output and for tests
        self.logins = 0
        self.login_failures = 0
        self.parse_errors = 0
        self.late_dropped = 0

    # -- hooks

    def add_connected_hook(self, hook: ConnectedHook) -> None:
        """``hook(client)`` runs after each successful login (resynchronise state there)."""
        self._connected_hooks.append(hook)

    def add_disconnected_hook(self, hook: DisconnectedHook) -> None:
        """``hook(client, reason)`` runs after each connection loss, once pending actions have failed."""
        self._disconnected_hooks.append(hook)

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    # -- actions

    def send_action(
        self, action: str, headers: Headers | None = None, *, timeout: float | None = None
    ) -> Deferred:
        """Send ``action``; the Deferred fires with the response `Message`, or an `EventList` when
        Asterisk answers with ``EventList: start``. ``Response: Error`` fails it with `AMIActionError`.
        Never raises: every problem (not logged in, back-pressure, bad header) is a failed Deferred."""
        return self._submit(action, headers, timeout, require_ready=True)

    def send_list_action(
        self, action: str, headers: Headers | None = None, *, timeout: float | None = None
    ) -> Deferred:
        """Like `send_action`, for an action that must answer with a list: fires with an `EventList`."""

        def check(result: Message | EventList) -> EventList:
            if not isinstance(result, EventList):
                raise AMIProtocolError(f"AMI {action} answered without an event list: {result!r}")
            return result

        return self.send_action(action, headers, timeout=timeout).addCallback(check)

    def command(self, command: str, *, timeout: float | None = None) -> Deferred:
        """Run a CLI command; fires with its output text (``Output:`` lines joined by newlines)."""
        return self.send_action("Command", {"Command": command}, timeout=timeout).addCallback(command_output)

    def close(self) -> None:
        """Close the current connection (pending actions then fail with `AMIConnectionLostError`)."""
        if self._conn is not None:
            self._conn.close()

    def abort(self) -> None:
        if self._conn is not None:
            self._conn.abort()

    def _submit(
        self, action: str, headers: Headers | None, timeout: float | None, require_ready: bool
    ) -> Deferred:
        conn = self._conn
        if conn is None or (require_ready and self.state != "ready"):
            return fail(AMINotConnectedError(f"AMI {action}: not connected/logged in (state {self.state})"))
        if len(self._pending) >= self.config.max_pending_actions:
            return fail(
                AMIBackpressureError(
                    f"AMI {action}: {self.config.max_pending_actions} actions already pending"
                )
            )
        action_id = f"{self._id_prefix}{next(self._ids)}"
        try:
            data = _encode(action, action_id, headers)
        except AMIEncodeError as exc:
            return fail(exc)
        queue_it = self._paused or bool(self._queue)
        if queue_it and self._queued_bytes + len(data) > self.config.max_queued_bytes:
            return fail(
                AMIBackpressureError(
                    f"AMI {action}: write queue full ({self._queued_bytes} bytes queued, "
                    f"bound {self.config.max_queued_bytes})"
                )
            )
        pending = PendingAction(action, action_id, data, Deferred(lambda d: self._cancelled(action_id)))
        self._pending[action_id] = pending
        delay = self.config.action_timeout if timeout is None else max(0.0, timeout)
        pending.timer = self._clock.callLater(delay, self._timed_out, action_id, delay)
        if queue_it:
            pending.queued = True
            self._queue.append(pending)
            self._queued_bytes += len(data)
        else:
            conn.write(data)
        return pending.deferred

    # -- AMISink: called by AMIProtocol

    def connection_made(self, conn: AMIProtocol) -> None:
        if self._conn is not None:
            log.warn("AMI: a second connection while one is active; dropping the new one")
            conn.abort()
            return
        self._conn = conn
        self.state = "banner"
        self._paused = False
        self._login_timer = self._clock.callLater(self.config.login_timeout, self._no_banner)

    def banner_received(self, banner: str) -> None:
        self._cancel_login_timer()
        self.banner = banner
        if not banner.startswith(BANNER_PREFIX):
            log.error("AMI: not an Asterisk manager banner: {banner!r}; closing", banner=banner[:80])
            self.abort()
            return
        self.state = "login"
        headers: dict[str, str] = {"Username": self.config.username, "Secret": self.config.secret}
        if self.config.events is not None:
            headers["Events"] = self.config.events
        d = self._submit("Login", headers, self.config.login_timeout, require_ready=False)
        d.addCallbacks(self._logged_in, self._login_failed)

    def message_received(self, msg: Message) -> None:
        action_id = msg.get("ActionID")
        if action_id is not None:
            pending = self._pending.get(action_id)
            if pending is not None:
                if self._answer(pending, msg):
                    return
            elif action_id in self._dead:
                self.late_dropped += 1
                return
        if "Event" in msg:
            try:
                self.on_event(msg)
            except Exception:
                log.failure("AMI: event handler failed on {event}", event=msg.get("Event"))
        else:
            log.debug("AMI: dropping unmatched message {msg!r}", msg=msg)

    def parse_error(self, error: AMIParseError) -> None:
        self.parse_errors += 1
        log.warn("AMI: {error}", error=error)

    def writing_paused(self) -> None:
        self._paused = True

    def writing_resumed(self) -> None:
        self._paused = False
        self._flush()

    def connection_lost(self, reason: Failure) -> None:
        was_ready = self.state == "ready"
        self._conn = None
        self.state = "disconnected"
        self._paused = False
        self._cancel_login_timer()
        if self._ping_timer is not None and self._ping_timer.active():
            self._ping_timer.cancel()
        self._ping_timer = None
        self._queue.clear()
        self._queued_bytes = 0
        self._dead.clear()
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if p.timer is not None and p.timer.active():
                p.timer.cancel()
            p.deferred.errback(AMIConnectionLostError(f"AMI {p.action}: connection lost before the answer"))
        if was_ready:
            log.warn("AMI: connection lost: {reason}", reason=reason.getErrorMessage())
        for hook in self._disconnected_hooks:
            _run_hook(hook, self, reason)

    # -- internals

    def _answer(self, pending: PendingAction, msg: Message) -> bool:
        """Apply a message carrying ``pending``'s ActionID; False if it is not part of the answer."""
        events = pending.events
        if "Event" in msg:
            if events is None:
                return False  # e.g. OriginateResponse after the Originate's response: an event
            marker = msg.get("EventList")
            if marker is not None and marker.lower() == "complete":
                events.complete = msg
                if events.list_items is not None and events.list_items != len(events):
                    log.warn(
                        "AMI {action}: ListItems {n} but {got} events",
                        action=pending.action,
                        n=events.list_items,
                        got=len(events),
                    )
                self._resolve(pending, events)
            elif len(events) >= self.config.max_list_items:
                self._remember_dead(pending.action_id)
                self._reject(
                    pending,
                    AMIListTooLongError(
                        f"AMI {pending.action}: more than {self.config.max_list_items} events"
                    ),
                )
            else:
                events.append(msg)
            return True
        response = msg.get("Response")
        if response is None or events is not None:
            log.warn("AMI {action}: unexpected message {msg!r}", action=pending.action, msg=msg)
            return True
        if response.lower() == "error":
            self._reject(pending, AMIActionError(pending.action, msg))
        elif (msg.get("EventList") or "").lower() == "start":
            pending.events = EventList(msg)
        else:
            self._resolve(pending, msg)
        return True

    def _forget(self, pending: PendingAction) -> None:
        del self._pending[pending.action_id]
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.timer = None
        if pending.queued:
            pending.queued = False
            self._queue.remove(pending)
            self._queued_bytes -= len(pending.data)

    def _resolve(self, pending: PendingAction, result: Message | EventList) -> None:
        self._forget(pending)
        pending.deferred.callback(result)

    def _reject(self, pending: PendingAction, error: Exception) -> None:
        self._forget(pending)
        pending.deferred.errback(error)

    def _timed_out(self, action_id: str, delay: float) -> None:
        pending = self._pending.get(action_id)
        if pending is None:
            return
        pending.timer = None
        if not pending.queued:  # it was sent: drop whatever answer still comes
            self._remember_dead(action_id)
        self._reject(pending, AMITimeoutError(pending.action, action_id, delay))

    def _cancelled(self, action_id: str) -> None:
        pending = self._pending.get(action_id)
        if pending is not None:
            if not pending.queued:
                self._remember_dead(action_id)
            self._forget(pending)  # Deferred.cancel then fails it with CancelledError

    def _remember_dead(self, action_id: str) -> None:
        self._dead[action_id] = None
        if len(self._dead) > _DEAD_IDS:
            del self._dead[next(iter(self._dead))]

    def _flush(self) -> None:
        conn = self._conn
        while self._queue and not self._paused and conn is not None:
            pending = self._queue.popleft()
            pending.queued = False
            self._queued_bytes -= len(pending.data)
            conn.write(pending.data)

    def _no_banner(self) -> None:
        self._login_timer = None
        log.error("AMI: no banner within {t:g} s; closing", t=self.config.login_timeout)
        self.abort()

    def _cancel_login_timer(self) -> None:
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        self._login_timer = None

    def _logged_in(self, response: Message) -> None:
        self.state = "ready"
        self.logins += 1
        log.info("AMI: logged in as {user} ({banner})", user=self.config.username, banner=self.banner)
        self._schedule_ping()
        for hook in self._connected_hooks:
            _run_hook(hook, self)

    def _login_failed(self, failure: Failure) -> None:
        if failure.check(AMIActionError):
            self.login_failures += 1
            log.error(
                "AMI: login as {user} refused: {message}",
                user=self.config.username,
                message=failure.value.response.get("Message"),
            )
        elif not failure.check(AMIConnectionLostError):
            log.error("AMI: login failed: {error}", error=failure.getErrorMessage())
        self.abort()  # Asterisk closes after a refused login; a timeout means a peer we cannot use

    def _schedule_ping(self) -> None:
        if self.config.ping_interval > 0 and self.state == "ready":
            self._ping_timer = self._clock.callLater(self.config.ping_interval, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        self._submit("Ping", None, None, require_ready=True).addCallbacks(
            lambda _: self._schedule_ping(), self._ping_failed
        )

    def _ping_failed(self, failure: Failure) -> None:
        if failure.check(AMITimeoutError):
            log.error("AMI: keepalive Ping unanswered; dropping the connection")
            self.abort()
        elif failure.check(AMIConnectionLostError, AMINotConnectedError):
            pass
        else:  # back-pressure or an error answer: the connection is alive
            self._schedule_ping()


def _encode(action: str, action_id: str, headers: Headers | None) -> bytes:
    items = list(headers.items() if isinstance(headers, Mapping) else headers or ())
    for name, _ in items:
        if name.lower() in _RESERVED:
            raise AMIEncodeError(f"header {name!r} is set by the client")
    return encode_message(chain((("Action", action), ("ActionID", action_id)), items))


def _run_hook(hook: Callable[..., object], *args: object) -> None:
    try:
        result = hook(*args)
    except Exception:
        log.failure("AMI: hook {hook!r} failed", hook=hook)
        return
    if isinstance(result, Deferred):
        result.addErrback(_hook_failed, hook)


def _hook_failed(failure: Failure, hook: object) -> None:
    if not failure.check(AMIError, CancelledError):
        log.failure("AMI: hook {hook!r} failed", failure, hook=hook)
    else:
        log.warn("AMI: hook {hook!r}: {error}", hook=hook, error=failure.getErrorMessage())
