"""Every database value goes through here before it reaches a generated Asterisk file.

The values were validated when written (confdb.validation and CHECK constraints); this is defence in depth,
applying the same rules (confdb.asterisk_values, which also says what Asterisk's config parser treats
specially) the other way: free text is made safe (control characters and line breaks dropped, `;`
escaped as `\\;`, blanks collapsed and stripped, length bounded), and what a rule forbids in it is dropped.

Names (sections, contexts, endpoint names) and numbers are not escaped but checked: a value that breaks its
rule is refused (`Unsafe`), and the generator leaves that object out and says why, instead of writing
something Asterisk would read differently.
"""

from __future__ import annotations

import functools
import re

from confdb import asterisk_values as av

MAX_VALUE_BYTES = av.MAX_VALUE_BYTES
_IDENT = av.IDENTIFIER.regex


class Unsafe(ValueError):
    """A value cannot be written safely; the object it belongs to is left out."""


_clean = av.printable
_bounded = av.bounded

# The fast path of `text`: one line of characters that no rule of asterisk_values touches (no control,
# comment, quote, list separator or blank run), short enough to need no cut. Anything else takes the
# general path, which applies the rules.
_PLAIN_TEXT = re.compile(r"[^\x00-\x1f\x7f;\\\"<>,|=\s]+(?: [^\x00-\x1f\x7f;\\\"<>,|=\s]+)*")


def text(value: object, *, drop: str = "") -> str:
    """Free text for the right-hand side of `name = value`: one line, `;` escaped, bounded."""
    if type(value) is str and len(value) <= 128 and _PLAIN_TEXT.fullmatch(value) and value.isprintable():
        return value  # the common case: nothing to drop, escape, collapse or cut
    cleaned = _clean(value)
    if drop:
        cleaned = "".join(ch for ch in cleaned if ch not in drop)
    cleaned = _bounded(" ".join(cleaned.split()))
    return cleaned.replace(av.COMMENT, "\\" + av.COMMENT).strip()


def callerid_name(value: object) -> str:
    """A display name inside `"..." <number>`: no quote, angle bracket or backslash (they split it)."""
    return text(value, drop=av.CALLERID_NAME_FORBIDDEN)


def list_item(value: object) -> str:
    """Free text inside a comma- or pipe-separated field (voicemail.conf, queue members)."""
    return text(value, drop=av.LIST_ITEM_FORBIDDEN)


def dialplan_text(value: object, limit: int = 80) -> str:
    """Free text used as a dialplan application argument, at most `limit` characters: the rule is
    confdb.asterisk_values' (dialplan_char, dialplan_blanks), the writer's too, so a value the writer
    accepted comes out as stored; any other loses what the writer would have refused. A trailing blank is
    meant ("Sales: ")."""
    cleaned = "".join(ch for ch in _clean(value) if ch.isspace() or av.dialplan_char(ch))
    return _bounded(av.dialplan_blanks(cleaned)[:limit])


def _match(pattern: re.Pattern[str], what: str, value: object) -> str:
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    raise Unsafe(f"{what} {str(value)[:60]!r} is not valid here")


def ident(value: object, what: str = "name") -> str:
    return _match(_IDENT, what, value)


def is_ident(value: object) -> bool:
    return isinstance(value, str) and _IDENT.fullmatch(value) is not None


def digits(value: object, what: str = "number") -> str:
    return _match(av.DIGITS.regex, what, value)


def dialable(value: object, what: str = "number") -> str:
    return _match(av.DIALABLE.regex, what, value)


def prefix(value: object, what: str = "prefix") -> str:
    return _match(av.PREFIX.regex, what, value)


def module(value: object, what: str = "module") -> str:
    return _match(av.MODULE.regex, what, value)


def exten(value: object, what: str = "extension") -> str:
    return _match(av.EXTENSION_SHAPE.regex, what, value)


def host(value: object, what: str = "host") -> str:
    return _match(av.HOST_SHAPE.regex, what, value)


def cidr(value: object, what: str = "address") -> str:
    return _match(av.CIDR_SHAPE.regex, what, value)


def language(value: object, what: str = "language") -> str:
    return _match(av.LANGUAGE.regex, what, value)


def timezone(value: object, what: str = "timezone") -> str:
    return _match(av.TIMEZONE_SHAPE.regex, what, value)


def secret(value: object, what: str = "secret") -> str:
    """A credential written as is: printable ASCII, no blank, no `;`, `#` or backslash."""
    value = _match(av.SECRET.regex, what, value)
    if any(ch in value for ch in av.SECRET_FORBIDDEN):
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
    items = [c for c in (values or ()) if isinstance(c, str) and av.CODEC_NAME.regex.fullmatch(c)]
    if not items:
        raise Unsafe("no valid codec")
    return ",".join(items)


_PLAIN_EMAIL = re.compile(r"[^\s,|;\"'<>\\=\x00-\x1f\x7f-\x9f]{1,254}")


def email(value: object) -> str:
    """An address in voicemail.conf's comma-separated mailbox line; empty when unusable."""
    if type(value) is str and value.isascii() and _PLAIN_EMAIL.fullmatch(value):
        return value  # the common case: nothing to drop
    cleaned = "".join(ch for ch in _clean(value) if not ch.isspace() and ch not in av.EMAIL_FORBIDDEN)
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
