"""Newline framing: partial lines, several lines per chunk, the bound on a line."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxtools.framing import Frame, LineFramer


def feed_all(framer: LineFramer, chunks: list[bytes]) -> list[Frame]:
    frames = []
    for chunk in chunks:
        frames += framer.feed(chunk)
    return frames + framer.close()


def test_several_lines_in_one_chunk() -> None:
    framer = LineFramer(100)
    assert framer.feed(b'{"a":1}\n{"b":2}\n') == [Frame(b'{"a":1}', 8), Frame(b'{"b":2}', 8)]
    assert framer.close() == []


def test_line_split_over_chunks() -> None:
    framer = LineFramer(100)
    assert framer.feed(b'{"cla') == []
    assert framer.feed(b'ss":') == []
    assert framer.buffered == 9
    assert framer.feed(b'"x"}\n{"n') == [Frame(b'{"class":"x"}', 14)]
    assert framer.close() == [Frame(b'{"n', 3, complete=False)]


def test_empty_lines_are_frames() -> None:
    assert feed_all(LineFramer(10), [b"\n\n"]) == [Frame(b"", 1), Frame(b"", 1)]


def test_line_of_exactly_the_limit_is_kept_whole() -> None:
    assert LineFramer(4).feed(b"abcd\n") == [Frame(b"abcd", 5)]


def test_oversized_line_keeps_head_and_counts_the_rest() -> None:
    framer = LineFramer(10, head=4)
    assert framer.feed(b"0123456") == []
    assert framer.feed(b"789abcdef") == []
    assert framer.buffered <= 10
    assert framer.feed(b"XYZ\nnext\n") == [Frame(b"0123", 20, oversized=True), Frame(b"next", 5)]


def test_oversized_tail_at_end_of_stream() -> None:
    framer = LineFramer(5, head=2)
    framer.feed(b"x" * 50)
    assert framer.close() == [Frame(b"xx", 50, oversized=True, complete=False)]


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LineFramer(0)


@given(
    data=st.binary(max_size=400)
    | st.lists(st.sampled_from([b"\n", b"a", b"{}", b"\xff", b"x" * 30])).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20),
    max_line=st.integers(min_value=1, max_value=40),
)
def test_framing_property(data: bytes, cuts: list[int], max_line: int) -> None:
    """Whatever the chunking: frames cover every byte, short lines come back exactly, memory is bounded."""
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    framer = LineFramer(max_line, head=min(8, max_line))
    frames: list[Frame] = []
    for chunk in chunks:
        frames += framer.feed(chunk)
        assert framer.buffered <= max_line
    frames += framer.close()

    assert sum(f.size for f in frames) == len(data)
    lines = data.split(b"\n")
    expected_count = len(lines) - (1 if lines[-1] == b"" else 0)
    assert len(frames) == expected_count
    for frame, line in zip(frames, lines, strict=False):
        if frame.oversized:
            assert len(line) > max_line
            assert frame.data == line[: len(frame.data)]
        else:
            assert frame.data == line
    assert all(f.complete for f in frames[:-1])
    if frames:
        assert frames[-1].complete == data.endswith(b"\n")
