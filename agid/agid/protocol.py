"""FastAGI wire format, without I/O: bytes in, messages out; commands in, bytes out.

What Asterisk 20 (res/res_agi.c) sends on a FastAGI socket, every line ending with a bare LF:

* the environment block: ``agi_key: value`` lines, then an empty line (see :mod:`agid.env`);
* one reply per command:

  - ``200 result=<r>[ (<data>)][ key=value ...]`` -- ``<r>`` is usually an integer, possibly negative,
    but GET DATA puts the digits typed there (``200 result=*12 (timeout)``, even ``200 result= (timeout)``);
    ``<data>`` is verbatim (GET VARIABLE's value: spaces and parentheses included); ``endpos=``,
    ``results=``... may follow; GOSUB adds free text (``200 result=0 Gosub complete``);
  - ``510 Invalid or unknown command``;
  - ``511 Command Not Permitted on a dead channel or intercept routine``;
  - ``520-Invalid command syntax.  Proper usage follows:``, the usage text (any lines), then
    ``520 End of proper usage.``; or the single line ``520 Invalid command syntax.  Proper usage not
    available.``;

* ``HANGUP`` at any time once the channel hung up (only when AGISIGHUP is not ``no``); it may come
  before or after the reply of the command in progress.

Commands are one line each; Asterisk reads them with ``fgets`` into ``AGI_BUF_LEN`` (2048) bytes and
splits them with ``parse_args``: words separated by spaces or tabs, ``"`` toggles quoting, ``\\`` makes
the next character literal, at most ``MAX_ARGS - 1`` (127) words. :func:`format_command` quotes for that
parser and refuses anything that could change the number of lines Asterisk reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from agid.env import AGIEnv, parse_env
from agid.errors import AGIArgumentError, AGIProtocolError

#: Longest command line, LF excluded: Asterisk's fgets() reads at most AGI_BUF_LEN - 1 = 2047 bytes, LF
#: included; a longer line is cut there and its tail runs as a second command.
MAX_COMMAND_BYTES = 2046
#: parse_args() keeps at most MAX_ARGS - 1 = 127 words (command words included) and drops the rest.
MAX_COMMAND_WORDS = 127

ENCODING = "utf-8"
#: Undecodable bytes (a caller name in Latin-1...) survive a round trip through str.
ERRORS = "surrogateescape"

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a peer may send; beyond them the connection is a protocol error."""

    max_line: int = 16 * 1024
    max_env_lines: int = 512
    max_usage_lines: int = 512
    #: Asterisk sends HANGUP once (twice with AGIEXITONHANGUP, then closes); more is a flood.
    max_hangups: int = 4


# --------------------------------------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True)
class AGIReply:
    """One reply to one command."""

    code: int
    #: The status line as received (the last one, ``520 End of proper usage.``, for a usage block).
    line: str
    #: For 200: the text after ``result=`` (up to the first space); None for other codes.
    result: str | None = None
    #: For 200: the text between the parentheses, verbatim; None when there are none.
    data: str | None = None
    #: For 200: ``key=value`` words after the result or the data (``endpos``...).
    fields: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    #: For 200: other words after the result; for other codes: the message.
    text: str = ""
    #: For a ``520-`` block: the usage lines between the first and the last line.
    usage: tuple[str, ...] = ()

    def result_int(self) -> int:
        """The result as an integer; AGIProtocolError if it is not one."""
        try:
            return int(self.result or "", 10)
        except ValueError:
            raise AGIProtocolError(f"reply result is not an integer: {self.line[:200]!r}") from None


@dataclass(frozen=True, slots=True)
class EnvReceived:
    env: AGIEnv


@dataclass(frozen=True, slots=True)
class HangupReceived:
    pass


Event = EnvReceived | HangupReceived | AGIReply

_STATUS = re.compile(r"([0-9]{3})(?:([ -])(.*))?\Z", re.DOTALL)
_KEY_VALUE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=[^\s()]*\Z")


def _key_values(tail: str) -> dict[str, str] | None:
    """``key=value`` words of ``tail`` (which must start with whitespace or be empty), else None."""
    if tail and not tail[0].isspace():
        return None
    words = tail.split()
    if not all(_KEY_VALUE.match(word) for word in words):
        return None
    return dict(word.split("=", 1) for word in words)


