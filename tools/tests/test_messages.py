"""Decoding, filtering, stripping and displaying CTI messages."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxtools.ctispy import format_message, format_raw
from pbxtools.framing import Frame
from pbxtools.messages import (
    INCOMPLETE,
    NO_CLASS,
    TOO_LARGE,
    UNDECODABLE,
    MessageFilter,
    decode,
    escape_bytes,
    is_blank,
    parse_include,
    safe_text,
    to_bytes,
    to_json,
)
from pbxtools.proxy import Direction


def frame(data: bytes, **kwargs: object) -> Frame:
    return Frame(data, len(data) + 1, **kwargs)  # type: ignore[arg-type]


def test_decode_object() -> None:
    message = decode(frame(b'{"class": "login", "commandid": 4}'))
    assert message.fields == {"class": "login", "commandid": 4}
    assert message.label == "login"
    assert message.error is None


@pytest.mark.parametrize(
    ("data", "error", "label"),
    [
        (b"not json", "invalid JSON: Expecting value at column 1", UNDECODABLE),
        (b'{"class": "x"', "invalid JSON", UNDECODABLE),
        (b"[1, 2]", "JSON list where an object was expected", UNDECODABLE),
        (b'"text"', "JSON str where an object was expected", UNDECODABLE),
        (b'{"class": "\xff"}', "invalid UTF-8 at byte 11", UNDECODABLE),
        (b"[" * 100000 + b"]" * 100000, "invalid JSON", UNDECODABLE),
        (b"1" * 5000, "invalid JSON", UNDECODABLE),
    ],
)
def test_undecodable(data: bytes, error: str, label: str) -> None:
    message = decode(frame(data))
    assert message.fields is None
    assert message.error is not None and message.error.startswith(error)
    assert message.label == label


def test_labels() -> None:
    assert decode(frame(b'{"a": 1}')).label == NO_CLASS
    assert decode(frame(b'{"class": 3}')).label == NO_CLASS
    assert decode(Frame(b"xx", 5000, oversized=True), 1024).label == TOO_LARGE
    assert "limit 1024 bytes" in (decode(Frame(b"xx", 5000, oversized=True), 1024).error or "")
    assert decode(Frame(b'{"class": "a"}', 14, complete=False)).label == INCOMPLETE


def test_blank() -> None:
    assert is_blank(frame(b""))
    assert is_blank(frame(b" \r"))
    assert not is_blank(frame(b"{}"))
    assert not is_blank(Frame(b"", 0, complete=False))


def test_parse_include() -> None:
    assert parse_include("class=getlist") == ("class", "getlist")
    assert parse_include("a=b=c") == ("a", "b=c")
    assert parse_include("a=") == ("a", "")
    for bad in ("class", "=x", ""):
        with pytest.raises(ValueError):
            parse_include(bad)


def test_include_filter_semantics() -> None:
    flt = MessageFilter.from_options(include=[("class", "getlist"), ("class", "event"), ("ok", "true")])
    assert flt.matches(decode(frame(b'{"class": "getlist", "ok": true}')))
    assert flt.matches(decode(frame(b'{"class": "event", "ok": true}')))
    assert not flt.matches(decode(frame(b'{"class": "event", "ok": false}')))
    assert not flt.matches(decode(frame(b'{"class": "login", "ok": true}')))
    assert not flt.matches(decode(frame(b'{"class": "event"}')))
    assert not flt.matches(decode(frame(b"garbage")))
    assert MessageFilter().matches(decode(frame(b"garbage")))


def test_include_compares_non_strings_as_json() -> None:
    assert MessageFilter.from_options(include=[("n", "3")]).matches(decode(frame(b'{"n": 3}')))
    assert MessageFilter.from_options(include=[("v", "null")]).matches(decode(frame(b'{"v": null}')))
    assert not MessageFilter.from_options(include=[("n", "3")]).matches(decode(frame(b'{"n": "03"}')))


def test_strip_keeps_order() -> None:
    flt = MessageFilter.from_options(strip=["timenow", "commandid"])
    fields = {"class": "x", "timenow": 1.5, "a": 1, "commandid": 2, "b": 2}
    assert list(flt.stripped(fields)) == ["class", "a", "b"]


def test_format_message() -> None:
    flt = MessageFilter.from_options(strip=["timenow"])
    msg = decode(frame('{"class": "login", "timenow": 1, "name": "Zoë"}'.encode()))
    assert (
        format_message(Direction.CLIENT, msg, flt, pretty=False)
        == 'client: {"class": "login", "name": "Zoë"}'
    )
    pretty = format_message(Direction.SERVER, msg, flt, pretty=True)
    assert pretty.splitlines() == ["server: {", '  "class": "login",', '  "name": "Zoë"', "}"]


def test_format_undecodable_and_raw() -> None:
    msg = decode(frame(b"bad\x1b[2Jline\r"))
    text = format_message(Direction.SERVER, msg, MessageFilter(), pretty=False)
    assert text == "server: [undecodable: invalid JSON: Expecting value at column 1] bad\\x1b[2Jline\\r"
    assert format_raw(Direction.CLIENT, b'{"a":1}\n{"b"') == 'client: [12 bytes] {"a":1}\\n{"b"'
    big = format_message(
        Direction.CLIENT, decode(Frame(b"abc", 9999, oversized=True)), MessageFilter(), False
    )
    assert big.startswith("client: [undecodable: message of 9999 bytes is too large") and big.endswith(
        "abc..."
    )


def test_escape_bytes() -> None:
    assert escape_bytes(b"a\\b\n\t\x00\x7f\xc3\xa9") == "a\\\\b\\n\\t\\x00\\x7f\\xc3\\xa9"


def test_to_bytes_survives_lone_surrogates() -> None:
    fields = json.loads('{"class": "\\ud800"}')
    assert to_bytes(json.dumps(fields, ensure_ascii=False)) == b'{"class": "\\ud800"}'


@given(st.binary(max_size=300), st.booleans(), st.lists(st.text(max_size=5), max_size=3))
def test_any_line_decodes_and_displays_on_one_line(data: bytes, pretty: bool, strip: list[str]) -> None:
    """No input makes decoding or display raise; compact display is one line without control bytes."""
    data = data.replace(b"\n", b"")
    message = decode(frame(data))
    assert (message.fields is None) != (message.error is None)
    text = format_message(Direction.CLIENT, message, MessageFilter.from_options(strip=strip), pretty=pretty)
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in text.replace("\n", ""))
    assert "\n" not in text or pretty
    to_bytes(text)


@given(st.text())
def test_control_and_format_characters_are_escaped_but_round_trip(value: str) -> None:
    fields = {"class": value, value: 1}
    text = to_json(fields)
    assert json.loads(text) == fields
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in text)
    assert "\u202e" not in text and "\x85" not in text
    shown = safe_text(value)
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in shown)


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
            lambda children: (
                st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
            ),
            max_leaves=10,
        ),
        max_size=6,
    )
)
def test_json_objects_round_trip(fields: dict[str, object]) -> None:
    line = json.dumps(fields).encode()
    message = decode(frame(line))
    assert message.fields == fields
    shown = format_message(Direction.SERVER, message, MessageFilter(), pretty=False)
    assert json.loads(shown.removeprefix("server: ")) == fields
