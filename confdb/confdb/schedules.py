"""Schedule evaluation: whether a schedule is open at a given instant. A pure function, no I/O.

A schedule is a time zone and periods (ISO weekdays, a start and an end time of day); the read models
return it (``confdb.read.agid.Schedule``), and anything with the same attributes will do. Writing
schedules is ``confdb.writer.schedules``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class PeriodLike(Protocol):
    @property
    def weekdays(self) -> Sequence[int]: ...  # ISO: 1 is Monday, 7 Sunday

    @property
    def start(self) -> time: ...

    @property
    def end(self) -> time: ...  # time.max (24:00) includes the end of the day


class ScheduleLike(Protocol):
    @property
    def timezone(self) -> str: ...

    @property
    def periods(self) -> Sequence[PeriodLike]: ...


def zone(name: str) -> ZoneInfo:
    """The zone ``name``, or UTC when it is unknown (a schedule is still evaluated, never an error)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def schedule_is_open(sched: ScheduleLike, now: datetime) -> bool:
    """Open when the local time of ``now`` (aware) in the schedule's zone falls in one of its periods.

    A period is ``start <= t < end``; an end of 23:59:59.999999 (``24:00``) includes the end of the day.
    """
    local = now.astimezone(zone(sched.timezone))
    t = local.time().replace(tzinfo=None)
    day = local.isoweekday()
    for period in sched.periods:
        if day in period.weekdays and period.start <= t and (t < period.end or period.end == time.max):
            return True
    return False