def _parse_200(line: str, rest: str) -> AGIReply:
    if not rest.startswith("result="):
        raise AGIProtocolError(f"200 reply without result=: {line[:200]!r}")
    result, _, after = rest[len("result=") :].partition(" ")
    after = after.lstrip(" ")
    if not after.startswith("("):
        words = after.split()
        fields = {}
        text = []
        for word in words:
            if _KEY_VALUE.match(word):
                key, _, value = word.partition("=")
                fields[key] = value
            else:
                text.append(word)
        return AGIReply(200, line, result, None, MappingProxyType(fields), " ".join(text))
    # The data runs to the closing parenthesis that is followed by nothing but key=value words. Asterisk
    # does not escape the data, so the data may hold parentheses: try the rightmost ')' first.
    end = after.rfind(")")
    if end < 0:
        # Only a value with an embedded LF produces this: the rest of the value is on the next line.
        raise AGIProtocolError(f"reply data without its closing parenthesis: {line[:200]!r}")
    first_end = end
    while end > 0:
        fields_or_none = _key_values(after[end + 1 :])
        if fields_or_none is not None:
            return AGIReply(200, line, result, after[1:end], MappingProxyType(fields_or_none))
        end = after.rfind(")", 0, end)
    # No ')' is followed by key=value words only: keep the last one and the rest as text.
    fields = {}
    text = []
    for word in after[first_end + 1 :].split():
        if _KEY_VALUE.match(word):
            key, _, value = word.partition("=")
            fields[key] = value
        else:
            text.append(word)
    return AGIReply(200, line, result, after[1:first_end], MappingProxyType(fields), " ".join(text))


def parse_reply_line(line: str) -> AGIReply:
    """Parse a one-line reply (``200 ...``, ``510 ...``, ``511 ...``, ``520 ...``); LF already removed."""
    match = _STATUS.match(line)
    if match is None or match.group(2) == "-":
        raise AGIProtocolError(f"not an AGI reply: {line[:200]!r}")
    code = int(match.group(1))
    rest = match.group(3) or ""
    if code == 200:
        return _parse_200(line, rest)
    return AGIReply(code, line, text=rest)


# --------------------------------------------------------------------------------------------- parser


