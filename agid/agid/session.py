"""The API handlers use: one :class:`AGISession` per FastAGI connection.

Every method sends one AGI command and waits for its reply. Non-200 replies raise
:class:`~agid.errors.AGIUnknownCommand` (510), :class:`~agid.errors.AGIDeadChannel` (511),
:class:`~agid.errors.AGIUsageError` (520); a closed socket raises
:class:`~agid.errors.AGIConnectionLost`. Once Asterisk has sent ``HANGUP`` it runs the AGI in "dead"
mode and refuses every command that needs a live channel; the methods for those commands then raise
:class:`~agid.errors.AGIHangup` without a round trip (Asterisk would answer 511). Commands that work on a
dead channel (variables, VERBOSE, EXEC, DATABASE, NOOP) are still sent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agid.env import AGIEnv
from agid.errors import (
    AGICommandFailed,
    AGIDeadChannel,
    AGIError,
    AGIHangup,
    AGIProtocolError,
    AGIUnknownCommand,
    AGIUsageError,
)
from agid.protocol import AGIReply, Quoted, check_arg, format_command, mset_batches, mset_pairs

if TYPE_CHECKING:
    from agid.connection import AGIConnection
    from agid.registry import HandlerContext


class ChannelLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes messages with the channel name and uniqueid (repr'd: they come from the peer)."""

    def __init__(self, logger: logging.Logger, env: AGIEnv) -> None:
        super().__init__(logger, {"channel": env.channel, "uniqueid": env.uniqueid})
        # The values come from the peer: escape '%' so that they never act as format directives.
        self._prefix = f"channel={env.channel!r} uniqueid={env.uniqueid!r}: ".replace("%", "%%")

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return self._prefix + str(msg), kwargs


