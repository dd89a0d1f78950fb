"""Every database value goes through here before it reaches a generated Asterisk file.

The values were validated when written (confdb.validation and CHECK constraints); this is defence in depth
against what Asterisk 20's config parser (main/config.c) treats specially:

- a line is read with fgets() into an 8 KiB buffer: a longer line is skipped (older versions split it, and
  the tail became a line of its own) -> values are bounded (`MAX_VALUE_BYTES`);
- `\\n` ends a line; `\\r`, NUL and other control characters have no business in a value -> dropped
  (a NUL would end the C string, the rest of the line would vanish);
- `;` starts a comment (`;--` a block comment) unless written `\\;`, which the parser turns back into
  `;` -> escaped in free text, dropped elsewhere;
- a line starting with `[` opens a section and one starting with `#` is a directive (`#include`,
  `#exec`): impossible once a value can no longer start a new line, and values are stripped;
- blanks around a value are stripped by the parser -> stripped here so that what we mean is what it reads.

Names (sections, contexts, endpoint names) are not escaped but checked: a value that is not a valid
identifier is refused (`Unsafe`), and the generator leaves that object out and says why, instead of
writing something Asterisk would read differently.
"""

from __future__ import annotations

import functools
import re

from confdb import validation

MAX_VALUE_BYTES = 512

_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
_DIGITS = re.compile(r"[0-9]{1,40}")
_DIALABLE = re.compile(r"\+?[0-9*#]{1,40}")
_PREFIX = re.compile(r"\+?[0-9*#]{0,20}")
_MODULE = re.compile(r"[a-z][a-z0-9_]{0,63}(?:\.so)?")
_EXTEN = re.compile(r"_[0-9XZNxzn*#+\[\]!.-]{1,79}|[0-9*#+]{1,40}")
_HOST = re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
_CIDR = re.compile(r"[0-9A-Fa-f:.]{2,45}(?:/[0-9]{1,3})?")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:_[A-Z]{2})?")
_TIMEZONE = re.compile(r"[A-Za-z0-9_+-]{1,32}(?:/[A-Za-z0-9_+-]{1,32}){0,3}")
_CODEC = re.compile(r"[a-z0-9]{1,16}")
_SECRET = re.compile(r"[!-~]{1,128}")  # printable ASCII without blanks


class Unsafe(ValueError):
    """A value cannot be written safely; the object it belongs to is left out."""


def _clean(value: object) -> str:
    """Drop control characters (Cc), surrogates, unassigned and line/paragraph separators."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch for ch in text if ch.isprintable() or ch == " ")


def _bounded(text: str, limit: int = MAX_VALUE_BYTES) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


_PLAIN_TEXT = re.compile(r"[^\x00-\x1f\x7f;\\\"<>,|=\s]+(?: [^\x00-\x1f\x7f;\\\"<>,|=\s]+)*")


def text(value: object, *, drop: str = "") -> str:
    """Free text for the right-hand side of `name = value`: one line, `;` escaped, bounded."""
    if type(value) is str and len(value) <= 128 and _PLAIN_TEXT.fullmatch(value) and value.isprintable():
        return value  # the common case: nothing to drop, escape, collapse or cut
    cleaned = _clean(value)
    if drop:
        cleaned = "".join(ch for ch in cleaned if ch not in drop)
    cleaned = _bounded(" ".join(cleaned.split()))
    return cleaned.replace(";", "\\;").strip()


def callerid_name(value: object) -> str:
    """A display name inside `"..." <number>`: no quote, angle bracket or backslash (they split it)."""
    return text(value, drop='"<>\\')


def list_item(value: object) -> str:
    """Free text inside a comma- or pipe-separated field (voicemail.conf, queue members)."""
    return text(value, drop=validation.LIST_ITEM_FORBIDDEN)


def dialplan_text(value: object, limit: int = 80) -> str:
    """Free text used as a dialplan application argument, at most `limit` characters: the rule is
    confdb.validation's (dialplan_char, dialplan_blanks), so a value the writer accepted comes out as
    stored; any other loses what the writer would have refused. A trailing blank is meant ("Sales: ")."""
    cleaned = "".join(ch for ch in _clean(value) if ch.isspace() or validation.dialplan_char(ch))
    return _bounded(validation.dialplan_blanks(cleaned)[:limit])


def _match(pattern: re.Pattern[str], what: str, value: object) -> str:
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    raise Unsafe(f"{what} {str(value)[:60]!r} is not valid here")


def ident(value: object, what: str = "name") -> str:
    return _match(_IDENT, what, value)


def is_ident(value: object) -> bool:
    return isinstance(value, str) and _IDENT.fullmatch(value) is not None


def digits(value: object, what: str = "number") -> str:
    return _match(_DIGITS, what, value)


def dialable(value: object, what: str = "number") -> str:
    return _match(_DIALABLE, what, value)


def prefix(value: object, what: str = "prefix") -> str:
    return _match(_PREFIX, what, value)


def module(value: object, what: str = "module") -> str:
    return _match(_MODULE, what, value)


def exten(value: object, what: str = "extension") -> str:
    return _match(_EXTEN, what, value)


def host(value: object, what: str = "host") -> str:
    return _match(_HOST, what, value)


def cidr(value: object, what: str = "address") -> str:
    return _match(_CIDR, what, value)


def language(value: object, what: str = "language") -> str:
    return _match(_LANGUAGE, what, value)


def timezone(value: object, what: str = "timezone") -> str:
    return _match(_TIMEZONE, what, value)


def secret(value: object, what: str = "secret") -> str:
    """A credential written as is: printable ASCII, no blank, no `;`, `#` or backslash."""
    value = _match(_SECRET, what, value)
    if any(ch in value for ch in ";#\\"):
        raise Unsafe(f"{what} contains a character the config parser would misread")
    return value


def codecs(values: object) -> str:
    """The valid codec names, comma-separated (invalid ones dropped); Unsafe when none is left."""
    key = tuple(values) if isinstance(values, list | tuple) else values
    try:
        return _codecs(key)  # type: ignore[arg-type]
    except TypeError:  # not hashable: not a list of codec names
        return _codecs(())


@functools.lru_cache(maxsize=256)  # 10,000 lines share a handful of codec lists
def _codecs(values: tuple[object, ...]) -> str:
    items = [c for c in (values or ()) if isinstance(c, str) and _CODEC.fullmatch(c)]
    if not items:
        raise Unsafe("no valid codec")
    return ",".join(items)


_PLAIN_EMAIL = re.compile(r"[^\s,|;\"'<>\\=\x00-\x1f\x7f-\x9f]{1,254}")


def email(value: object) -> str:
    """An address in voicemail.conf's comma-separated mailbox line; empty when unusable."""
    if type(value) is str and value.isascii() and _PLAIN_EMAIL.fullmatch(value):
        return value  # the common case: nothing to drop
    cleaned = "".join(ch for ch in _clean(value) if not ch.isspace() and ch not in ",|;\"'<>\\=")
    return _bounded(cleaned, 254)


@functools.lru_cache(maxsize=16)
def _idents(count: int) -> re.Pattern[str]:
    """`count` names separated by LF, exactly: a value holding an LF cannot pass for two names."""
    return re.compile(rf"{_IDENT.pattern}(?:\n{_IDENT.pattern}){{{count - 1}}}")


def all_idents(*values: object) -> bool:
    """True when every value is a valid name (`ident`): one regex for several, the hot path of a
    generation; on False, check each with `ident` to know which one and why."""
    try:
        return _idents(len(values)).fullmatch("\n".join(values)) is not None  # type: ignore[arg-type]
    except TypeError:  # not all strings
        return False
