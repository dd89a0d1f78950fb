"""AMI messages as plain dicts, their classification and their encoding.

A message is a ``dict[str, str]`` of header name to value, in wire order, names exactly as sent (Asterisk 20
spells them consistently, e.g. ``ActionID``). A header that occurs more than once (``Output`` lines of a
``Command`` response, ``ChanVariable``, ``Variable``) maps to its values joined with ``"\\n"``; `values`
splits them again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

Message = dict[str, str]
"""One AMI message: header name -> value."""

HeaderValue = str | Sequence[str]
"""A header value to encode: a string, or a sequence of strings for a repeated header."""

Kind = Literal["event", "response", "action", "unknown"]

MULTI_SEPARATOR = "\n"


class AMIEncodeError(ValueError):
    """A header name or value cannot be written to AMI (it would break or inject into the framing)."""


def kind(msg: Message) -> Kind:
    """Classify by the header that names the message, never by mere presence of ``Response``.

    ``Event: OriginateResponse`` also carries ``Response: Success``: an ``Event`` header wins.
    """
    if "Event" in msg:
        return "event"
    if "Response" in msg:
        return "response"
    if "Action" in msg:
        return "action"
    return "unknown"


def values(msg: Message, name: str) -> list[str]:
    """All values of a possibly repeated header, in wire order (``[]`` when absent)."""
    value = msg.get(name)
    if value is None:
        return []
    return value.split(MULTI_SEPARATOR)


def command_output(msg: Message) -> str:
    """The text of a ``Command`` action response (Asterisk 20: one ``Output:`` header per line)."""
    return msg.get("Output", "")


def _check_name(name: str) -> None:
    if not name or name != name.strip() or any(c in name for c in ":\r\n\x00"):
        raise AMIEncodeError(f"invalid AMI header name {name!r}")


def _check_value(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise AMIEncodeError(f"AMI header {name!r}: value must be str, not {type(value).__name__}")
    if "\r" in value or "\n" in value or "\x00" in value:
        raise AMIEncodeError(f"AMI header {name!r}: value contains CR, LF or NUL: {value[:60]!r}")


def encode_message(headers: Mapping[str, HeaderValue] | Iterable[tuple[str, HeaderValue]]) -> bytes:
    """Encode headers as one AMI message (``Name: value`` CRLF lines, then an empty line).

    A value that is a list or tuple repeats the header once per item. Names and values are validated so
    that no value can end the message or inject a header, and every one can be written; `AMIEncodeError`
    otherwise.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    lines: list[str] = []
    for name, value in items:
        _check_name(name)
        if isinstance(value, str):
            _check_value(name, value)
            lines.append(f"{name}: {value}\r\n")
        elif isinstance(value, list | tuple):
            for item in value:
                _check_value(name, item)
                lines.append(f"{name}: {item}\r\n")
        else:
            raise AMIEncodeError(
                f"AMI header {name!r}: value must be str or a list of str, not {type(value).__name__}"
            )
    if not lines:
        raise AMIEncodeError("an AMI message needs at least one header")
    lines.append("\r\n")
    text = "".join(lines)
    try:
        # U+DC80..U+DCFF are the bytes the parser kept from Asterisk (not UTF-8): they go back unchanged.
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:  # any other surrogate is no text at all
        name = text[: exc.start].rsplit("\r\n", 1)[-1].split(":", 1)[0]
        raise AMIEncodeError(f"AMI header {name!r}: holds a lone surrogate, which is not text") from None
