"""The rules of the values that reach Asterisk: each rule once, with the reason for it.

Three places apply them, each in its own way, and none has a grammar of its own:

- write time, ``confdb.validation``: a value that breaks a rule is refused, with the rule's wording;
- generation time, ``confgend.escape`` (defence in depth, for what reached the database some other way):
  free text loses what a rule forbids, and a name or number that breaks its rule is refused, so the object
  it belongs to is left out of the generated file;
- call time, the agid handlers: a dialplan argument that breaks a rule is a bad input.

What Asterisk 20's config parser (main/config.c) treats specially, and so what the rules guard against:

- a line is read with fgets() into an 8 KiB buffer; a longer line is skipped (older versions split it and
  the tail became a line of its own), so a value is bounded (:data:`MAX_VALUE_BYTES`);
- ``\\n`` ends a line; ``\\r``, NUL and other control characters have no business in a value (a NUL ends
  the C string and the rest of the line vanishes);
- ``;`` starts a comment (``;--`` a block comment) unless written ``\\;``, which the parser turns back
  into ``;``;
- a line starting with ``[`` opens a section and one starting with ``#`` is a directive: impossible once a
  value cannot start a new line;
- blanks around a value are stripped by the parser.

Names (sections, contexts, endpoints, queues) and numbers are never escaped, only checked: a name that
could hold ``]``, ``,`` or a blank would be read as something else.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# ------------------------------------------------------------------------------------ error wording

SHOWN_MAX = 60  # characters of an offending value an error message quotes


def shown(value: object) -> str:
    """`value` as an error message quotes it: its repr, cut after SHOWN_MAX characters ("…" marks the cut)."""
    text = repr(value)
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX] + "…"


# ------------------------------------------------------------------------- names and numbers (shapes)


@dataclass(frozen=True, slots=True)
class Rule:
    """A value shape: ``regex`` must match the whole value; ``what`` names a value that matches, as an
    error message says it ("'x y' is not {what}")."""

    regex: re.Pattern[str]
    what: str

    def matches(self, value: object) -> bool:
        return isinstance(value, str) and self.regex.fullmatch(value) is not None


# An Asterisk object name: a section header `[name]`, a context, an endpoint in `PJSIP/name`, a queue in
# `Queue(name,...)`. `]` would close the header, `,` `(` `)` split arguments, `/` `@` split dial strings,
# a blank is stripped or splits: only letters, digits and `_ . -`, not starting with a mark.
IDENTIFIER = Rule(
    re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}"),
    "a name of letters, digits, '_', '.' or '-' (40 at most)",
)

# A number Asterisk can dial (a caller-ID number, a forward target): DTMF digits and an international `+`
# in front. Anything else in a dial string is a separator or an option.
DIALABLE = Rule(
    re.compile(r"\+?[0-9*#]{1,40}"),
    "a dialable number (digits, '*', '#', optional leading '+')",
)

# A literal dialplan extension, a DID as the carrier sends it, or a number a phone dialled: what
# pbx_config reads literally in `exten => NUMBER,...` (a leading `_` would make it a pattern).
LITERAL_EXTENSION = Rule(re.compile(r"[0-9*#+]{1,40}"), "an extension (digits, '*', '#', '+')")

# What may stand in a generated file where an extension or pattern goes: a literal, or `_` and the
# characters of pattern syntax. Coarser than extension_pattern_problem (the writer's grammar): the
# generator only has to be sure that the value cannot break the line, not that it means something.
EXTENSION_SHAPE = Rule(
    re.compile(rf"_[0-9XZNxzn*#+\[\]!.-]{{1,79}}|{LITERAL_EXTENSION.regex.pattern}"),
    "an extension or extension pattern",
)

# Digits only (an agent number, a port): no DTMF mark, no `+`.
DIGITS = Rule(re.compile(r"[0-9]{1,40}"), "digits")

# What an outcall puts in front of the number it dials: a dialable number, possibly empty, 20 at most.
PREFIX = Rule(re.compile(r"\+?[0-9*#]{0,20}"), "digits, '*' or '#' with an optional leading '+'")

# A sound language: the name of a folder of sounds.
LANGUAGE = Rule(re.compile(r"[a-z]{2,3}(?:_[A-Z]{2})?"), "a language code such as en_US or fr_FR")

# A module name in modules.conf (`load = res_pjsip.so`).
MODULE = Rule(re.compile(r"[a-z][a-z0-9_]{0,63}(?:\.so)?"), "a module name")

# A SIP host as the config carries it: name or address characters, or a bracketed IPv6 address, and an
# optional port. The writer checks the real syntax (HOSTNAME, ipaddress).
HOST_SHAPE = Rule(re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"), "a host")
HOSTNAME = Rule(
    re.compile(
        r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)*"
        r"[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
    ),
    "a hostname or IP address",
)

# An address or network in an ACL (`permit = 192.0.2.0/24`), as the config carries it; the writer parses
# it with ipaddress.
CIDR_SHAPE = Rule(re.compile(r"[0-9A-Fa-f:.]{2,45}(?:/[0-9]{1,3})?"), "an address or network")

# A tz database name (`Europe/Paris`); the writer checks that the zone exists.
TIMEZONE_SHAPE = Rule(re.compile(r"[A-Za-z0-9_+-]{1,32}(?:/[A-Za-z0-9_+-]{1,32}){0,3}"), "a time zone")

# A codec name in `allow = ulaw,alaw`: the list is comma-separated.
CODEC_NAME = Rule(re.compile(r"[a-z0-9]{1,16}"), "a codec name")

# A credential is written as is, never escaped (the peer compares it byte for byte): printable ASCII
# without blanks, and none of SECRET_FORBIDDEN, which the config parser would misread.
SECRET = Rule(re.compile(r"[!-~]{1,128}"), "printable ASCII without blanks (128 at most)")
SECRET_FORBIDDEN = ";#\\"


# ------------------------------------------------------------------------------- extension patterns


def extension_pattern_problem(value: str) -> str | None:
    """Why ``value`` (starting with ``_``) is not an extension pattern pbx_config reads as we mean it, or
    None when it is one.

    Patterns use X, Z, N, digits, '*', '#', '+', bracketed sets of digits and ranges, and may end with
    '.' or '!'. Anything else would be misread by pbx_config or inject dialplan syntax.
    """
    body = value[1:]
    if not body:
        return "an extension pattern needs something after '_'"
    i = 0
    while i < len(body):
        ch = body[i]
        if ch in "XZNxzn0123456789*#+":
            i += 1
        elif ch == "[":
            end = body.find("]", i)
            if end < 0:
                return f"{shown(value)}: '[' at position {i + 1} is never closed"
            members = body[i + 1 : end]
            if not members:
                return f"{shown(value)}: empty character set '[]'"
            if not _SET.fullmatch(members):
                return f"{shown(value)}: a set may hold only digits and ranges such as [1-5]"
            i = end + 1
        elif ch in ".!":
            if i != len(body) - 1:
                return f"{shown(value)}: {ch!r} is only allowed at the end of a pattern"
            i += 1
        else:
            return f"{shown(value)}: {ch!r} is not allowed in an extension pattern"
    return None


_SET = re.compile(r"([0-9](-[0-9])?)+")


# ----------------------------------------------------------------------------------------- free text

# A value is bounded: see the module docstring (fgets into 8 KiB, and no value needs more).
MAX_VALUE_BYTES = 512

# Unicode categories that break a config line or a log line: controls (NUL, CR, LF, ESC ...), surrogates
# and the line/paragraph separators. The writer refuses them.
LINE_BREAKING_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def line_breaking(ch: str) -> bool:
    """Whether ``ch`` may break a config or log line (the writer refuses it)."""
    return unicodedata.category(ch) in LINE_BREAKING_CATEGORIES


def printable(value: object) -> str:
    """``value`` as text without what cannot stand in a config line (generation drops it): controls,
    surrogates, unassigned code points and line/paragraph separators; a plain space stays."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch for ch in text if ch.isprintable() or ch == " ")


