"""Test tools: a fake Asterisk FastAGI peer, the recorded traces, an oracle of Asterisk's parser, a soak.

Used by agid's unit tests and meant for integration tests and benchmarks (``soak(address, n)``). Not
used by the daemon. Everything here speaks over real TCP sockets, blocking, with timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agid.config import Config
from agid.registry import Handler, HandlerContext
from agid.server import AGIServer

T = TypeVar("T")

#: Upper bound of every wait in tests: generous, so that a loaded 2-core machine passes.
WAIT = 20.0

# ------------------------------------------------------------------------------------------ Asterisk oracle

AGI_BUF_LEN = 2048
MAX_ARGS = 128


def asterisk_parse_args(line: bytes) -> list[bytes]:
    """A line-by-line port of res_agi.c ``parse_args`` (Asterisk 20): what Asterisk makes of one command."""
    argv: list[bytearray] = []
    cur: bytearray | None = None
    quoted = escaped = False
    whitespace = True
    for byte in line:
        if byte == 0:  # C string: stops at NUL
            break
        char = bytes([byte])
        normal = False
        if char == b'"':
            if escaped:
                normal = True
            else:
                quoted = not quoted
                if quoted and whitespace:
                    cur = bytearray()
                    argv.append(cur)
                    whitespace = False
                escaped = False
        elif char in b" \t":
            if not quoted and not escaped:
                whitespace = True
                cur = None
            else:
                normal = True
        elif char == b"\\":
            if escaped:
                normal = True
            else:
                escaped = True
        else:
            normal = True
        if normal:
            if whitespace:
                if len(argv) >= MAX_ARGS - 1:
                    continue  # "Too many arguments, truncating"
                cur = bytearray()
                argv.append(cur)
                whitespace = False
            assert cur is not None
            cur += char
            escaped = False
    return [bytes(a) for a in argv]


def asterisk_separate_args(data: bytes, delim: bytes, arraylen: int) -> list[bytes]:
    """A port of app.c ``__ast_app_separate_args`` with remove_chars (Asterisk 20): quotes and backslashes
    are removed, delimiters inside quotes, () or [] do not split, and the last of ``arraylen`` arguments
    gets the rest of the string as it is."""
    buf = bytearray(data)
    args: list[bytes] = []
    scan = 0
    paren = quote = bracket = 0
    wasdelim = -1
    while scan < len(buf) and len(args) < arraylen - 1:
        start = scan
        end = None
        while scan < len(buf):
            char = buf[scan : scan + 1]
            if char == b"(":
                paren += 1
            elif char == b")":
                paren = max(0, paren - 1)
            elif char == b"[":
                bracket += 1
            elif char == b"]":
                bracket = max(0, bracket - 1)
            elif char == b'"' and delim != b'"':
                quote ^= 1
                del buf[scan]
                continue
            elif char == b"\\":
                del buf[scan]  # the next character is literal: skipped below
            elif char == delim and not paren and not quote and not bracket:
                wasdelim = scan
                end = scan
                scan += 1
                break
            scan += 1
        args.append(bytes(buf[start : end if end is not None else scan]))
    if scan < len(buf) or (scan > 0 and scan - 1 == wasdelim):
        args.append(bytes(buf[scan:]))
    return args


def asterisk_mset(data: bytes) -> dict[bytes, bytes]:
    """What ``MSet(data)`` sets (pbx_variables.c ``pbx_builtin_setvar_multiple``): up to 99 pairs split on
    ",", each split once on "="; a pair without "=" is ignored (Asterisk logs a warning)."""
    out = {}
    for pair in asterisk_separate_args(data, b",", 99):
        parts = asterisk_separate_args(pair, b"=", 2)
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


def asterisk_read_commands(stream: bytes) -> list[bytes]:
    """Split what a FastAGI client wrote the way res_agi.c ``run_agi`` reads it (fgets into AGI_BUF_LEN).

    A line longer than AGI_BUF_LEN - 1 bytes is cut there and its tail is read as another command.
    """
    commands = []
    pos = 0
    while pos < len(stream):
        end = stream.find(b"\n", pos, pos + AGI_BUF_LEN - 1)
        if end < 0:
            chunk = stream[pos : pos + AGI_BUF_LEN - 1]
            pos += len(chunk)
        else:
            chunk = stream[pos:end]
            pos = end + 1
        commands.append(chunk)
    return commands


# ------------------------------------------------------------------------------------------------- traces


@dataclass(frozen=True)
class Trace:
    """One recorded FastAGI session: the env block, the commands sent, Asterisk's reply to each.

    ``replies[i]`` holds the exact bytes Asterisk sent after command ``i``, an asynchronous ``HANGUP``
    line that followed included, so ``env + b"".join(replies)`` is the recording byte for byte.
    """

    env: bytes
    commands: list[bytes]
    replies: list[bytes]
    from_asterisk: bytes


def split_replies(data: bytes) -> list[bytes]:
    """Cut a reply stream into one unit per command: ``520-`` blocks whole, ``HANGUP`` with the previous."""
    lines = data.splitlines(keepends=True)
    units: list[bytes] = []
    prefix = b""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line == b"HANGUP\n":
            if units:
                units[-1] += line
            else:
                prefix += line
            i += 1
            continue
        unit = prefix + line
        prefix = b""
        if line[:4] == b"520-":
            while i + 1 < len(lines) and lines[i][:4] != b"520 ":
                i += 1
                unit += lines[i]
        units.append(unit)
        i += 1
    return units


def load_trace(name: str, directory: Path) -> Trace:
    """Load ``NN-name`` (e.g. ``04-fastagi-originate``) from ``directory`` (agid's tests keep theirs)."""
    env = (directory / f"{name}.agi-env.raw").read_bytes()
    from_asterisk = (directory / f"{name}.agi-from-asterisk.raw").read_bytes()
    to_asterisk = (directory / f"{name}.agi-to-asterisk.raw").read_bytes()
    if not from_asterisk.startswith(env):
        raise ValueError(f"{name}: the reply stream does not start with the environment")
    commands = to_asterisk.splitlines(keepends=True)
    replies = split_replies(from_asterisk[len(env) :])
    if len(replies) != len(commands):
        raise ValueError(f"{name}: {len(commands)} commands but {len(replies)} replies")
    return Trace(env, commands, replies, from_asterisk)


# ---------------------------------------------------------------------------------------------- fake peer


USAGE_REPLY = b"520-Invalid command syntax.  Proper usage follows:\nUsage text.\n520 End of proper usage.\n"


def default_answer(command: bytes) -> bytes:
    """What Asterisk answers to a command that is not in the script (a live channel, nothing set)."""
    argv = [a.upper() for a in asterisk_parse_args(command.rstrip(b"\n"))]
    if argv[:2] == [b"SET", b"VARIABLE"]:
        return b"200 result=1\n" if len(argv) == 4 else USAGE_REPLY
    if argv[:2] == [b"GET", b"VARIABLE"]:
        return b"200 result=0\n"
    if argv[:1] == [b"EXEC"] and len(argv) >= 2:
        # the application's return value; -2: no such application (MSet returns 0)
        return b"200 result=0\n" if argv[1].lower() == b"mset" else b"200 result=-2\n"
    if argv[:1] == [b"VERBOSE"]:
        return b"200 result=1\n"
    return b"510 Invalid or unknown command\n"


@dataclass
class Step:
    """One exchange: expect ``command`` (None: any), answer ``reply`` (None: close the socket instead)."""

    command: bytes | None
    reply: bytes | None
    delay: float = 0.0


@dataclass
class Transcript:
    commands: list[bytes] = field(default_factory=list)
    #: The value of the last ``SET VARIABLE AGID_STATUS x`` received.
    status: str | None = None
    #: True when agid closed the connection (EOF), False when the fake closed it first.
    closed_by_server: bool = False
    unexpected: list[tuple[int, bytes, bytes]] = field(default_factory=list)

    def variables(self) -> dict[str, str]:
        """Every variable set (``SET VARIABLE name value``, ``EXEC MSet a=1,b=2``), as Asterisk would."""
        out = {}
        for command in self.commands:
            for name, value in set_by(command).items():
                out[name.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        return out


def set_by(command: bytes) -> dict[bytes, bytes]:
    """The variables that one command line sets in Asterisk (none for other commands)."""
    argv = asterisk_parse_args(command.rstrip(b"\n"))
    if len(argv) == 4 and argv[0].upper() == b"SET" and argv[1].upper() == b"VARIABLE":
        return {argv[2]: argv[3]}
    if len(argv) >= 3 and argv[0].upper() == b"EXEC" and argv[1].lower() == b"mset":
        return asterisk_mset(argv[2])
    return {}


class LineSocket:
    """A blocking TCP client socket read line by line, each read bounded by ``timeout``."""

    def __init__(self, address: tuple[str, int], timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def readline(self, limit: int = 1 << 20) -> bytes:
        """One line with its LF; ``b""`` at EOF (a partial last line is returned without LF)."""
        while b"\n" not in self._buffer:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                data, self._buffer = self._buffer, b""
                return data
            self._buffer += chunk
            if len(self._buffer) > limit:
                raise ValueError("line too long from agid")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    def read_to_eof(self) -> bytes:
        data = self._buffer
        self._buffer = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0), as a crashed peer would."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class FakeAsterisk:
    """Plays Asterisk's side of one FastAGI session against agid over TCP.

    Sends ``env``, then for each command agid writes: checks it against the script, answers the scripted
    reply bytes verbatim; past the script, answers like Asterisk would (:func:`default_answer`), until
    agid closes the connection.
    """

    def __init__(self, address: tuple[str, int], timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout

    def run(
        self,
        env: bytes,
        script: Sequence[Step] = (),
        answer: Callable[[bytes], bytes] = default_answer,
        max_commands: int = 1000,
        env_delay: float = 0.0,
    ) -> Transcript:
        """``env_delay``: seconds between the connect and the environment."""
        transcript = Transcript()
        peer = LineSocket(self.address, self.timeout)
        try:
            time.sleep(env_delay)
            peer.send(env)
            for index in range(max_commands):
                line = peer.readline()
                if not line.endswith(b"\n"):
                    transcript.closed_by_server = True
                    if line:
                        transcript.unexpected.append((index, b"<partial line>", line))
                    return transcript
                transcript.commands.append(line)
                status = set_by(line).get(b"AGID_STATUS")
                if status is not None:
                    transcript.status = status.decode("utf-8", "surrogateescape")
                if index < len(script):
                    step = script[index]
                    if step.command is not None and step.command != line:
                        transcript.unexpected.append((index, step.command, line))
                    if step.delay:
                        time.sleep(step.delay)
                    if step.reply is None:
                        return transcript
                    peer.send(step.reply)
                else:
                    peer.send(answer(line))
            raise AssertionError(f"agid sent more than {max_commands} commands")
        finally:
            peer.close()

    def replay(self, trace: Trace) -> Transcript:
        """Replay a recorded session: its env, then its recorded reply to each recorded command."""
        return self.run(trace.env, [Step(c, r) for c, r in zip(trace.commands, trace.replies, strict=True)])


# ------------------------------------------------------------------------------------------ server thread


class ServerThread:
    """An AGIServer running in a private event loop on a background thread."""

    def __init__(
        self,
        config: Config,
        handlers: Mapping[str, Handler] | None,
        context_factory: Callable[[Config], Coroutine[Any, Any, HandlerContext]] | None = None,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="agid-test-loop", daemon=True)
        self.thread.start()
        self.context = self.call(context_factory(config)) if context_factory is not None else None
        self.server = self.call(self._make(config, handlers, self.context))
        self.call(self.server.start())
        self.address = self.server.address

    @staticmethod
    async def _make(
        config: Config, handlers: Mapping[str, Handler] | None, context: HandlerContext | None
    ) -> AGIServer:
        return AGIServer(config, handlers, context=context)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = WAIT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call_soon(self, fn: Callable[[], object]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def tasks(self) -> int:
        """Tasks alive in the server's loop (this probe excluded)."""

        async def count() -> int:
            return len(asyncio.all_tasks()) - 1

        return self.call(count())

    def wait_until(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise AssertionError(f"condition not met within {timeout}s")
            time.sleep(0.005)

    def wait_idle(self, timeout: float = WAIT) -> None:
        """Until no session is open (the peer may see EOF a moment before the server's bookkeeping)."""
        self.wait_until(lambda: self.server.stats.open_connections == 0 and self.server.tasks == 0, timeout)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self.server.stop(grace=5.0))
        if self.context is not None:
            from agid.services import close_context

            with contextlib.suppress(Exception):
                self.call(close_context(self.context))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


# --------------------------------------------------------------------------------------------------- soak

_ENV_TEMPLATE = (
    b"agi_network: yes\nagi_network_script: %s\nagi_request: agi://127.0.0.1:4573/%s\n"
    b"agi_channel: Local/soak@agi-test-%08d;2\nagi_uniqueid: 1795416621.%d\nagi_callerid: 5550104\n"
    b"agi_calleridname: AGI Test\nagi_context: agi-test\nagi_extension: soak\nagi_priority: 1\n"
)

_GARBAGE_REPLIES = (
    b"200\n",
    b"200 result\n",
    b"200 result=1 (unterminated\n",
    b"999 what\n",
    b"HANGUP\nHANGUP\n200 result=1\n200 result=1\n",
    b"520-usage\n" + b"x\n" * 600,
    b"\xff\xfe\x00\n",
    b"200 result=1 (" + b"y" * 20000,
)


def malformed_session(rng: random.Random, index: int) -> tuple[bytes, list[bytes]]:
    """A peer's opening bytes and its answers (one per command agid sends), mostly malformed."""
    script = rng.choice([b"ping", b"echo", b"nosuch", b"echo?x=1&y=%zz", b""])
    env = _ENV_TEMPLATE % (script, script, index, index)
    kind = rng.randrange(8)
    if kind == 0:  # random bytes, no env at all
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200))), []
    if kind == 1:  # env cut short
        return env[: rng.randrange(len(env))], []
    if kind == 2:  # env with mangled bytes
        data = bytearray(env + b"\n")
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.getrandbits(8)
        return bytes(data), [rng.choice(_GARBAGE_REPLIES)]
    if kind == 3:  # an over-long env line
        return env + b"agi_arg_1: " + b"z" * 20000 + b"\n\n", []
    if kind == 4:  # replies before any command
        return env + b"\n" + rng.choice(_GARBAGE_REPLIES), []
    # a valid env, then garbage answers
    answers = [rng.choice(_GARBAGE_REPLIES) for _ in range(rng.randrange(1, 4))]
    return env + b"\n", answers


def soak(address: tuple[str, int], n: int, seed: int = 0, timeout: float = 10.0) -> dict[str, int]:
    """Open ``n`` sessions against agid at ``address``, each malformed in some way, one after the other.

    Each session sends its bytes, answers agid's commands with garbage, and ends by closing, resetting
    or waiting for agid to close. Returns counts of how sessions ended. Raises if agid stops accepting.
    """
    rng = random.Random(seed)
    ends = {"server_closed": 0, "client_closed": 0, "client_reset": 0}
    for index in range(n):
        opening, answers = malformed_session(rng, index)
        peer = LineSocket(address, timeout)
        try:
            try:
                peer.send(opening)
                # agid only speaks once it has a whole environment; don't wait for it otherwise
                for answer in answers if b"\n\n" in opening else ():
                    line = peer.readline()
                    if not line.endswith(b"\n"):
                        break
                    peer.send(answer)
            except OSError:
                pass
            ending = rng.randrange(3)
            if ending == 0:  # half-close, then wait for agid to close
                with contextlib.suppress(OSError):
                    peer.sock.shutdown(socket.SHUT_WR)
                    peer.read_to_eof()
                ends["server_closed"] += 1
            elif ending == 1:
                peer.close()
                ends["client_closed"] += 1
            else:
                peer.reset()
                ends["client_reset"] += 1
        finally:
            peer.close()
    return ends
