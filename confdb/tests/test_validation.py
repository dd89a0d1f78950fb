"""Write-time validation: what Asterisk would misread is refused, with the field named."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confdb import validation
from confdb.validation import ValidationError

CONTROL = [chr(c) for c in range(0x20)] + ["\x7f", "\u2028", "\u2029"]


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b", "tab\there", "esc\x1b[0m", "line\u2028sep"])
def test_text_refuses_control_characters_naming_field_and_position(bad: str) -> None:
    with pytest.raises(ValidationError) as err:
        validation.text("user.firstname", bad)
    assert err.value.field == "user.firstname"
    assert "user.firstname" in str(err.value)
    assert "position" in str(err.value)


def test_text_refuses_over_long_and_empty() -> None:
    with pytest.raises(ValidationError, match="limit is 128"):
        validation.text("user.lastname", "x" * 129)
    with pytest.raises(ValidationError, match="must not be empty"):
        validation.text("user.firstname", "   ")
    assert validation.text("user.firstname", "  Zoé  ") == "Zoé"


@given(st.text(min_size=1, max_size=200))
def test_text_accepts_only_what_is_safe(value: str) -> None:
    try:
        result = validation.text("f", value, max_len=150)
    except ValidationError as exc:
        assert exc.field == "f"
        return
    assert not any(ch in result for ch in CONTROL)
    assert 0 < len(result) <= 150


@pytest.mark.parametrize("bad", ['Evil" <666>', "a<b", "back\\slash"])
def test_callerid_name_refuses_what_splits_a_callerid(bad: str) -> None:
    with pytest.raises(ValidationError, match="callerid_name"):
        validation.callerid_name("user.callerid_name", bad)


@pytest.mark.parametrize("bad", ["Martin, Alice", "a|b", "a=b", "back\\\\slash"])
def test_voicemail_text_refuses_field_separators(bad: str) -> None:
    with pytest.raises(ValidationError):
        validation.voicemail_text("voicemail.fullname", bad)


@pytest.mark.parametrize(
    "good",
    ["1001", "*98", "#1", "+33123", "_0[1-9]XXXXXXXX", "_X.", "_NXXNXXXXXX", "_+33!", "_[1-3]XX", "_0[12]X."],
)
def test_extension_accepts_numbers_and_patterns(good: str) -> None:
    assert validation.extension("extension.exten", good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "_",
        "abc",
        "10 01",
        "_X.X",
        "_[a-z]",
        "_[1-",
        "_[]X",
        "1001,1",
        "_X;",
        "1001\n",
        "_X)",
        "exten=>",
        "1" * 41,
        "_X[1-5",
        "[1001]",
    ],
)
def test_extension_refuses_what_pbx_config_would_misread(bad: str) -> None:
    with pytest.raises(ValidationError) as err:
        validation.extension("extension.exten", bad)
    assert err.value.field == "extension.exten"


@given(st.text(max_size=60))
def test_extension_output_is_inert_in_a_dialplan(value: str) -> None:
    try:
        exten = validation.extension("e", value)
    except ValidationError:
        return
    assert set(exten) <= set(string.digits + "*#+_XZNxzn[]-.!")


@pytest.mark.parametrize(
    ("check", "bad"),
    [
        (validation.identifier, "bad name"),
        (validation.identifier, "x" * 41),
        (validation.identifier, "a;b"),
        (validation.identifier, "[section]"),
        (validation.dialable, "12a"),
        (validation.language, "french"),
        (validation.pin, "12"),
        (validation.cti_login, "a b"),
        (validation.email, "a@b,c"),
        (validation.mac_address, "00:11:22"),
        (validation.host, "evil.com;transport=tcp"),
        (validation.host, "a b"),
        (validation.timezone, "Mars/Olympus"),
        (validation.networks, "300.1.1.1"),
        (validation.phone_number, "1"),
    ],
)
def test_each_checker_refuses_with_field(check, bad: str) -> None:
    with pytest.raises(ValidationError) as err:
        check("obj.field", bad)
    assert err.value.field == "obj.field"


def test_integers_booleans_choices() -> None:
    assert validation.integer("f", "42", minimum=0, maximum=100) == 42
    with pytest.raises(ValidationError, match=r"out of range \[5, 600\]"):
        validation.integer("user.ring_seconds", 3, minimum=5, maximum=600)
    with pytest.raises(ValidationError):
        validation.integer("f", True, minimum=0, maximum=1)
    assert validation.boolean("f", "yes") is True
    assert validation.boolean("f", "0") is False
    with pytest.raises(ValidationError):
        validation.boolean("f", "maybe")
    assert validation.codecs("line.codecs", "alaw,ulaw,alaw") == ["alaw", "ulaw"]
    with pytest.raises(ValidationError):
        validation.codecs("line.codecs", ["alaw", "mp3"])


def test_normalising_checkers() -> None:
    assert validation.mac_address("f", "00-11-22-AA-BB-CC") == "00:11:22:aa:bb:cc"
    assert validation.cti_login("f", " Alice ") == "alice"
    assert validation.host("f", "[2001:db8::1]:5060") == "[2001:db8::1]:5060"
    assert validation.host("f", "192.0.2.1:5061") == "192.0.2.1:5061"
    assert validation.networks("f", "192.0.2.7/24, 2001:db8::/32") == ["192.0.2.0/24", "2001:db8::/32"]