def bounded(text: str, limit: int = MAX_VALUE_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


# `;` starts a comment in every Asterisk config file; in free text it is written `\;`.
COMMENT = ";"

# A caller-ID name is written `"Name" <number>`: quotes, angle brackets and backslashes change how
# Asterisk splits it.
CALLERID_NAME_FORBIDDEN = '"<>\\'

# voicemail.conf separates a mailbox's fields with commas ('|' was the old separator) and `=` starts the
# value; queue members are comma-separated too: the writer refuses these, generation drops them.
LIST_ITEM_FORBIDDEN = ",|\\="

# An e-mail address in voicemail.conf's comma-separated mailbox line: the list separators, a comment,
# quotes and angle brackets (a display-name form) and `=` have no place in it.
EMAIL_FORBIDDEN = ",|;\"'<>\\="

# Free text that becomes a dialplan application argument (an incall's caller-ID name prefix, in
# `Gosub(pbx-incall,s,1(PREFIX,...))`): Unicode letters and digits, blanks and DIALPLAN_MARKS. Anything
# else may mean something there: `,` `(` `)` split arguments, `$` `[` `]` `{` `}` substitute, `;` starts
# a comment, `#` a directive, quotes and `=` `|` `&` `^` `%` `<` `>` matter to expressions. The writer
# refuses the rest, generation drops it.
DIALPLAN_MARKS = " _.-+:/@!?*"


def dialplan_char(ch: str) -> bool:
    """Whether ``ch`` may stand in dialplan free text (blanks aside: see dialplan_blanks)."""
    return ch in DIALPLAN_MARKS or unicodedata.category(ch)[0] in "LN"


def dialplan_blanks(value: str) -> str:
    """Blanks as dialplan free text keeps them: each run one space, none in front, and one kept at the end
    (`'SUPPORT '` is meant: the caller's name follows it)."""
    collapsed = " ".join(value.split())
    return collapsed + " " if collapsed and value[-1:].isspace() else collapsed
