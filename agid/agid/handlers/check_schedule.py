"""``check_schedule``: is a schedule open now? ``AGI(agi://127.0.0.1:4573/check_schedule,NAME_OR_ID)``.

Outputs: ``AGID_SCHEDULE_STATE`` = ``open`` / ``closed`` / ``none`` (no such schedule) / ``unknown``
(database unavailable, ``AGID_DEGRADED=1``); when closed, ``AGID_DEST_TYPE`` / ``AGID_DEST_ARG`` give
the closed destination. The dialplan goes to the closed destination only on ``closed``.
"""

from __future__ import annotations

from typing import Any

from agid.db import DBUnavailable
from agid.handlers._support import BadInput, argument, db_call, destination_variables, finish
from agid.session import AGISession
from confdb.asterisk_values import IDENTIFIER
from confdb.read import agid as read
from confdb.schedules import schedule_is_open


async def _closed_destination(conn: Any, ref: str) -> tuple[read.Schedule, str] | None:
    if ref.isdigit():
        sched = await read.schedule(conn, schedule_id=int(ref))
    else:
        sched = await read.schedule(conn, name=ref)
    if sched is None:
        return None
    return sched, await read.destination_argument(conn, sched.closed)


async def handle(session: AGISession) -> None:
    ref = argument(session, 0, "schedule")
    if not ref:
        raise BadInput("check_schedule: no schedule name or id (argument 1)")
    if not IDENTIFIER.matches(ref):
        raise BadInput(f"check_schedule: {ref!r} is not a schedule name or id")
    out: dict[str, str | int | None] = {"AGID_SCHEDULE_STATE": None, **destination_variables(None, "")}
    try:
        found = await db_call(session, _closed_destination, ref)
    except DBUnavailable as exc:
        out["AGID_SCHEDULE_STATE"] = "unknown"
        finish(session, out, f"database unavailable: {exc}", degraded=True)
        return
    if found is None:
        out["AGID_SCHEDULE_STATE"] = "none"
        finish(session, out, f"no schedule {ref}")
        return
    sched, arg = found
    assert session.context is not None
    if schedule_is_open(sched, session.context.now()):
        out["AGID_SCHEDULE_STATE"] = "open"
    else:
        out["AGID_SCHEDULE_STATE"] = "closed"
        out.update(destination_variables(sched.closed, arg))
    finish(session, out)
