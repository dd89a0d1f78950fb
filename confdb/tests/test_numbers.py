"""Phone number normalisation: examples, and hypothesis properties (one value per number, fixed point)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confdb import numbers
from confdb.numbers import COUNTRIES, normalize

# Countries whose national numbers always carry a trunk prefix: normalize is a fixed point for any input.
CLOSED = sorted(code for code, c in COUNTRIES.items() if c.national_prefix and not c.national_pattern)

# A national significant number (without trunk prefix) of each country, as regular expressions.
NSN = {
    "FR": r"[1-9][0-9]{8}",
    "BE": r"[1-35-9][0-9]{7}|4[5-9][0-9]{7}",
    "CH": r"[1-9][0-9]{8}",
    "DE": r"[1-9][0-9]{5,10}",
    "AT": r"[1-9][0-9]{6,10}",
    "GB": r"[1-9][0-9]{9}",
    "IE": r"[1-9][0-9]{6,8}",
    "NL": r"[1-9][0-9]{8}",
    "SE": r"[1-9][0-9]{6,8}",
    "US": r"[2-9][0-9]{9}",
    "CA": r"[2-9][0-9]{9}",
    "IT": r"0[1-9][0-9]{4,9}|3[1-8][0-9]{7,8}",
    "ES": r"[6-9][0-9]{8}",
    "PT": r"[29][0-9]{8}",
}


def test_every_country_has_a_generator() -> None:
    assert set(NSN) == set(COUNTRIES)


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+33 1 23 45 67 89", "FR", "33123456789"),
        ("0033123456789", "FR", "33123456789"),
        ("01 23 45 67 89", "FR", "33123456789"),
        ("01.23.45.67.89", "fr", "33123456789"),
        ("+33 (0)1 23 45 67 89", "FR", "33123456789"),
        ("33123456789", "FR", "33123456789"),
        ("(555) 123-4567", "US", "15551234567"),
        ("1-555-123-4567", "US", "15551234567"),
        ("+1 555 123 4567", "FR", "15551234567"),
        ("011 44 20 7946 0958", "US", "442079460958"),
        ("+44 (0)20 7946 0958", "DE", "442079460958"),
        ("020 7946 0958", "GB", "442079460958"),
        ("06 1234 5678", "IT", "390612345678"),
        ("333 123 4567", "IT", "393331234567"),
        ("912 345 678", "ES", "34912345678"),
        ("0049 30 1234567", "FR", "49301234567"),
        ("+0123456789", "FR", "33123456789"),  # a stray '+' before a national number
        ("1001", "FR", "1001"),  # an extension stays what it is
        ("1001", "US", "1001"),
        ("+12", "FR", "12"),  # too short for E.164: bare digits
        ("*31", "FR", "*31"),
        ("anonymous", "FR", ""),
    ],
)
def test_examples(raw: str, country: str, expected: str) -> None:
    assert normalize(raw, country=country) == expected


def test_overrides_and_custom_country() -> None:
    assert normalize("9 1 23 45 67 89", country="FR", national_prefix="9") == "33123456789"
    assert normalize("01 23 45 67 89", country="FR", national_prefix="") == "0123456789"
    assert normalize("000 33 1 23 45 67 89", country="FR", international_prefix="000") == "33123456789"
    island = numbers.Country("XX", "999", "00", "0")
    assert normalize("0 1234 567", country=island) == "9991234567"
    with pytest.raises(ValueError, match="unknown country"):
        normalize("0123", country="ZZ")
    with pytest.raises(ValueError, match="digits"):
        numbers.Country("XX", "9a", "00", "0")


def _group(digits: str, cuts: list[int], seps: list[str]) -> str:
    """Insert separators at the given cut points: one way people write a number."""
    out, last = [], 0
    for cut, sep in zip(sorted(set(c % max(len(digits), 1) for c in cuts)), seps, strict=False):
        if cut > last:
            out += [digits[last:cut], sep]
            last = cut
    out.append(digits[last:])
    return "".join(out)


@st.composite
def formatted_numbers(draw: st.DrawFn) -> tuple[str, str, list[str]]:
    """A country, the expected E.164 digits of one of its numbers, and ways of writing that number."""
    code = draw(st.sampled_from(sorted(COUNTRIES)))
    rules = COUNTRIES[code]
    nsn = draw(st.from_regex(NSN[code], fullmatch=True))
    cuts = draw(st.lists(st.integers(0, 15), max_size=5))
    seps = draw(st.lists(st.sampled_from([" ", ".", "-", "/", " - "]), min_size=5, max_size=5))
    national = rules.national_prefix + nsn
    written = [
        national,
        _group(national, cuts, seps),
        f"+{rules.calling_code} {_group(nsn, cuts, seps)}",
        f"+{rules.calling_code}{nsn}",
        f"{rules.international_prefix} {rules.calling_code} {_group(nsn, cuts, seps)}",
        rules.calling_code + nsn,
        f"  {national}  ",
    ]
    if rules.national_prefix:
        written.append(f"+{rules.calling_code} ({rules.national_prefix}){nsn}")
    if len(national) >= 4:
        written.append(f"({national[:3]}) {national[3:]}")
    return code, rules.calling_code + nsn, written


@settings(max_examples=400)
@given(formatted_numbers())
def test_all_formattings_of_a_number_give_one_value(case: tuple[str, str, list[str]]) -> None:
    country, expected, written = case
    for raw in written:
        assert normalize(raw, country=country) == expected, raw
    assert normalize(expected, country=country) == expected


@settings(max_examples=300)
@given(st.sampled_from(CLOSED), formatted_numbers())
def test_foreign_numbers_with_international_prefix_are_e164(
    country: str, case: tuple[str, str, list[str]]
) -> None:
    _, expected, written = case
    rules = COUNTRIES[country]
    assert normalize(written[2], country=country) == expected
    assert normalize(f"{rules.international_prefix}{expected}", country=country) == expected


@settings(max_examples=1000)
@given(st.sampled_from(CLOSED), st.text(alphabet="0123456789 +-./()*#", max_size=24))
def test_fixed_point_for_any_input_in_trunk_prefix_countries(country: str, raw: str) -> None:
    once = normalize(raw, country=country)
    assert normalize(once, country=country) == once
    assert set(once) <= set("0123456789*#")


@settings(max_examples=500)
@given(st.sampled_from(sorted(COUNTRIES)), st.text(alphabet="0123456789 -.", max_size=20))
def test_fixed_point_for_numbers_without_plus_in_every_country(country: str, raw: str) -> None:
    once = normalize(raw, country=country)
    digits = "".join(ch for ch in raw if ch.isdigit())
    if not digits.startswith(COUNTRIES[country].international_prefix):
        assert normalize(once, country=country) == once


@given(st.text(max_size=40), st.sampled_from(sorted(COUNTRIES)))
def test_never_fails_and_fits_the_schema(raw: str, country: str) -> None:
    once = normalize(raw, country=country)
    assert set(once) <= set("0123456789*#")
    assert len(once) <= max(len(raw), numbers.E164_MAX) + 3
