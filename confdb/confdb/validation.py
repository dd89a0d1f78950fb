"""Write-time validation of every value that may reach Asterisk or a dial string.

Each checker takes the field name (for the error) and the raw value, and returns the normalised value or
raises ValidationError naming the field. Generation escapes again as defence in depth; this module is the
first line: a value Asterisk would misread never enters the database. The Asterisk value rules themselves
(names, numbers, extension patterns, free text) live in confdb.asterisk_values; here they refuse.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable

from confdb import asterisk_values as av
from confdb.asterisk_values import (  # also this module's names for them (validation.shown ...)
    DIALPLAN_MARKS,
    LIST_ITEM_FORBIDDEN,
    Rule,
    dialplan_blanks,
    dialplan_char,
    shown,
)

CODECS = frozenset(
    {
        "ulaw",
        "alaw",
        "g722",
        "g729",
        "gsm",
        "ilbc",
        "opus",
        "speex",
        "g726",
        "slin",
        "h264",
        "h263",
        "vp8",
        "vp9",
    }
)
QUEUE_STRATEGIES = frozenset(
    {"ringall", "leastrecent", "fewestcalls", "random", "rrmemory", "rrordered", "linear", "wrandom"}
)
GROUP_STRATEGIES = frozenset({"ringall", "linear", "rrmemory", "leastrecent", "random"})
SERVICES = frozenset(
    {"voicemail_own", "voicemail_any", "dnd_toggle", "fwd_unconditional", "fwd_cancel", "echo"}
)
DESTINATION_TYPES = frozenset({"user", "group", "queue", "voicemail", "number", "hangup"})

_LOGIN = Rule(
    re.compile(r"[a-z0-9][a-z0-9._\-]{1,63}"), "a login of 2 to 64 lowercase letters, digits, '.', '_' or '-'"
)
_PIN = Rule(re.compile(r"[0-9]{4,16}"), "a PIN of 4 to 16 digits")
_MAC = re.compile(r"[0-9a-f]{12}")
_EMAIL = Rule(re.compile(r"[^@\s,;|\"<>\\]{1,64}@[A-Za-z0-9.\-]{1,189}"), "an e-mail address")
_PHONE_RAW = Rule(re.compile(r"\+?[0-9 ().\-/]{2,40}"), "a phone number")


class ValidationError(ValueError):
    """A value refused at write time. `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def _describe(ch: str) -> str:
    return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'control character')})"


def text(field: str, value: object, *, max_len: int = 128, forbidden: str = "", required: bool = True) -> str:
    """One line of human text: no control characters, bounded length, outer whitespace stripped."""
    if value is None:
        if required:
            raise ValidationError(field, "is required")
        return ""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be text, not {type(value).__name__}")
    for pos, ch in enumerate(value):
        if av.line_breaking(ch):
            raise ValidationError(field, f"contains {_describe(ch)} at position {pos}")
        if ch in forbidden:
            raise ValidationError(field, f"must not contain {ch!r} (position {pos})")
    value = value.strip()
    if required and not value:
        raise ValidationError(field, "must not be empty")
    if len(value) > max_len:
        raise ValidationError(field, f"is {len(value)} characters long, the limit is {max_len}")
    return value


def callerid_name(field: str, value: object) -> str:
    return text(field, value, max_len=80, forbidden=av.CALLERID_NAME_FORBIDDEN)


def voicemail_text(field: str, value: object) -> str:
    return text(field, value, max_len=80, forbidden=LIST_ITEM_FORBIDDEN)


def dialplan_text(field: str, value: object, *, max_len: int) -> str:
    """Free text for a dialplan argument, possibly empty; its blanks as dialplan_blanks leaves them. A
    character outside dialplan_char is refused, not dropped: what is stored is what the dialplan says."""
    if value is None:
        return ""
    text(field, value, max_len=max_len, required=False)  # type and control characters get their message
    assert isinstance(value, str)
    for pos, ch in enumerate(value):
        if not ch.isspace() and not dialplan_char(ch):
            raise ValidationError(
                field,
                f"must not contain {ch!r} (position {pos}): the dialplan would misread it; "
                f"letters, digits, blanks and {' '.join(DIALPLAN_MARKS.strip())} are allowed",
            )
    value = dialplan_blanks(value)
    if len(value) > max_len:
        raise ValidationError(
            field, f"is {len(value)} characters long with its final blank, the limit is {max_len}"
        )
    return value


def _matches(rule: Rule, field: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"must be text ({rule.what}), not {type(value).__name__}")
    text(field, value, max_len=max(len(value), 1))  # control characters get their precise message
    value = value.strip()
    if not rule.regex.fullmatch(value):
        raise ValidationError(field, f"{shown(value)} is not {rule.what}")
    return value


def identifier(field: str, value: object) -> str:
    """An Asterisk object name (endpoint, queue, context): letters, digits, '_', '.', '-'; 40 at most."""
    return _matches(av.IDENTIFIER, field, value)


def dialable(field: str, value: object) -> str:
    """A number Asterisk can dial: digits, '*', '#', optional leading '+'."""
    return _matches(av.DIALABLE, field, value)


def optional_dialable(field: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    return dialable(field, value)


def language(field: str, value: object) -> str:
    return _matches(av.LANGUAGE, field, value)


def cti_login(field: str, value: object) -> str:
    if isinstance(value, str):
        value = value.strip().lower()
    return _matches(_LOGIN, field, value)


def pin(field: str, value: object) -> str:
    return _matches(_PIN, field, value)


def email(field: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    return _matches(_EMAIL, field, value)


def integer(field: str, value: object, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool):
        raise ValidationError(field, "must be an integer, not a boolean")
    if isinstance(value, str):
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise ValidationError(field, f"{shown(value)} is not an integer") from None
    if not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, not {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise ValidationError(field, f"{shown(value)} is out of range [{minimum}, {maximum}]")
    return value


def boolean(field: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on", "y"}:
            return True
        if lowered in {"0", "false", "no", "off", "n", ""}:
            return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValidationError(field, f"{shown(value)} is not a boolean (yes/no, true/false, 1/0)")


def choice(field: str, value: object, allowed: Iterable[str]) -> str:
    allowed = frozenset(allowed)
    if not isinstance(value, str) or value.strip() not in allowed:
        raise ValidationError(field, f"{shown(value)} is not one of {', '.join(sorted(allowed))}")
    return value.strip()


def codecs(field: str, value: object) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValidationError(field, "must be a non-empty list of codecs")
    result: list[str] = []
    for item in items:
        codec = choice(field, item, CODECS) if isinstance(item, str) else choice(field, str(item), CODECS)
        if codec not in result:
            result.append(codec)
    return result


def mac_address(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, "must be text")
    compact = re.sub(r"[:\-.]", "", value.strip().lower())
    if not _MAC.fullmatch(compact):
        raise ValidationError(field, f"{shown(value)} is not a MAC address")
    return ":".join(compact[i : i + 2] for i in range(0, 12, 2))


def host(field: str, value: object) -> str:
    """A SIP host: a hostname, an IPv4 address or a bracketed IPv6 address, with an optional port."""
    if not isinstance(value, str):
        raise ValidationError(field, "must be text")
    text(field, value, max_len=255)
    value = value.strip()
    name, port = value, None
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else (None if not rest else "x")
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            raise ValidationError(field, f"{shown(value)} is not a valid [IPv6] address") from None
    elif value.count(":") == 1:
        name, port = value.split(":")
    if port is not None:
        integer(field, port if port.isdigit() else f"not-a-port:{port}", minimum=1, maximum=65535)
    if not value.startswith("[") and not av.HOSTNAME.regex.fullmatch(name):
        raise ValidationError(field, f"{shown(value)} is not {av.HOSTNAME.what}")
    return value


def networks(field: str, value: object) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValidationError(field, "must be a non-empty list of addresses or networks")
    result = []
    for item in items:
        try:
            result.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError:
            raise ValidationError(field, f"{shown(item)} is not an IP address or network") from None
    return result


def timezone(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, "must be text")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(field, f"{shown(value)} is not a known time zone") from None
    return value


def phone_number(field: str, value: object) -> str:
    """A directory number as people write it: digits with spaces, dots, dashes, slashes, parentheses."""
    value = _matches(_PHONE_RAW, field, value)
    if sum(ch.isdigit() for ch in value) < 2:
        raise ValidationError(field, f"{shown(value)} has fewer than two digits")
    return value


def extension(field: str, value: object) -> str:
    """A dialplan extension: a literal number, or a pattern beginning with '_' (the rules are
    asterisk_values' LITERAL_EXTENSION and extension_pattern_problem)."""
    if not isinstance(value, str):
        raise ValidationError(field, "must be text")
    text(field, value, max_len=80)
    value = value.strip()
    if not value.startswith("_"):
        if not av.LITERAL_EXTENSION.regex.fullmatch(value):
            raise ValidationError(field, f"{shown(value)} is not {av.LITERAL_EXTENSION.what}")
        return value
    problem = av.extension_pattern_problem(value)
    if problem is not None:
        raise ValidationError(field, problem)
    return value