class AGIParser:
    """Incremental parser of what Asterisk sends: :meth:`feed` bytes, get :data:`Event` objects.

    First the environment block (one :class:`EnvReceived`), then replies and ``HANGUP`` lines. After an
    :class:`~agid.errors.AGIProtocolError` the parser is dead and raises it again on every call.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self._limits = limits or Limits()
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer known to hold no LF
        self._env_lines: list[str] | None = []  # None once the environment is complete
        self._block_code: int | None = None  # inside a "NNN-" multi-line reply
        self._block_first = ""
        self._block_lines: list[str] = []
        self._error: AGIProtocolError | None = None
        self._hangups = 0

    def feed(self, data: bytes) -> list[Event]:
        if self._error is not None:
            raise self._error
        self._buffer += data
        events: list[Event] = []
        try:
            while True:
                newline = self._buffer.find(b"\n", self._scanned)
                if newline < 0:
                    self._scanned = len(self._buffer)
                    if self._scanned > self._limits.max_line:
                        raise AGIProtocolError(f"line longer than {self._limits.max_line} bytes")
                    return events
                if newline > self._limits.max_line:
                    raise AGIProtocolError(f"line longer than {self._limits.max_line} bytes")
                raw = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                self._scanned = 0
                event = self._line(raw.decode(ENCODING, ERRORS))
                if event is not None:
                    events.append(event)
        except AGIProtocolError as exc:
            self._error = exc
            self._buffer.clear()
            raise

    def _line(self, line: str) -> Event | None:
        if self._env_lines is not None:
            if line:
                if len(self._env_lines) >= self._limits.max_env_lines:
                    raise AGIProtocolError(f"environment longer than {self._limits.max_env_lines} lines")
                self._env_lines.append(line)
                return None
            env = parse_env(self._env_lines)
            self._env_lines = None
            return EnvReceived(env)
        if self._block_code is not None:
            if line.startswith(f"{self._block_code} "):
                code = self._block_code
                usage = tuple(self._block_lines)
                self._block_code = None
                self._block_lines = []
                return AGIReply(code, line, text=self._block_first, usage=usage)
            if len(self._block_lines) >= self._limits.max_usage_lines:
                raise AGIProtocolError(f"multi-line reply longer than {self._limits.max_usage_lines} lines")
            self._block_lines.append(line)
            return None
        if line == "HANGUP":
            self._hangups += 1
            if self._hangups > self._limits.max_hangups:
                raise AGIProtocolError(f"more than {self._limits.max_hangups} HANGUP lines")
            return HangupReceived()
        match = _STATUS.match(line)
        if match is not None and match.group(2) == "-":
            self._block_code = int(match.group(1))
            self._block_first = match.group(3)
            return None
        return parse_reply_line(line)


# --------------------------------------------------------------------------------------------- commands

_COMMAND = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*\Z")
_SPECIAL = frozenset(' \t"\\')
_FORBIDDEN = ("\n", "\r", "\x00")


class Quoted(str):
    """An argument always written in double quotes (``VERBOSE "msg" 1``, as AGI libraries usually do)."""

    __slots__ = ()


def check_arg(text: str) -> None:
    """AGIArgumentError if ``text`` holds CR, LF or NUL (see :func:`quote_arg`)."""
    for bad in _FORBIDDEN:
        if bad in text:
            raise AGIArgumentError(f"AGI argument contains {bad!r}: {text[:80]!r}")


def quote_arg(value: str | int) -> str:
    """Quote one argument for Asterisk's ``parse_args`` so that it comes out as exactly ``value``.

    Bare when it can be (non-empty, no space, tab, ``"`` or ``\\``, not :class:`Quoted`), else
    double-quoted with ``"`` and ``\\`` escaped by a backslash. CR, LF and NUL are refused
    (AGIArgumentError): LF would end the command line and let the rest run as a second command, NUL
    would silently cut it, CR is refused with them so that no value can ever look like a line break.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise AGIArgumentError(f"AGI arguments are str or int, not {type(value).__name__}")
    text = str(value)
    check_arg(text)
    if text and _SPECIAL.isdisjoint(text) and not isinstance(value, Quoted):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_command(command: str, *args: str | int) -> bytes:
    """The bytes of one command line, LF included: ``format_command("SET VARIABLE", "X", "a b")``.

    ``command`` is the command's fixed words (letters and single spaces); each argument is quoted by
    :func:`quote_arg`. AGIArgumentError when the line would not reach Asterisk as one intact command.
    """
    if not _COMMAND.match(command):
        raise AGIArgumentError(f"not an AGI command name: {command[:80]!r}")
    words = len(command.split(" ")) + len(args)
    if words > MAX_COMMAND_WORDS:
        raise AGIArgumentError(f"{words} words in one command; Asterisk keeps {MAX_COMMAND_WORDS}")
    line = " ".join([command, *(quote_arg(arg) for arg in args)])
    try:
        data = line.encode(ENCODING, ERRORS)
    except UnicodeEncodeError as exc:
        raise AGIArgumentError(f"AGI argument cannot be encoded: {exc}") from None
    if len(data) > MAX_COMMAND_BYTES:
        raise AGIArgumentError(f"command line of {len(data)} bytes; Asterisk reads {MAX_COMMAND_BYTES}")
    if b"\n" in data or b"\r" in data or b"\x00" in data:  # unreachable after quote_arg; never trust
        raise AGIArgumentError("line break in command line")
    return data + b"\n"


# MSet (Asterisk's app of that name) takes "name1=value1,name2=value2" and unescapes it its own way (quotes,
# backslashes, and commas inside () or []), then sets each pair as Set() does (a name ending in ")" is a
# function: CALLERID(name), GROUP(x)). Only names and values it takes literally go in: a value may hold
# spaces, "=" and non-ASCII text, never '"', "\\", ",", (), [], "$", {} nor a control character.
_MSET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}(?:\([A-Za-z0-9_@]{1,80}\))?\Z")
_MSET_VALUE = re.compile(r'[^"\\,()\[\]${}\x00-\x1f\x7f]*\Z')
MSET_MAX_PAIRS = 98  # MSet parses 99; the 99th would get the rest of the line unseparated


def mset_pairs(batch: list[tuple[str, str]]) -> str:
    """The argument of ``EXEC MSet`` that sets ``batch``."""
    return ",".join(f"{name}={value}" for name, value in batch)


def mset_batches(items: list[tuple[str, str]]) -> tuple[list[list[tuple[str, str]]], list[tuple[str, str]]]:
    """Split ``items`` into ``EXEC MSet`` batches (in order, each fitting one command line through
    :func:`mset_pairs`) and the items MSet would not set literally (in order), which take one
    ``SET VARIABLE`` each."""
    batches: list[list[tuple[str, str]]] = []
    single: list[tuple[str, str]] = []
    batch: list[tuple[str, str]] = []
    size = 0
    room = MAX_COMMAND_BYTES - len('EXEC MSet ""')  # quoted when a value holds a space
    for name, value in items:
        if not (_MSET_NAME.match(name) and _MSET_VALUE.match(value)):
            single.append((name, value))
            continue
        try:
            length = len(name) + 1 + len(value.encode(ENCODING, ERRORS))
        except UnicodeEncodeError:  # refused by SET VARIABLE, loudly
            single.append((name, value))
            continue
        if batch and (len(batch) == MSET_MAX_PAIRS or size + 1 + length > room):
            batches.append(batch)
            batch, size = [], 0
        if length > room:
            single.append((name, value))
            continue
        batch.append((name, value))
        size += length + (1 if size else 0)
    if batch:
        batches.append(batch)
    return batches, single
