"""Write-time validation of every value that may reach Asterisk or a dial string.

Each checker takes the field name (for the error) and the raw value, and returns the normalised value or
raises ValidationError naming the field. Generation escapes again as defence in depth; this module is the
first line: a value Asterisk would misread never enters the database.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable

# Unicode categories that break a config line or a log line: controls (NUL, CR, LF, ESC ...),
# surrogates and the line/paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})

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

_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}")
_DIALABLE = re.compile(r"\+?[0-9*#]{1,40}")
_LITERAL_EXTEN = re.compile(r"[0-9*#+]{1,40}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")
_LOGIN = re.compile(r"[a-z0-9][a-z0-9._\-]{1,63}")
_PIN = re.compile(r"[0-9]{4,16}")
_MAC = re.compile(r"[0-9a-f]{12}")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
)
_EMAIL = re.compile(r"[^@\s,;|\"<>\\]{1,64}@[A-Za-z0-9.\-]{1,189}")
_PHONE_RAW = re.compile(r"\+?[0-9 ().\-/]{2,40}")


class ValidationError(ValueError):
    """A value refused at write time. `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


SHOWN_MAX = 60  # characters of an offending value an error message quotes


def shown(value: object) -> str:
    """`value` as an error message quotes it: its repr, cut after SHOWN_MAX characters ("…" marks the cut)."""
    text = repr(value)
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX] + "…"


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
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES:
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
    # Quotes, angle brackets and backslashes change how Asterisk splits "Name" <number>.
    return text(field, value, max_len=80, forbidden='"<>\\')


# voicemail.conf separates a mailbox's fields with commas ('|' was the old separator) and `=` starts the
# value: confgend's escape.list_item drops these, so the writer refuses them.
LIST_ITEM_FORBIDDEN = ",|\\="


def voicemail_text(field: str, value: object) -> str:
    return text(field, value, max_len=80, forbidden=LIST_ITEM_FORBIDDEN)


# Free text that becomes a dialplan application argument (an incall's caller-ID name prefix, in
# `Gosub(pbx-incall,s,1(PREFIX,...))`): Unicode letters and digits, blanks and DIALPLAN_MARKS. Anything
# else may mean something there: `,` `(` `)` split arguments, `$` `[` `]` `{` `}` substitute, `;` starts
# a comment, `#` a directive, quotes and `=` `|` `&` `^` `%` `<` `>` matter to expressions. This is the
# one definition of the rule: the writer refuses the rest, confgend's escape.dialplan_text drops it.
DIALPLAN_MARKS = " _.-+:/@!?*"


def dialplan_char(ch: str) -> bool:
    """Whether `ch` may stand in dialplan free text (blanks aside: see dialplan_blanks)."""
    return ch in DIALPLAN_MARKS or unicodedata.category(ch)[0] in "LN"


def dialplan_blanks(value: str) -> str:
    """Blanks as dialplan free text keeps them: each run one space, none in front, and one kept at the end
    (`'SUPPORT '` is meant: the caller's name follows it)."""
    collapsed = " ".join(value.split())
    return collapsed + " " if collapsed and value[-1:].isspace() else collapsed


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


def _matches(pattern: re.Pattern[str], field: str, value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"must be text ({what}), not {type(value).__name__}")
    text(field, value, max_len=max(len(value), 1))  # control characters get their precise message
    value = value.strip()
    if not pattern.fullmatch(value):
        raise ValidationError(field, f"{shown(value)} is not {what}")
    return value


def identifier(field: str, value: object) -> str:
    """An Asterisk object name (endpoint, queue, context): letters, digits, '_', '.', '-'; 40 at most."""
    return _matches(_IDENTIFIER, field, value, "a name of letters, digits, '_', '.' or '-' (40 at most)")


def dialable(field: str, value: object) -> str:
    """A number Asterisk can dial: digits, '*', '#', optional leading '+'."""
    return _matches(_DIALABLE, field, value, "a dialable number (digits, '*', '#', optional leading '+')")


def optional_dialable(field: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    return dialable(field, value)


def language(field: str, value: object) -> str:
    return _matches(_LANGUAGE, field, value, "a language code such as en_US or fr_FR")


def cti_login(field: str, value: object) -> str:
    if isinstance(value, str):
        value = value.strip().lower()
    return _matches(_LOGIN, field, value, "a login of 2 to 64 lowercase letters, digits, '.', '_' or '-'")


def pin(field: str, value: object) -> str:
    return _matches(_PIN, field, value, "a PIN of 4 to 16 digits")


def email(field: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    return _matches(_EMAIL, field, value, "an e-mail address")


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
    if not value.startswith("[") and not _HOSTNAME.fullmatch(name):
        raise ValidationError(field, f"{shown(value)} is not a hostname or IP address")
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
    value = _matches(_PHONE_RAW, field, value, "a phone number")
    if sum(ch.isdigit() for ch in value) < 2:
        raise ValidationError(field, f"{shown(value)} has fewer than two digits")
    return value


def extension(field: str, value: object) -> str:
    """A dialplan extension: a literal number, or a pattern beginning with '_'.

    Patterns use X, Z, N, digits, '*', '#', '+', bracketed sets of digits and ranges, and may end with
    '.' or '!'. Anything else would be misread by pbx_config or inject dialplan syntax.
    """
    if not isinstance(value, str):
        raise ValidationError(field, "must be text")
    text(field, value, max_len=80)
    value = value.strip()
    if not value.startswith("_"):
        if not _LITERAL_EXTEN.fullmatch(value):
            raise ValidationError(field, f"{shown(value)} is not an extension (digits, '*', '#', '+')")
        return value
    _check_pattern(field, value)
    return value


def _check_pattern(field: str, value: str) -> None:
    body = value[1:]
    if not body:
        raise ValidationError(field, "an extension pattern needs something after '_'")
    i = 0
    while i < len(body):
        ch = body[i]
        if ch in "XZNxzn0123456789*#+":
            i += 1
        elif ch == "[":
            end = body.find("]", i)
            if end < 0:
                raise ValidationError(field, f"{shown(value)}: '[' at position {i + 1} is never closed")
            _check_set(field, value, body[i + 1 : end])
            i = end + 1
        elif ch in ".!":
            if i != len(body) - 1:
                raise ValidationError(
                    field, f"{shown(value)}: {ch!r} is only allowed at the end of a pattern"
                )
            i += 1
        else:
            raise ValidationError(field, f"{shown(value)}: {ch!r} is not allowed in an extension pattern")


def _check_set(field: str, value: str, members: str) -> None:
    if not members:
        raise ValidationError(field, f"{shown(value)}: empty character set '[]'")
    if not re.fullmatch(r"([0-9](-[0-9])?)+", members):
        raise ValidationError(field, f"{shown(value)}: a set may hold only digits and ranges such as [1-5]")
