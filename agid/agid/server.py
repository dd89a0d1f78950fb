"""The FastAGI server: accept, bound, run one handler per session, always end with ``AGID_STATUS``.

Contract with the dialplan (see docs/agi-protocol.md): before closing a session agid sets the channel
variable ``AGID_STATUS`` to ``OK`` (the handler returned) or ``FAILED`` (handler exception, deadline,
unknown handler, malformed environment, overload), as long as the connection is still usable. Closing
the socket ends the AGI() application and the dialplan continues with its next priority; a dialplan
must treat anything but ``AGID_STATUS=OK`` (``FAILED``, or unset if Asterisk itself went away or spoke
garbage) as "use the safe default".

Bounds, each with a decided behaviour:

* ``max_sessions`` handlers run at once; a session beyond that gets ``AGID_STATUS=FAILED`` at once,
  without running its handler (no queue: the caller must not wait for agid);
* ``max_connections`` sockets are open at once. When a new one comes and none is free, the oldest
  connection still waiting for its AGI environment is closed to make room (Asterisk sends its environment
  at once: a socket that stays silent is a port scan or an attack, and must never starve calls); when
  every open connection is a real session, the new one is closed at once, without status;
* ``env_timeout`` seconds to send the AGI environment after the accept (within ``session_timeout``);
* ``session_timeout`` seconds from accept to close, all included; the handler is cancelled at
  ``session_timeout - status_timeout`` and the rest is kept to set ``AGID_STATUS``. A handler that
  ignores cancellation is abandoned (logged) and the session ends anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from agid.config import Config
from agid.connection import AGIConnection
from agid.errors import AGIConnectionLost, AGIError, AGIHangup, AGIProtocolError
from agid.protocol import Limits
from agid.registry import Handler, HandlerContext, check_handlers, find_handler
from agid.session import AGISession

log = logging.getLogger(__name__)

STATUS_VARIABLE = "AGID_STATUS"
OK = "OK"
FAILED = "FAILED"


@dataclass
class Stats:
    """Counters since start; ``active_sessions`` and ``open_connections`` are gauges.

    Each accepted connection ends in exactly one of ``no_env``, ``lost``, ``ok``, ``failed``.
    """

    accepted: int = 0
    refused: int = 0  # closed at once: beyond max_connections, every open one a real session
    evicted: int = 0  # closed to make room: silent since its accept (no AGI environment yet)
    overload: int = 0  # FAILED without running the handler: beyond max_sessions
    ok: int = 0
    failed: int = 0
    unknown_handler: int = 0
    no_env: int = 0  # no environment (timeout, EOF, garbage): closed without status
    bad_env: int = 0  # a malformed environment: FAILED
    timeouts: int = 0
    handler_errors: int = 0
    hangups: int = 0
    lost: int = 0  # connection lost or protocol error: no status could be set
    status_set: int = 0
    internal_errors: int = 0
    active_sessions: int = 0
    open_connections: int = 0


def outcome(decided: Mapping[str, str]) -> str:
    """The decision in a few words for the log: its ``*_ACTION``, ``*_STATE``, ``*_DEST_TYPE``, ``*_SOURCE``
    (where reverse_lookup found the name; never the name itself) and cause."""
    keys = ("_ACTION", "_STATE", "_DEST_TYPE", "_SOURCE")
    parts = [f"{k}={v}" for k, v in decided.items() if k.endswith(keys) and v]
    if decided.get("AGID_DEGRADED") == "1":
        parts.append("degraded")
    if cause := decided.get("AGID_CAUSE"):
        parts.append(f"({cause})")
    return ": " + " ".join(parts) if parts else ""


class _Throttle:
    """At most one log line per ``interval`` seconds; counts what it held back."""

    def __init__(self, interval: float = 1.0) -> None:
        self._interval = interval
        self._last = float("-inf")
        self._held = 0

    def allow(self) -> int | None:
        """None: do not log now; else log, mentioning this many events held back since the last line."""
        now = time.monotonic()
        if now - self._last < self._interval:
            self._held += 1
            return None
        held, self._held, self._last = self._held, 0, now
        return held


class AGIServer:
    """``await start()``, then ``await stop()``. Handlers: the table given, by default the one table."""

    def __init__(
        self,
        config: Config,
        handlers: Mapping[str, Handler] | None = None,
        context: HandlerContext | None = None,
        limits: Limits | None = None,
    ) -> None:
        if handlers is None:
            from agid.handlers import HANDLERS

            handlers = HANDLERS
        check_handlers(handlers)
        self.config = config
        self.handlers = handlers
        self.context = context if context is not None else HandlerContext(config=config)
        self.limits = limits or Limits()
        self.stats = Stats()
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._strays: set[asyncio.Task[None]] = set()
        self._connections: set[AGIConnection] = set()
        self._awaiting_env: dict[AGIConnection, None] = {}  # oldest first: the first to go when full
        self._refused_log = _Throttle()
        self._overload_log = _Throttle()

    # -- lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: AGIConnection(self._connection_made, self.limits),
            host=self.config.listen_address,
            port=self.config.listen_port,
            backlog=1024,
        )
        log.info("listening on %s:%d", *self.address)

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None and self._server.sockets
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    @property
    def tasks(self) -> int:
        """Session and abandoned handler tasks still alive."""
        return len(self._sessions) + len(self._strays)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting; let sessions finish (each is bounded by session_timeout); cancel leftovers."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if grace is None:
            grace = self.config.session_timeout + 1.0
        if self._sessions:
            await asyncio.wait(set(self._sessions), timeout=grace)
        for task in (*self._sessions, *self._strays):
            task.cancel()
        leftovers = self._sessions | self._strays
        if leftovers:
            await asyncio.wait(leftovers, timeout=1.0)
        for connection in list(self._connections):
            connection.abort()
        log.info("stopped")

    # -- per connection

    def _connection_made(self, connection: AGIConnection) -> None:
        if len(self._connections) >= self.config.max_connections and self._awaiting_env:
            silent = next(iter(self._awaiting_env))
            self._forget(silent)
            silent.abort()
            self.stats.evicted += 1
        if len(self._connections) >= self.config.max_connections:
            self.stats.refused += 1
            suppressed = self._refused_log.allow()
            if suppressed is not None:
                log.warning(
                    "connection closed at once: %d open (max_connections); %d more not logged",
                    len(self._connections),
                    suppressed,
                )
            connection.abort()
            return
        self.stats.accepted += 1
        self._connections.add(connection)
        self._awaiting_env[connection] = None
        self.stats.open_connections = len(self._connections)
        task = asyncio.get_running_loop().create_task(self._session(connection))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _session(self, connection: AGIConnection) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.session_timeout
        work_deadline = deadline - self.config.status_timeout
        try:
            try:
                async with asyncio.timeout_at(min(work_deadline, loop.time() + self.config.env_timeout)):
                    env = await connection.wait_env()
            except (TimeoutError, AGIError) as exc:
                self.stats.no_env += 1
                # a bare TCP connect (a port check) is not worth a warning; garbage and silence are
                level = logging.INFO if isinstance(exc, AGIConnectionLost) else logging.WARNING
                log.log(level, "no AGI environment from %s: %s", connection.peer, exc or "timeout")
                return
            finally:
                self._awaiting_env.pop(connection, None)
            # the session's one deadline, counted from the accept: handlers, lookup and database reads
            # all wait on it
            session = AGISession(
                connection, env, self.context, deadline=connection.accepted_at + self.config.db_timeout
            )
            try:
                status = await self._decide(session, work_deadline)
            except Exception:  # a bug of ours: still end the session by the contract
                self.stats.internal_errors += 1
                log.exception("internal error in session from %s (channel %r)", connection.peer, env.channel)
                status = FAILED
            if status is None:
                self.stats.lost += 1
                return
            if status == OK:
                self.stats.ok += 1
            else:
                self.stats.failed += 1
            await self._set_status(session, status, deadline)
        finally:
            connection.close()
            self._forget(connection)

    def _forget(self, connection: AGIConnection) -> None:
        self._awaiting_env.pop(connection, None)
        self._connections.discard(connection)
        self.stats.open_connections = len(self._connections)

    async def _decide(self, session: AGISession, work_deadline: float) -> str | None:
        env = session.env
        name = env.handler_name
        if env.problems:
            self.stats.bad_env += 1
            session.log.warning("malformed AGI environment (handler %r): %s", name, "; ".join(env.problems))
            return FAILED
        handler = find_handler(self.handlers, name)
        if handler is None:
            self.stats.unknown_handler += 1
            session.log.warning("unknown AGI handler %r (request %r)", name, env.request)
            return FAILED
        if self.stats.active_sessions >= self.config.max_sessions:
            self.stats.overload += 1
            suppressed = self._overload_log.allow()
            if suppressed is not None:
                session.log.warning(
                    "overload: %d handlers running (max_sessions), %r not run; %d more not logged",
                    self.stats.active_sessions,
                    name,
                    suppressed,
                )
            return FAILED
        self.stats.active_sessions += 1
        try:
            return await self._run_handler(session, handler, name, work_deadline)
        finally:
            self.stats.active_sessions -= 1

    async def _run_handler(
        self, session: AGISession, handler: Handler, name: str, work_deadline: float
    ) -> str | None:
        loop = asyncio.get_running_loop()
        # its own task, so that a handler ignoring cancellation can be left behind at the deadline
        task = loop.create_task(handler(session), name=f"agid handler {name}")  # type: ignore[arg-type]
        try:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, work_deadline - loop.time()))
            if not done:
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=self.config.status_timeout / 2)
                self.stats.timeouts += 1
                if not done:
                    session.log.error("handler %r ignores cancellation; abandoned past its deadline", name)
                    self._strays.add(task)
                    task.add_done_callback(self._strays.discard)
                    return FAILED
                session.log.warning(
                    "handler %r stopped at its deadline (%.1fs)", name, self.config.session_timeout
                )
                if not task.cancelled():
                    task.exception()  # retrieved; the deadline is what is reported
                return FAILED
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task.cancelled():
            self.stats.handler_errors += 1
            session.log.error("handler %r was cancelled", name)
            return FAILED
        exc = task.exception()
        if exc is None:
            return OK
        if isinstance(exc, AGIConnectionLost):
            session.log.info("handler %r: connection lost: %s", name, exc)
            return None
        if isinstance(exc, AGIProtocolError):
            session.log.warning("handler %r: protocol error: %s", name, exc)
            return None if session.connection_error is not None else FAILED
        if isinstance(exc, AGIHangup):
            self.stats.hangups += 1
            session.log.info("handler %r: channel hung up: %s", name, exc)
            return FAILED
        self.stats.handler_errors += 1
        session.log.error("handler %r failed: %s: %s", name, type(exc).__name__, exc, exc_info=exc)
        return FAILED

    async def _set_status(self, session: AGISession, status: str, deadline: float) -> None:
        if not session.can_send:
            reason = session.connection_error or "a command of the abandoned handler is in flight"
            session.log.info("AGID_STATUS=%s not set: %s", status, reason)
            return
        try:
            async with asyncio.timeout_at(deadline):
                # the decision goes with OK only: after FAILED the dialplan reads nothing else
                decided = session.decided if status == OK else {}
                await session.set_variables({**decided, STATUS_VARIABLE: status})
            self.stats.status_set += 1
            elapsed = asyncio.get_running_loop().time() - (deadline - self.config.session_timeout)
            session.log.info(
                "%s %s%s in %.0f ms", session.handler_name, status, outcome(decided), elapsed * 1000
            )
        except TimeoutError:
            session.log.warning("AGID_STATUS=%s not acknowledged before the session deadline", status)
        except AGIError as exc:
            session.log.info("AGID_STATUS=%s not set: %s", status, exc)
