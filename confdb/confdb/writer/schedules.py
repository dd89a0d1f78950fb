"""Opening hours: weekly periods in a time zone, and where calls go when closed.

On the command line a period is `DAYS HH:MM-HH:MM`: DAYS is a comma-separated list of days (mon, tue, ...
or monday, ...) and ranges (mon-fri, or sat-mon across the week end); `24:00` ends a period at midnight.
Examples: `mon-fri 09:00-18:00`, `sat 09:00-12:00`, `mon,wed,fri 08:30-12:30`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time
from typing import Any

import psycopg
from psycopg.rows import dict_row

from confdb import events, validation
from confdb.validation import ValidationError
from confdb.writer import destinations
from confdb.writer.destinations import Destination
from confdb.writer.errors import Conflict, NotFound

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"([01]?[0-9]|2[0-4]):([0-5][0-9])")
END_OF_DAY = time.max  # what `24:00` is stored as


@dataclass(frozen=True)
class Period:
    """Open on these ISO weekdays (1 = Monday .. 7 = Sunday) from `start` to `end`."""

    weekdays: tuple[int, ...]
    start: time
    end: time

    def __str__(self) -> str:
        return format_period(self)


DEFAULT_PERIODS = (Period((1, 2, 3, 4, 5), time(9), time(18)),)
CLOSED_DEFAULT = Destination("hangup")


def _day(field: str, word: str) -> int:
    word = word.strip().lower()
    if word in DAYS:
        return DAYS.index(word) + 1
    if word in _FULL_DAYS:
        return _FULL_DAYS.index(word) + 1
    raise ValidationError(field, f"{validation.shown(word)} is not a day (mon, tue, wed, thu, fri, sat, sun)")


def _time(field: str, text: str) -> time:
    match = _TIME.fullmatch(text.strip())
    if not match:
        raise ValidationError(field, f"{validation.shown(text)} is not a time HH:MM")
    hour, minute = int(match[1]), int(match[2])
    if hour == 24:
        if minute:
            raise ValidationError(field, f"{text!r} is past midnight; the latest end is 24:00")
        return END_OF_DAY
    return time(hour, minute)


def parse_period(text: str, *, field: str = "schedule.periods") -> Period:
    """`mon-fri 09:00-18:00` -> Period((1, 2, 3, 4, 5), 09:00, 18:00)."""
    if not isinstance(text, str):
        raise ValidationError(field, "must be text such as 'mon-fri 09:00-18:00'")
    validation.text(field, text, max_len=100)
    parts = text.split()
    if len(parts) != 2 or parts[1].count("-") != 1:
        raise ValidationError(
            field, f"{validation.shown(text)} is not DAYS HH:MM-HH:MM, for example 'mon-fri 09:00-18:00'"
        )
    days: list[int] = []
    for item in parts[0].split(","):
        first, dash, last = item.partition("-")
        begin = _day(field, first)
        end = _day(field, last) if dash else begin
        span = (end - begin) % 7 + 1
        days += [(begin - 1 + i) % 7 + 1 for i in range(span)]
    start, end = (_time(field, t) for t in parts[1].split("-"))
    return check_period(Period(tuple(days), start, end), field=field)


def check_period(period: Period, *, field: str = "schedule.periods") -> Period:
    if not isinstance(period, Period):
        raise ValidationError(field, f"must be a Period, not {type(period).__name__}")
    days = period.weekdays
    if (
        not isinstance(days, list | tuple | set | frozenset)
        or not days
        or any(isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= 7 for d in days)
    ):
        raise ValidationError(
            field, f"weekdays {period.weekdays!r} must be 1 (Monday) to 7 (Sunday), at least one"
        )
    if not isinstance(period.start, time) or not isinstance(period.end, time):
        raise ValidationError(field, "start and end must be times")
    if period.start >= period.end:
        raise ValidationError(
            field,
            f"{format_period(period)}: the end must be after the start; split a period "
            "that crosses midnight in two (e.g. 'mon 22:00-24:00' and 'tue 00:00-06:00')",
        )
    return Period(
        tuple(sorted(set(days))), period.start.replace(tzinfo=None), period.end.replace(tzinfo=None)
    )


def format_period(period: Period) -> str:
    days = sorted(set(period.weekdays))
    runs: list[str] = []
    i = 0
    while i < len(days):
        j = i
        while j + 1 < len(days) and days[j + 1] == days[j] + 1:
            j += 1
        name = DAYS[days[i] - 1]
        runs.append(
            name if i == j else f"{name}-{DAYS[days[j] - 1]}" if j > i + 1 else f"{name},{DAYS[days[j] - 1]}"
        )
        i = j + 1
    end = "24:00" if period.end == END_OF_DAY else period.end.strftime("%H:%M")
    return f"{','.join(runs)} {period.start.strftime('%H:%M')}-{end}"


def schedule_id(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute("SELECT id FROM schedules WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"schedule {validation.shown(name)} does not exist")
    return int(row[0])


def _periods(periods: Sequence[Period | str]) -> list[Period]:
    if isinstance(periods, str | Period):
        periods = [periods]
    result = [parse_period(p) if isinstance(p, str) else check_period(p) for p in periods]
    if not result:
        raise ValidationError("schedule.periods", "a schedule needs at least one opening period")
    return result


def _write_periods(conn: psycopg.Connection[Any], target: int, periods: list[Period]) -> None:
    conn.execute("DELETE FROM schedule_periods WHERE schedule_id = %s", (target,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO schedule_periods (schedule_id, weekdays, start_time, end_time) "
            "VALUES (%s, %s::smallint[], %s, %s)",
            [(target, list(p.weekdays), p.start, p.end) for p in periods],
        )


def create_schedule(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    timezone: str = "UTC",
    periods: Sequence[Period | str] = DEFAULT_PERIODS,
    closed: Destination = CLOSED_DEFAULT,
) -> int:
    """Create a schedule: open during `periods` (Period objects or CLI strings), else calls go to `closed`."""
    name = validation.identifier("schedule.name", name)
    timezone = validation.timezone("schedule.timezone", timezone)
    clean_periods = _periods(periods)
    closed = destinations.check_destination(conn, closed, field="schedule.closed")
    if conn.execute("SELECT 1 FROM schedules WHERE name = %s", (name,)).fetchone():
        raise Conflict(f"schedule {name!r} already exists")
    row = conn.execute(
        "INSERT INTO schedules (name, timezone, closed_dest_type, closed_dest_id, closed_dest_number) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (name, timezone, *closed.columns()),
    ).fetchone()
    assert row is not None
    _write_periods(conn, int(row[0]), clean_periods)
    events.emit(conn, "schedule", "created", id=row[0], name=name)
    return int(row[0])


def update_schedule(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    new_name: str | None = None,
    timezone: str | None = None,
    periods: Sequence[Period | str] | None = None,
    closed: Destination | None = None,
) -> list[str]:
    """Rename, change the time zone, replace all periods or the closed destination; returns what changed."""
    target = schedule_id(conn, name)
    values: dict[str, Any] = {}
    if new_name is not None:
        values["name"] = validation.identifier("schedule.name", new_name)
        if (
            values["name"] != name
            and conn.execute("SELECT 1 FROM schedules WHERE name = %s", (values["name"],)).fetchone()
        ):
            raise Conflict(f"schedule {values['name']!r} already exists")
    if timezone is not None:
        values["timezone"] = validation.timezone("schedule.timezone", timezone)
    if closed is not None:
        dest = destinations.check_destination(conn, closed, field="schedule.closed")
        values |= dict(
            zip(("closed_dest_type", "closed_dest_id", "closed_dest_number"), dest.columns(), strict=True)
        )
    clean_periods = _periods(periods) if periods is not None else None
    if values:
        conn.execute(
            f"UPDATE schedules SET {', '.join(f'{c} = %s' for c in values)} WHERE id = %s",
            [*values.values(), target],
        )
    if clean_periods is not None:
        _write_periods(conn, target, clean_periods)
    changed = sorted(
        {"closed" if c.startswith("closed_") else c for c in values}
        | ({"periods"} if clean_periods is not None else set())
    )
    if changed:
        events.emit(conn, "schedule", "updated", id=target, name=values.get("name", name), fields=changed)
    return changed


def delete_schedule(conn: psycopg.Connection[Any], name: str) -> None:
    """Delete a schedule; refused while an incall uses it (the incall would silently become always open)."""
    target = schedule_id(conn, name)
    using = [
        r[0]
        for r in conn.execute(
            "SELECT i.did || '@' || c.name FROM incalls i JOIN contexts c ON c.id = i.context_id "
            "WHERE i.schedule_id = %s ORDER BY 1",
            (target,),
        ).fetchall()
    ]
    if using:
        raise Conflict(
            f"schedule {name!r} is used by incall {', '.join(using)}; detach it from "
            f"{'that incall' if len(using) == 1 else 'those incalls'} first"
        )
    conn.execute("DELETE FROM schedules WHERE id = %s", (target,))
    events.emit(conn, "schedule", "deleted", id=target, name=name)


def get_periods(conn: psycopg.Connection[Any], target: int) -> list[Period]:
    return [
        Period(tuple(r[0]), r[1], r[2])
        for r in conn.execute(
            "SELECT weekdays, start_time, end_time FROM schedule_periods WHERE schedule_id = %s "
            "ORDER BY weekdays[1], start_time, id",
            (target,),
        ).fetchall()
    ]


def list_schedules(conn: psycopg.Connection[Any], schedule: int | None = None) -> list[dict[str, Any]]:
    """Schedules by name (only id `schedule` when given); periods and incalls (DIDs) are lists."""
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute(
        "SELECT s.id, s.name, s.timezone, s.closed_dest_type, s.closed_dest_id, s.closed_dest_number, "
        "  coalesce((SELECT array_agg(i.did ORDER BY i.did) FROM incalls i "
        "     WHERE i.schedule_id = s.id), '{}') AS incalls "
        "FROM schedules s WHERE %(id)s::int IS NULL OR s.id = %(id)s::int ORDER BY s.name",
        {"id": schedule},
    ).fetchall()
    result = []
    for row in rows:
        closed = Destination(
            row.pop("closed_dest_type"), row.pop("closed_dest_id"), row.pop("closed_dest_number")
        )
        result.append(
            {
                "id": row["id"],
                "name": row["name"],
                "timezone": row["timezone"],
                "periods": [format_period(p) for p in get_periods(conn, row["id"])],
                "closed": destinations.describe(conn, closed),
                "incalls": row["incalls"],
            }
        )
    return result
