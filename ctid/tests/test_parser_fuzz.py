"""Property tests of AMIParser: any bytes, any chunking, against a naive reference of the same grammar.

A longer run: ``CTID_FUZZ_SCALE=50 pytest ctid/tests/test_parser_fuzz.py`` (examples x 50).
"""

from __future__ import annotations

import os

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ctid.ami.message import encode_message
from ctid.ami.parser import MAX_BANNER_BYTES, AMIParseError, AMIParser

MAX = 200  # small bounds, so that the fuzzer reaches them
MAX_HEADERS = 8
SCALE = int(os.environ.get("CTID_FUZZ_SCALE", "1"))

# fragments that make AMI-like streams with every awkward case: ": " in values, "Name:" without space,
# lines without colon, empty lines, CR or LF alone, non-UTF-8 bytes, repeated names, long runs.
FRAGMENTS = [
    b"Event",
    b"Response",
    b"ActionID",
    b"Output",
    b": ",
    b":",
    b" ",
    b"\r\n",
    b"\r\n\r\n",
    b"\r",
    b"\n",
]
FRAGMENTS += [
    b"x",
    b"Success",
    b"\xff",
    b"\xc3\xa9",
    b"\xc3",
    b"Asterisk Call Manager/9.0.0",
    b"y" * 90,
    b"\x00",
]

amiish = st.lists(st.sampled_from(FRAGMENTS), max_size=80).map(b"".join)
anybytes = st.binary(max_size=600)


def run(chunks: list[bytes], banner: bool) -> tuple[list[dict[str, str]], list[str], str | None]:
    errors: list[AMIParseError] = []
    parser = AMIParser(
        expect_banner=banner, max_message_bytes=MAX, max_headers=MAX_HEADERS, on_error=errors.append
    )
    out = []
    for chunk in chunks:
        out += parser.feed(chunk)
        assert parser.buffered <= max(MAX + 3, MAX_BANNER_BYTES + 1)
    assert parser.errors == len(errors)
    return out, [e.kind for e in errors], parser.banner


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=400 * SCALE, deadline=None)
@given(
    data=st.one_of(amiish, anybytes),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    banner=st.booleans(),
)
@example(data=b"Event: A" + b"y" * 190 + b"\r\n\r\n\r\nEvent: B\r\n\r\n", cuts=[200, 202], banner=False)
def test_chunking_never_changes_the_result(data: bytes, cuts: list[int], banner: bool) -> None:
    whole = run([data], banner)
    assert run(split(data, cuts), banner) == whole
    assert run([data[i : i + 1] for i in range(len(data))], banner) == whole


def reference(data: bytes) -> tuple[list[dict[str, str]], list[str]]:
    """The grammar written plainly (no banner): what the fast parser must agree with."""
    messages, errors = [], []
    chunks = data.split(b"\r\n\r\n")
    complete, tail = chunks[:-1], chunks[-1]
    for raw in complete:
        if not raw:
            continue
        if len(raw) > MAX:
            errors.append("oversize")
            continue
        lines = raw.decode("utf-8", "surrogateescape").split("\r\n")
        if len(lines) > MAX_HEADERS:
            errors.append("too-many-headers")
            continue
        msg: dict[str, str] = {}
        bad = 0
        for line in lines:
            if not line:
                continue
            if ": " in line:
                name, value = line.split(": ", 1)
            elif ":" in line:
                name, value = line.split(":", 1)
            else:
                bad += 1
                continue
            msg[name] = msg[name] + "\n" + value if name in msg else value
        if msg:
            messages.append(msg)
            if bad:
                errors.append("malformed-line")
        elif bad:
            errors.append("garbage")
    if len(tail) > MAX + 3:
        errors.append("oversize")
    return messages, errors


@settings(max_examples=600 * SCALE, deadline=None)
@given(data=amiish)
@example(data=b"Event: A\r\n\r\n\r\n")  # the first CRLF CRLF ends the message, not the last
@example(data=b"Event\r\n: \r\n" + b"y" * 186 + b"\r\n\r\n\r\n")  # exactly at the size bound
def test_agrees_with_reference_grammar(data: bytes) -> None:
    messages, kinds, _ = run([data], banner=False)
    ref_messages, ref_kinds = reference(data)
    assert messages == ref_messages
    if "oversize" not in ref_kinds[-1:]:  # an over-long tail is reported, then skipped to its end
        assert kinds == ref_kinds


names = (
    st.text(st.characters(blacklist_characters=":\r\n\x00", blacklist_categories=("Cs",)), min_size=1)
    .map(str.strip)
    .filter(bool)
)
texts = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)))


@settings(max_examples=300 * SCALE, deadline=None)
@given(headers=st.dictionaries(names, texts, min_size=1, max_size=10))
def test_encode_then_parse_round_trips(headers: dict[str, str]) -> None:
    parser = AMIParser(expect_banner=False)
    assert parser.feed(encode_message(headers)) == [headers]
    assert parser.errors == 0
