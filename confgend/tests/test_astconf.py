"""The test parser itself: it reads what Asterisk reads."""

from __future__ import annotations

import pytest

from testkit.confgend.astconf import ParseError, parse


def test_sections_options_comments() -> None:
    parsed = parse(
        "; head\n[general]\nstatic=yes ; trailing\n[a](!)\nx => 1\n[b](a)\ny = semi\\;colon\n"
        ";-- block\n[hidden]\n--;\nz = 2\n#include foo.conf\n"
    )
    assert parsed.shape() == [
        ("general", (), ("static",)),
        ("a", ("!",), ("x",)),
        ("b", ("a",), ("y", "z")),
    ]
    assert parsed.sections[2].items[0] == ("y", "semi;colon")
    assert parsed.directives == ["#include foo.conf"]


@pytest.mark.parametrize(
    "text", ["[open\n", "x = 1\n", "[a]\nnovalue\n", "[a]\nx = \0\n", "[a]\nx=" + "y" * 9000]
)
def test_errors(text: str) -> None:
    with pytest.raises(ParseError):
        parse(text)
