"""CTI messages as the proxies see them: decoding, field stripping, filtering and display.

A CTI message is one line of UTF-8 JSON holding an object with a ``"class"`` field. Lines that are not
(invalid UTF-8, invalid JSON, JSON that is not an object, or lines over the size bound) are kept as
*undecodable* messages with the reason: the proxies show them, marked, and forward them like the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .framing import Frame

# Labels used in place of a class when a message has none (statistics, display).
NO_CLASS = "(no class)"
UNDECODABLE = "(undecodable)"
TOO_LARGE = "(too large)"
INCOMPLETE = "(incomplete)"


@dataclass(frozen=True)
class CtiMessage:
    """One framed line, decoded when possible.

    ``fields`` is the decoded JSON object, or None when the line is undecodable, in which case ``error``
    says why. ``frame`` is the line as framed (its ``data`` may be only the head of an oversized line).
    """

    frame: Frame
    fields: dict[str, Any] | None = None
    error: str | None = None

    @property
    def size(self) -> int:
        return self.frame.size

    @property
    def decoded(self) -> bool:
        return self.fields is not None

    @property
    def label(self) -> str:
        """The message class, or a parenthesised label saying why there is none."""
        if self.fields is not None:
            value = self.fields.get("class")
            return value if isinstance(value, str) else NO_CLASS
        if self.frame.oversized:
            return TOO_LARGE
        if not self.frame.complete:
            return INCOMPLETE
        return UNDECODABLE


def is_blank(frame: Frame) -> bool:
    """True for an empty (or whitespace-only) complete line: not a message."""
    return frame.complete and not frame.oversized and not frame.data.strip()


def decode(frame: Frame, max_line: int | None = None) -> CtiMessage:
    """Decode a framed line into a :class:`CtiMessage`; never raises."""
    if frame.oversized:
        limit = f" (limit {max_line} bytes)" if max_line else ""
        return CtiMessage(frame, error=f"message of {frame.size} bytes is too large to decode{limit}")
    if not frame.complete:
        return CtiMessage(
            frame, error=f"incomplete message at end of stream ({frame.size} bytes, no newline)"
        )
    try:
        text = frame.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return CtiMessage(frame, error=f"invalid UTF-8 at byte {exc.start}")
    try:
        value = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError, or an integer too long to convert
        return CtiMessage(frame, error=f"invalid JSON: {_short_reason(exc)}")
    except RecursionError:
        return CtiMessage(frame, error="invalid JSON: nested too deeply")
    if not isinstance(value, dict):
        return CtiMessage(frame, error=f"JSON {type(value).__name__} where an object was expected")
    return CtiMessage(frame, fields=value)


def _short_reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc).split(";")[0]


def parse_include(spec: str) -> tuple[str, str]:
    """Parse a ``KEY=VALUE`` filter; raise ValueError when there is no ``=`` or no key."""
    key, sep, value = spec.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {spec!r}")
    return key, value


@dataclass(frozen=True)
class MessageFilter:
    """Which messages to show, and which fields to remove from them.

    ``include`` maps a key to the accepted values: a message matches when, for every key, its value is
    one of the values given for that key. Values compare as text: a string field compares as is, any other
    JSON value compares as its JSON text (``true``, ``3``, ``null``). Filters are evaluated before fields
    are stripped. Undecodable messages never match an ``include`` filter.
    """

    strip: frozenset[str] = frozenset()
    include: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_options(
        cls, strip: Iterable[str] = (), include: Iterable[tuple[str, str]] = ()
    ) -> MessageFilter:
        wanted: dict[str, set[str]] = {}
        for key, value in include:
            wanted.setdefault(key, set()).add(value)
        return cls(strip=frozenset(strip), include={k: frozenset(v) for k, v in wanted.items()})

    def matches(self, message: CtiMessage) -> bool:
        if not self.include:
            return True
        if message.fields is None:
            return False
        for key, values in self.include.items():
            if key not in message.fields or _as_text(message.fields[key]) not in values:
                return False
        return True

    def stripped(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in fields.items() if k not in self.strip}


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# Characters that must not reach a terminal raw: controls (DEL, C1; C0 below), format characters (bidi
# overrides, invisible characters...), line and paragraph separators, lone surrogates.
_UNSAFE_RANGES = (
    "\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff"
)
_UNSAFE_ASTRAL = "[\U000110bd\U000110cd\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001-\U000e007f]"
_UNSAFE_IN_JSON = re.compile(f"[{_UNSAFE_RANGES}]|{_UNSAFE_ASTRAL}")  # json.dumps escapes C0 itself
_UNSAFE_TEXT = re.compile(f"[\x00-\x1f{_UNSAFE_RANGES}]|{_UNSAFE_ASTRAL}")


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def to_json(fields: Mapping[str, Any], pretty: bool = False) -> str:
    """Serialise fields for display or saving: key order kept, printable non-ASCII text kept, one line
    unless pretty. Control and format characters are written as JSON escapes, so the text is safe on a
    terminal and still parses to the same fields."""
    if pretty:
        text = json.dumps(fields, ensure_ascii=False, indent=2)
    else:
        text = json.dumps(fields, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(_json_escape, text)


def safe_text(text: str) -> str:
    """``text`` with control and format characters shown as ``\\xNN`` or ``\\uNNNN``."""
    return _UNSAFE_TEXT.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )


def to_bytes(text: str) -> bytes:
    """UTF-8 for output; lone surrogates (legal in JSON escapes) become backslash escapes."""
    return text.encode("utf-8", "backslashreplace")


_ESCAPES = {0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def escape_bytes(data: bytes) -> str:
    r"""Show bytes safely on a terminal: printable ASCII as is, the rest as \n, \r, \t, \\ or \xNN."""
    out = []
    for byte in data:
        if byte in _ESCAPES:
            out.append(_ESCAPES[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)