class AGISession:
    """What a handler gets: the environment, the handler context and the AGI commands."""

    def __init__(
        self,
        connection: AGIConnection,
        env: AGIEnv,
        context: HandlerContext | None = None,
        *,
        deadline: float,
    ) -> None:
        self._connection = connection
        #: The session's one deadline, a time of ``time.monotonic()`` (the same clock in every thread and
        #: event loop): the end of the handler's database work, ``db_timeout`` after the accept of the
        #: connection (a caller waits for agid from then on, whatever agid had to do first). Fixed once by
        #: the server, passed down as it is to the database reads; every wait is ``deadline - now``.
        self.deadline = deadline
        self._lock = asyncio.Lock()  # one command at a time, even if a handler gathers several
        #: The ``agi_*`` environment Asterisk sent.
        self.env = env
        #: Shared services of the daemon (configuration, later the database), see :mod:`agid.registry`.
        self.context = context
        #: Number of commands sent.
        self.commands_sent = 0
        #: The decision of the handler (:meth:`decide`), set by the server together with ``AGID_STATUS``.
        self.decided: dict[str, str] = {}
        self._mset = True  # False once Asterisk said it has no MSet application

    @functools.cached_property
    def log(self) -> ChannelLogger:
        """A logger that prefixes every message with the channel and the uniqueid."""
        return ChannelLogger(logging.getLogger("agid.handler"), self.env)

    # -- environment shortcuts

    @property
    def handler_name(self) -> str:
        return self.env.handler_name

    @property
    def args(self) -> tuple[str, ...]:
        """The AGI() arguments after the URL: ``agi_arg_1``, ``agi_arg_2``, ..."""
        return self.env.args

    @functools.cached_property
    def query(self) -> Mapping[str, str]:
        """The query string of the AGI URL: ``agi://127.0.0.1/name?a=1`` -> ``{"a": "1"}``."""
        return self.env.query

    @property
    def hungup(self) -> bool:
        """True once Asterisk sent ``HANGUP`` (the caller is gone; the dialplan runs its h extension)."""
        return self._connection.hungup

    @property
    def accepted_at(self) -> float:
        """The ``time.monotonic()`` of the accept of the connection, from which every budget counts."""
        return self._connection.accepted_at

    @property
    def connection_error(self) -> AGIError | None:
        """Why the connection is unusable (lost, closed, protocol error), or None."""
        return self._connection.error

    @property
    def can_send(self) -> bool:
        """False once the connection is lost, or while a command waits for its reply."""
        return not self._connection.lost and not self._connection.busy

    # -- the raw command

    async def command(self, command: str, *args: str | int) -> AGIReply:
        """Send ``command`` (fixed words: ``"GET VARIABLE"``) with quoted ``args``; return the 200 reply."""
        line = format_command(command, *args)
        async with self._lock:
            self.commands_sent += 1
            reply = await self._connection.execute(line)
        if reply.code == 200:
            return reply
        if reply.code == 510:
            raise AGIUnknownCommand(f"{command}: {reply.line}", reply)
        if reply.code == 511:
            raise AGIDeadChannel(f"{command}: {reply.line}", reply)
        if reply.code == 520:
            raise AGIUsageError(f"{command}: {reply.text or reply.line}", reply)
        raise AGIProtocolError(f"{command}: unexpected reply code {reply.code}: {reply.line[:200]!r}")

    async def _live(self, command: str, *args: str | int) -> AGIReply:
        """A command that Asterisk refuses on a dead channel."""
        if self.hungup:
            raise AGIHangup(f"{command}: the channel has hung up")
        return await self.command(command, *args)

    @staticmethod
    def _check(command: str, reply: AGIReply, failure: int = -1) -> int:
        result = reply.result_int()
        if result == failure:
            raise AGICommandFailed(f"{command} failed: {reply.line}", reply)
        return result

    # -- commands allowed on a dead channel

    async def get_variable(self, name: str) -> str | None:
        """The value of channel variable or function ``name``; None when it is not set."""
        reply = await self.command("GET VARIABLE", name)
        return reply.data if reply.result_int() == 1 and reply.data is not None else None

    async def get_full_variable(self, expression: str, channel: str | None = None) -> str | None:
        """``expression`` after variable substitution (``${CALLERID(num)}``); None when it is not set."""
        args = (expression,) if channel is None else (expression, channel)
        reply = await self.command("GET FULL VARIABLE", *args)
        return reply.data if reply.result_int() == 1 and reply.data is not None else None

    async def set_variable(self, name: str, value: str | int) -> None:
        """Set channel variable ``name`` (as Set(name=value) would, without any substitution)."""
        await self.command("SET VARIABLE", name, value)

    async def set_variables(self, variables: Mapping[str, str | int]) -> None:
        """Set every variable, in as few round trips as possible; the last one given is set last.

        Plain variables whose values MSet takes literally (:func:`agid.protocol.mset_batches`) go together
        in ``EXEC MSet``; the others (free text, functions such as ``CALLERID(name)``) one ``SET VARIABLE``
        each, before them. Without an MSet application (``EXEC`` result -2) everything is set one by one.
        """
        items = [(name, str(value)) for name, value in variables.items()]
        if len(items) < 2 or not self._mset:
            for name, value in items:
                await self.set_variable(name, value)
            return
        batches, single = mset_batches(items)
        last_single = single[-1:] if single and single[-1] == items[-1] else []
        for name, value in single[: len(single) - len(last_single)]:
            await self.set_variable(name, value)
        for index, batch in enumerate(batches):
            reply = await self.command("EXEC", "MSet", mset_pairs(batch))
            if reply.result_int() == -2:
                self.log.warning("Asterisk has no MSet application: variables are set one by one")
                self._mset = False
                for name, value in (item for rest in batches[index:] for item in rest):
                    await self.set_variable(name, value)
                break
        for name, value in last_single:
            await self.set_variable(name, value)

    def decide(self, variables: Mapping[str, str | int | None]) -> None:
        """Record the handler's decision; the server sets it with ``AGID_STATUS=OK`` when the handler
        returns, in as few commands as possible. None means "does not apply": not set. A value Asterisk
        could not receive intact raises AGIArgumentError here, in the handler."""
        for name, value in variables.items():
            if value is not None:
                text = str(value)
                check_arg(name)
                check_arg(text)
                self.decided[name] = text

    async def verbose(self, message: str, level: int = 1) -> None:
        """Log ``message`` on the Asterisk console at verbose ``level`` (1-4).

        Unlike other values, a log message is cleaned instead of refused: CR, LF and NUL become spaces.
        """
        clean = message.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
        await self.command("VERBOSE", Quoted(clean), level)

    async def exec(self, application: str, args: str = "") -> int:
        """Run a dialplan application (``exec("Set", "A=1")``) and return its result.

        ``args`` is the application's argument string as written in the dialplan (comma-separated);
        Asterisk parses it like dialplan does, so callers must not put untrusted text in it.
        AGICommandFailed when the application does not exist (result -2).
        """
        reply = (
            await self.command("EXEC", application, args) if args else await self.command("EXEC", application)
        )
        return self._check("EXEC", reply, failure=-2)

    async def noop(self, message: str = "") -> None:
        await (self.command("NOOP", message) if message else self.command("NOOP"))

    async def database_get(self, family: str, key: str) -> str | None:
        reply = await self.command("DATABASE GET", family, key)
        return reply.data if reply.result_int() == 1 and reply.data is not None else None

    async def database_put(self, family: str, key: str, value: str) -> None:
        reply = await self.command("DATABASE PUT", family, key, value)
        self._check("DATABASE PUT", reply, failure=0)

    async def database_del(self, family: str, key: str) -> bool:
        """True if the key existed."""
        reply = await self.command("DATABASE DEL", family, key)
        return reply.result_int() == 1

    # -- commands that need a live channel

    async def answer(self) -> None:
        self._check("ANSWER", await self._live("ANSWER"))

    async def hangup(self, channel: str | None = None) -> None:
        reply = await (self._live("HANGUP") if channel is None else self._live("HANGUP", channel))
        self._check("HANGUP", reply)

    async def channel_status(self, channel: str | None = None) -> int:
        """The channel state (0 down ... 6 up, 7 busy); AGICommandFailed if there is no such channel."""
        reply = await (
            self._live("CHANNEL STATUS") if channel is None else self._live("CHANNEL STATUS", channel)
        )
        return self._check("CHANNEL STATUS", reply)

    async def wait_for_digit(self, timeout_ms: int) -> str:
        """The DTMF digit pressed within ``timeout_ms`` (-1: forever), or ``""`` on timeout."""
        reply = await self._live("WAIT FOR DIGIT", timeout_ms)
        result = self._check("WAIT FOR DIGIT", reply)
        return chr(result) if result > 0 else ""

    async def stream_file(self, filename: str, escape_digits: str = "", offset: int | None = None) -> str:
        """Play ``filename`` (no extension); return the escape digit pressed, or ``""``.

        AGICommandFailed when the file cannot be played or the channel failed (``result=-1``).
        """
        args: tuple[str | int, ...] = (
            (filename, escape_digits) if offset is None else (filename, escape_digits, offset)
        )
        result = self._check("STREAM FILE", await self._live("STREAM FILE", *args))
        return chr(result) if result > 0 else ""

    async def set_context(self, context: str) -> None:
        await self._live("SET CONTEXT", context)

    async def set_extension(self, extension: str) -> None:
        await self._live("SET EXTENSION", extension)

    async def set_priority(self, priority: str | int) -> None:
        await self._live("SET PRIORITY", priority)
