"""Incremental, bounded AMI parser: bytes in, messages (plain dicts) out. Pure: no I/O, no Twisted.

Wire format (Asterisk 20, AMI 9.0.0): one banner line ``Asterisk Call Manager/9.0.0`` CRLF with no empty line
after it, then messages of ``Name: value`` CRLF lines, each message ended by an empty line. A value may be
empty or contain ``": "``; the name is what precedes the first ``": "``. A line ``Name:value`` (no space) is
accepted like Asterisk does; a line without any colon is ignored and reported.

Speed: each read is decoded once and cut into messages with one ``str.split`` on CRLF CRLF; each message is
built by a single ``dict(map(str.split, lines, ...))`` call; a slower exact path handles repeated headers
and odd lines.

Bounds: a message longer than ``max_message_bytes`` or with more than ``max_headers`` lines is dropped and
reported; while an over-long message is still arriving only its last 3 bytes are kept, then parsing resumes
after its end (the next CRLF CRLF). The result never depends on how the bytes were split into chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from typing import Final, Literal

from ctid.ami.message import MULTI_SEPARATOR, Message

SEPARATOR: Final = b"\r\n\r\n"
BANNER_PREFIX: Final = "Asterisk Call Manager/"
MAX_BANNER_BYTES: Final = 256
DEFAULT_MAX_MESSAGE_BYTES: Final = 1 << 20
DEFAULT_MAX_HEADERS: Final = 16384

ErrorKind = Literal["banner-too-long", "oversize", "too-many-headers", "malformed-line", "garbage"]

_COLON_SPACE = repeat(": ")
_ONE = repeat(1)
_SAMPLE = 80


class AMIParseError(Exception):
    """A bounded, recoverable parse problem; `kind` says which, `sample` shows the start of the bytes."""

    def __init__(self, kind: ErrorKind, detail: str, sample: bytes = b"") -> None:
        super().__init__(f"{kind}: {detail}" + (f" (starts {sample[:_SAMPLE]!r})" if sample else ""))
        self.kind: ErrorKind = kind
        self.detail = detail
        self.sample = sample[:_SAMPLE]


class AMIParser:
    """Feed bytes as they arrive; get back the complete messages they finish.

    ``expect_banner`` (client side): the first line is the banner, stored in `banner`. A first line longer
    than `MAX_BANNER_BYTES` is reported and the stream is parsed as messages from its first byte.
    Problems go to ``on_error`` (if given) and are counted in `errors`; `feed` itself never raises.
    """

    __slots__ = (
        "_buf",
        "_discarding",
        "_expect_banner",
        "_limit",
        "_max_bytes",
        "_max_headers",
        "_on_error",
        "_tail",
        "banner",
        "errors",
    )

    def __init__(
        self,
        *,
        expect_banner: bool = True,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_headers: int = DEFAULT_MAX_HEADERS,
        on_error: Callable[[AMIParseError], object] | None = None,
    ) -> None:
        if max_message_bytes < 16 or max_headers < 1:
            raise ValueError("max_message_bytes must be >= 16 and max_headers >= 1")
        self._max_bytes = max_message_bytes
        # An incomplete message longer than this cannot end within max_message_bytes (3 = len(CRLF CR)).
        self._limit = max_message_bytes + 3
        self._max_headers = max_headers
        self._on_error = on_error
        self._expect_banner = expect_banner
        self._buf = b""
        self._discarding = False
        self._tail = b""
        self.banner: str | None = None
        self.errors = 0

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message (at most ``max_message_bytes + 3``)."""
        return len(self._buf) + len(self._tail)

    def feed(self, data: bytes) -> list[Message]:
        """Consume ``data``; return the messages it completes, in order."""
        if self._discarding:
            data = self._skip(data)
            if not data:
                return []
        buf = self._buf + data if self._buf else data
        if self._expect_banner:
            rest = self._take_banner(buf)
            if rest is None:
                return []
            buf = rest
        # One decode for the whole read (CRLF never occurs inside a UTF-8 sequence or an escaped byte), then
        # split left to right as on the whole stream: in "A\r\n\r\n\r\n" the message is "A".
        chunks = buf.decode("utf-8", "surrogateescape").split("\r\n\r\n")
        tail = chunks.pop()
        tail_bytes = tail.encode("utf-8", "surrogateescape") if tail else b""
        overflow = len(tail_bytes) > self._limit
        if overflow:
            self._buf = b""
            self._tail = tail_bytes[-3:]
            self._discarding = True
        else:
            self._buf = tail_bytes
        messages = self._parse(chunks) if chunks else []
        if overflow:
            self._error(
                "oversize", f"message longer than {self._max_bytes} bytes, skipped to its end", tail_bytes
            )
        return messages

    def _skip(self, data: bytes) -> bytes:
        """Discard an over-long message up to its end; return what follows it (empty if not there yet)."""
        buf = self._tail + data
        end = buf.find(SEPARATOR)
        if end < 0:
            self._tail = buf[-3:]
            return b""
        self._discarding = False
        self._tail = b""
        return buf[end + 4 :]

    def _take_banner(self, buf: bytes) -> bytes | None:
        end = buf.find(b"\r\n")
        if end < 0 and len(buf) <= MAX_BANNER_BYTES + 1:
            self._buf = buf
            return None
        self._expect_banner = False
        if 0 <= end <= MAX_BANNER_BYTES:
            self.banner = buf[:end].decode("utf-8", "surrogateescape")
            return buf[end + 2 :]
        self._error("banner-too-long", f"no banner line within {MAX_BANNER_BYTES} bytes", buf)
        return buf

    def _parse(self, chunks: list[str]) -> list[Message]:
        out: list[Message] = []
        append = out.append
        split = str.split
        max_bytes = self._max_bytes
        max_chars = max_bytes // 4  # up to here a message cannot exceed max_bytes once encoded
        max_headers = self._max_headers
        for raw in chunks:
            if not raw:
                continue
            if len(raw) > max_chars and len(raw.encode("utf-8", "surrogateescape")) > max_bytes:
                self._error("oversize", f"message longer than {max_bytes} bytes, skipped", _sample(raw))
                continue
            lines = raw.split("\r\n")
            if len(lines) > max_headers:
                self._error(
                    "too-many-headers", f"message with more than {max_headers} lines, skipped", _sample(raw)
                )
                continue
            try:
                msg = dict(map(split, lines, _COLON_SPACE, _ONE))
            except ValueError:  # a line without ": " (or an empty line)
                msg = self._parse_slow(lines, raw)
                if msg is None:
                    continue
            else:
                if len(msg) != len(lines):  # a repeated header
                    msg = self._parse_slow(lines, raw)
            append(msg)
        return out

    def _parse_slow(self, lines: list[str], raw: str) -> Message | None:
        msg: Message = {}
        bad = 0
        for line in lines:
            if not line:
                continue
            name, sep, value = line.partition(": ")
            if not sep:
                name, sep, value = line.partition(":")
                if not sep:
                    bad += 1
                    continue
            old = msg.get(name)
            msg[name] = value if old is None else old + MULTI_SEPARATOR + value
        if not msg:
            if bad:
                self._error("garbage", "message without any 'Name: value' line, skipped", _sample(raw))
            return None
        if bad:
            self._error("malformed-line", f"ignored {bad} line(s) without a colon", _sample(raw))
        return msg

    def _error(self, kind: ErrorKind, detail: str, sample: bytes) -> None:
        self.errors += 1
        if self._on_error is not None:
            self._on_error(AMIParseError(kind, detail, sample))


def _sample(text: str) -> bytes:
    return text[:_SAMPLE].encode("utf-8", "surrogateescape")
