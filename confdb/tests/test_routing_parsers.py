"""Property tests of the command-line parsers for periods, outcall patterns and destinations (no database)."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confdb.validation import ValidationError
from confdb.writer.destinations import TYPES, Destination, parse_destination
from confdb.writer.errors import NotFound
from confdb.writer.outcalls import OutcallPattern, check_pattern, parse_pattern
from confdb.writer.schedules import END_OF_DAY, Period, format_period, parse_period

times = st.builds(time, st.integers(0, 23), st.integers(0, 59)) | st.just(END_OF_DAY)


@st.composite
def periods(draw: st.DrawFn) -> Period:
    days = draw(st.sets(st.integers(1, 7), min_size=1))
    start, end = sorted(draw(st.lists(times, min_size=2, max_size=2, unique=True)))
    return Period(tuple(sorted(days)), start, end)


@given(periods())
def test_a_formatted_period_parses_back_to_itself(period: Period) -> None:
    assert parse_period(format_period(period)) == period


@given(st.text(max_size=40))
def test_parse_period_refuses_with_a_validation_error_only(text: str) -> None:
    try:
        period = parse_period(text)
    except ValidationError as exc:
        assert exc.field == "schedule.periods"
    else:
        assert period.start < period.end and set(period.weekdays) <= set(range(1, 8))


@pytest.mark.parametrize(
    ("text", "days", "start", "end"),
    [
        ("mon-fri 09:00-18:00", (1, 2, 3, 4, 5), time(9), time(18)),
        ("sat 09:00-12:00", (6,), time(9), time(12)),
        ("Mon,WED,friday 8:30-12:30", (1, 3, 5), time(8, 30), time(12, 30)),
        ("fri-mon 00:00-24:00", (1, 5, 6, 7), time(0), END_OF_DAY),
        ("sun,sun 10:00-11:00", (7,), time(10), time(11)),
    ],
)
def test_parse_period_examples(text: str, days: tuple[int, ...], start: time, end: time) -> None:
    assert parse_period(text) == Period(days, start, end)


patterns = st.one_of(
    st.from_regex(r"[0-9*#+]{1,20}", fullmatch=True),
    st.from_regex(r"_[0-9XZN]{1,12}[.!]?", fullmatch=True),
)


@given(
    patterns,
    st.integers(0, 3),
    st.from_regex(r"\+?[0-9]{0,6}", fullmatch=True),
    st.none() | st.from_regex(r"\+?[0-9]{1,12}", fullmatch=True),
)
def test_a_pattern_written_out_parses_back(
    pattern: str, strip: int, prefix: str, callerid: str | None
) -> None:
    try:
        value = check_pattern(OutcallPattern(pattern, strip, prefix, callerid))
    except ValidationError as exc:
        assert exc.field == "outcall_pattern.strip"  # stripping more than the pattern matches
        return
    assert parse_pattern(str(value)) == value


@given(st.text(max_size=60))
def test_parse_pattern_refuses_with_a_validation_error_only(text: str) -> None:
    try:
        parse_pattern(text)
    except ValidationError as exc:
        assert exc.field.startswith("outcall_pattern.")


class _NoRows:
    """A connection where nothing exists: every lookup comes back empty."""

    def execute(self, *args: Any) -> _NoRows:
        return self

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []


destination_texts = st.text(max_size=60) | st.builds(
    "{}:{}".format, st.sampled_from([*TYPES, "fax", " USER", "Hangup"]), st.text(max_size=40)
)


@given(destination_texts)
def test_parse_destination_refuses_cleanly(text: str) -> None:
    try:
        dest = parse_destination(_NoRows(), text)  # type: ignore[arg-type]
    except (ValidationError, NotFound):
        return
    assert dest.type in ("number", "hangup")
    assert dest == Destination("hangup") or (dest.number and dest.number.lstrip("+").isascii())
