"""confdb.schedules: whether a schedule is open, as a pure function."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone

from confdb.schedules import schedule_is_open, zone


@dataclass(frozen=True)
class P:
    weekdays: tuple[int, ...]
    start: time
    end: time


@dataclass(frozen=True)
class S:
    timezone: str
    periods: tuple[P, ...]


def test_start_included_end_excluded() -> None:
    sched = S("UTC", (P((3,), time(9), time(18)),))  # Wednesdays
    assert schedule_is_open(sched, datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    assert not schedule_is_open(sched, datetime(2026, 11, 25, 8, 59, 59, tzinfo=UTC))
    assert schedule_is_open(sched, datetime(2026, 11, 25, 17, 59, 59, tzinfo=UTC))
    assert not schedule_is_open(sched, datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
    assert not schedule_is_open(sched, datetime(2026, 11, 26, 10, 0, tzinfo=UTC))  # Thursday


def test_end_of_day_includes_the_last_instant() -> None:
    sched = S("UTC", (P((7,), time(12), time.max),))
    assert schedule_is_open(sched, datetime(2026, 11, 29, 23, 59, 59, 999999, tzinfo=UTC))
    assert not schedule_is_open(sched, datetime(2026, 11, 30, 0, 0, tzinfo=UTC))  # Monday


def test_local_time_and_weekday_come_from_the_schedule_zone() -> None:
    sched = S("Pacific/Auckland", (P((1,), time(8), time(9)),))  # Monday 08:00 in Auckland
    sunday_evening_utc = datetime(2026, 11, 29, 19, 30, tzinfo=UTC)  # Monday 08:30 NZDT (UTC+13)
    assert schedule_is_open(sched, sunday_evening_utc)
    same_instant = sunday_evening_utc.astimezone(timezone(timedelta(hours=-5)))
    assert schedule_is_open(sched, same_instant)


def test_an_unknown_zone_is_utc_and_no_period_is_closed() -> None:
    assert zone("Nowhere/City").key == "UTC"
    assert zone("").key == "UTC"
    assert not schedule_is_open(S("UTC", ()), datetime(2026, 11, 29, 12, 0, tzinfo=UTC))
