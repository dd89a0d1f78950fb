"""confdb.asterisk_values: the one definition of the Asterisk value rules, and the writer applying it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confdb import asterisk_values as av
from confdb import validation
from confdb.validation import ValidationError


def test_rules_match_whole_strings_only() -> None:
    assert av.IDENTIFIER.matches("sales-1.fr_x")
    assert not av.IDENTIFIER.matches("-sales")
    assert not av.IDENTIFIER.matches("sales\n")
    assert not av.IDENTIFIER.matches("a" * 41)
    assert not av.IDENTIFIER.matches(42)
    assert av.DIALABLE.matches("+33123*#")
    assert not av.DIALABLE.matches("33+1")
    assert av.LITERAL_EXTENSION.matches("33+1")  # a DID or dialled number: '+' anywhere
    assert not av.LITERAL_EXTENSION.matches("_1X")
    assert av.EXTENSION_SHAPE.matches("_1X") and av.EXTENSION_SHAPE.matches("112")
    assert not av.EXTENSION_SHAPE.matches("_1X,n")
    assert av.PREFIX.matches("") and not av.PREFIX.matches("1" * 21)
    assert av.DIGITS.matches("0123") and not av.DIGITS.matches("12*")


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("_0XXXXXXXXX", None),
        ("_[1-5]XX!", None),
        ("_00.", None),
        ("_", "an extension pattern needs something after '_'"),
        ("_1[2", "'_1[2': '[' at position 2 is never closed"),
        ("_1[]", "'_1[]': empty character set '[]'"),
        ("_1[a]", "'_1[a]': a set may hold only digits and ranges such as [1-5]"),
        ("_1.2", "'_1.2': '.' is only allowed at the end of a pattern"),
        ("_1,n", "'_1,n': ',' is not allowed in an extension pattern"),
    ],
)
def test_extension_pattern_problem(pattern: str, problem: str | None) -> None:
    assert av.extension_pattern_problem(pattern) == problem


@given(st.text(max_size=50))
def test_the_writer_refuses_exactly_what_the_rule_refuses(value: str) -> None:
    """validation.identifier is IDENTIFIER (after stripping), with IDENTIFIER's wording."""
    try:
        stored = validation.identifier("f", value)
    except ValidationError as exc:
        assert not av.IDENTIFIER.matches(value.strip()) or not value.isprintable()
        assert exc.field == "f"
    else:
        assert av.IDENTIFIER.matches(stored)


def test_the_writer_words_its_refusals_with_the_rule() -> None:
    with pytest.raises(ValidationError, match=av.IDENTIFIER.what.replace("(", r"\(").replace(")", r"\)")):
        validation.identifier("queue.name", "a b")
    with pytest.raises(ValidationError, match="is not an extension"):
        validation.extension("incall.did", "12a")
    with pytest.raises(ValidationError, match="never closed"):
        validation.extension("incall.did", "_1[2")


@given(st.text(max_size=30))
def test_free_text_rules_keep_a_value_on_one_line(value: str) -> None:
    cleaned = av.printable(value)
    assert "\n" not in cleaned and "\r" not in cleaned and "\x00" not in cleaned
    assert len(av.bounded(cleaned * 40).encode()) <= av.MAX_VALUE_BYTES
    kept = "".join(ch for ch in cleaned if ch.isspace() or av.dialplan_char(ch))
    assert not set(kept) & set(",()$[]{};#\"'=|&^%<>")
