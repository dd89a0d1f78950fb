"""confdb.patterns: Asterisk extension patterns as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confdb.patterns import best_match, extension_matches, pattern_order


@pytest.mark.parametrize(
    ("pattern", "number", "expected"),
    [
        ("_[1-3]X", "25", True),
        ("_[1-3]X", "45", False),
        ("_[13]X", "35", True),
        ("_[13]X", "25", False),
        ("_0-1-X", "015", True),  # dashes outside a set are ignored, as Asterisk does
        ("_x", "7", True),  # lowercase classes
        ("_z", "0", False),
        ("_n", "1", False),
        ("_1[2-", "12", False),  # an unclosed set matches nothing
        ("_1!", "1", True),  # '!' is zero or more
        ("_1.", "1", False),  # '.' is one or more
        ("_+33.", "+331", True),
        ("_*9X", "*91", True),
        ("123", "123", True),  # a literal matches itself only
        ("123", "1234", False),
    ],
)
def test_extension_matches(pattern: str, number: str, expected: bool) -> None:
    assert extension_matches(pattern, number) is expected


def test_pattern_order_literal_before_pattern_then_smaller_sets_first() -> None:
    assert pattern_order("0612") < pattern_order("_0612")
    assert pattern_order("_N") < pattern_order("_Z") < pattern_order("_X")
    assert pattern_order("_[1-3]") < pattern_order("_N")  # a set of 3 before a class of 8
    assert pattern_order("_X") < pattern_order("_.") < pattern_order("_!")
    assert pattern_order("_1-2") == pattern_order("_12")  # dashes weigh nothing


def test_best_match_is_none_without_a_match_and_first_of_equals() -> None:
    assert best_match("42", []) is None
    assert best_match("42", ["_1X"]) is None
    assert best_match("42", ["_XX", "_XX"]) == 0


@given(st.text("0123456789*#", min_size=1, max_size=12))
def test_a_number_matches_its_own_literal_and_the_all_x_pattern(number: str) -> None:
    assert extension_matches(number, number)
    assert extension_matches("_!", number)
    assert best_match(number, ["_!", "_.", number]) == 2
