"""Phone number normalisation for reverse lookup: the one function the writer and agid share.

The phonebook stores, next to each number as people wrote it, ``normalize(number, country=C)``; agid looks
up ``normalize(caller_id, country=C)``. Both must use the same country C (pbx-admin's
``directory.country``, agid's own setting) and this same code, so the rules below are deterministic and
depend only on the input string and the country.

Result: E.164 digits without '+' when the number can be read as one, else the bare digits:

1. A number containing '*' or '#' is a service code, not a phone number: its [0-9*#] characters, unchanged.
2. A leading '+' or the country's international prefix ('00', '011' in North America) starts an E.164
   number: its digits. A trunk prefix written after a known calling code is dropped
   ('+44 (0)20 7946 0958' and '+330123456789' are read as '442079460958' and '33123456789'). Fewer than 7
   or more than 15 digits is not E.164: bare digits. A '+' before a '0' is taken as a typo and ignored.
3. The national trunk prefix ('0' in most of Europe, '1' in North America) starts a national number:
   calling code + the rest ('01 23 45 67 89' in FR gives '33123456789').
4. In countries that dial national numbers without a trunk prefix, a number of the national shape gets the
   calling code: '(555) 123-4567' in US gives '15551234567', '912 345 678' in ES gives '34912345678'.
5. Anything else (extensions, short numbers, foreign numbers without prefix): the bare digits.

Guarantees (tested with hypothesis): every formatting of one number gives one value, and the result is a
fixed point: ``normalize(normalize(x, country=C), country=C) == normalize(x, country=C)``. For the
countries whose national numbers always carry a trunk prefix (FR, BE, CH, DE, GB, NL, ...) this holds for
every input. In the others (US, CA, ES, IT, PT) a foreign number written without '+' or international
prefix is indistinguishable from a national one and is read as national; such a foreign number given
with '+' normalises to E.164 digits that a second pass would read as national. Lookups are unaffected as
long as both sides normalise the raw strings, as the writer and agid do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

DEFAULT_COUNTRY = "FR"
_DIGITS = frozenset("0123456789")
_SERVICE = frozenset("*#")
E164_MIN, E164_MAX = 7, 15
NATIONAL_MIN = 4  # digits after a trunk prefix for the number to count as national


@dataclass(frozen=True)
class Country:
    """Dialling rules of a country. ``national_pattern``: the shape of a national number dialled without
    trunk prefix (only where that is how people write them); it must never match calling code + number."""

    code: str
    calling_code: str
    international_prefix: str
    national_prefix: str
    national_pattern: str = ""

    def __post_init__(self) -> None:
        for name in ("calling_code", "international_prefix", "national_prefix"):
            value = getattr(self, name)
            if not set(value) <= _DIGITS:
                raise ValueError(f"{self.code}: {name} {value!r} must be digits")
        if not self.calling_code or not self.international_prefix:
            raise ValueError(f"{self.code}: calling code and international prefix are required")


_NANP = r"[2-9][0-9]{9}"  # area code (2-9) + 7 digits; the trunk prefix '1' is optional
COUNTRIES: dict[str, Country] = {
    c.code: c
    for c in (
        Country("FR", "33", "00", "0"),
        Country("BE", "32", "00", "0"),
        Country("CH", "41", "00", "0"),
        Country("DE", "49", "00", "0"),
        Country("AT", "43", "00", "0"),
        Country("GB", "44", "00", "0"),
        Country("IE", "353", "00", "0"),
        Country("NL", "31", "00", "0"),
        Country("SE", "46", "00", "0"),
        Country("US", "1", "011", "1", _NANP),
        Country("CA", "1", "011", "1", _NANP),
        # No trunk prefix: the leading 0 of Italian landlines is part of the number. Mobiles start with 3;
        # '390' is excluded so that 39 + a short landline is never read again as a mobile.
        Country("IT", "39", "00", "", r"0[1-9][0-9]{4,9}|3(?!90)[0-9]{8,9}"),
        Country("ES", "34", "00", "", r"[6-9][0-9]{8}"),
        Country("PT", "351", "00", "", r"[29][0-9]{8}"),
    )
}

# Calling code -> trunk prefix that people wrongly keep after it ("+33 (0)1 ..."). Calling codes form a
# prefix-free set, so at most one matches a given number.
_TRUNK_AFTER_CODE: dict[str, str] = {
    c.calling_code: c.national_prefix for c in COUNTRIES.values() if c.national_prefix
}


def country_rules(
    country: str | Country, *, international_prefix: str | None = None, national_prefix: str | None = None
) -> Country:
    """The rules of ``country`` (an ISO code of COUNTRIES or a Country), with optional overrides."""
    if isinstance(country, str):
        rules = COUNTRIES.get(country.strip().upper())
        if rules is None:
            raise ValueError(f"unknown country {country!r}; known: {', '.join(sorted(COUNTRIES))}")
    else:
        rules = country
    if international_prefix is not None or national_prefix is not None:
        rules = replace(
            rules,
            international_prefix=rules.international_prefix
            if international_prefix is None
            else international_prefix,
            national_prefix=rules.national_prefix if national_prefix is None else national_prefix,
        )
    return rules


def _e164(digits: str) -> str | None:
    """``digits`` after '+' or an international prefix, as E.164, or None if it cannot be one."""
    if not digits or digits[0] == "0":
        return None
    for length in (1, 2, 3):
        trunk = _TRUNK_AFTER_CODE.get(digits[:length])
        if trunk and digits[length:].startswith(trunk):
            digits = digits[:length] + digits[length + len(trunk) :]
            break
    return digits if E164_MIN <= len(digits) <= E164_MAX else None


def normalize(
    raw: str,
    *,
    country: str | Country = DEFAULT_COUNTRY,
    international_prefix: str | None = None,
    national_prefix: str | None = None,
) -> str:
    """E.164 digits without '+' when possible, else the bare digits (see the module documentation)."""
    rules = country_rules(country, international_prefix=international_prefix, national_prefix=national_prefix)
    text = raw.strip()
    if any(ch in _SERVICE for ch in text):
        return "".join(ch for ch in text if ch in _DIGITS or ch in _SERVICE)
    digits = "".join(ch for ch in text if ch in _DIGITS)
    if text.startswith("+") and (found := _e164(digits)) is not None:
        return found
    if len(digits) < 2:
        return digits
    intl = rules.international_prefix
    if digits.startswith(intl):
        found = _e164(digits[len(intl) :])
        return digits if found is None else found
    trunk = rules.national_prefix
    if trunk and digits.startswith(trunk):
        national = digits[len(trunk) :]
        if len(national) >= NATIONAL_MIN and len(rules.calling_code) + len(national) <= E164_MAX:
            return rules.calling_code + national
        return digits
    if rules.national_pattern and re.fullmatch(rules.national_pattern, digits):
        return rules.calling_code + digits
    return digits
