"""``incoming_did``: where a call from a trunk goes.
``AGI(agi://127.0.0.1:4573/incoming_did[,DID[,CONTEXT]])``; DID defaults to ``agi_extension``, CONTEXT
(the incall context) to ``agi_context``.

The incall is the one whose DID equals the number, else the most specific matching pattern (Asterisk's
order). With a schedule, the schedule's closed destination applies outside its periods.

Outputs: ``AGID_DEST_TYPE`` (user / group / queue / voicemail / number / hangup; ``none`` when no incall
matches; ``default`` when the database is unavailable), ``AGID_DEST_ARG`` (user id, group name, queue
name, ``mailbox@context`` or number), ``AGID_INCALL_ID``, ``AGID_CALLERID_PREFIX`` (to prepend to the
caller's name), ``AGID_SCHEDULE_STATE`` (open / closed / empty without schedule).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agid.db import DBUnavailable
from agid.handlers._support import BadInput, argument, db_call, destination_variables, finish
from agid.session import AGISession
from confdb.asterisk_values import LITERAL_EXTENSION
from confdb.patterns import best_match
from confdb.read import agid as read
from confdb.schedules import schedule_is_open


@dataclass(frozen=True)
class _Route:
    incall: read.Incall
    state: str
    destination: read.Destination
    arg: str


async def _route(conn: Any, context: str, did: str, now: datetime) -> _Route | None:
    candidates = await read.incalls(conn, context, did)
    best = best_match(did, [i.did for i in candidates])
    if best is None:
        return None
    incall = candidates[best]
    state, dest = "", incall.destination
    if incall.schedule_id is not None:
        sched = await read.schedule(conn, schedule_id=incall.schedule_id)
        if sched is not None:
            if schedule_is_open(sched, now):
                state = "open"
            else:
                state, dest = "closed", sched.closed
    return _Route(incall, state, dest, await read.destination_argument(conn, dest))


async def handle(session: AGISession) -> None:
    did = argument(session, 0, "did", session.env.extension)
    context = argument(session, 1, "context", session.env.context)
    if not LITERAL_EXTENSION.matches(did):
        raise BadInput(f"incoming_did: {did!r} is not a dialable number")
    out: dict[str, str | int | None] = {
        **destination_variables(None, ""),
        "AGID_INCALL_ID": None,
        "AGID_CALLERID_PREFIX": None,
        "AGID_SCHEDULE_STATE": None,
    }
    assert session.context is not None
    try:
        route = await db_call(session, _route, context, did, session.context.now())
    except DBUnavailable as exc:
        out["AGID_DEST_TYPE"] = "default"
        finish(session, out, f"database unavailable: {exc}", degraded=True)
        return
    if route is None:
        out["AGID_DEST_TYPE"] = "none"
        finish(session, out, f"no incall for {did} in context {context}")
        return
    out.update(destination_variables(route.destination, route.arg))
    out["AGID_INCALL_ID"] = route.incall.id
    out["AGID_CALLERID_PREFIX"] = route.incall.callerid_name_prefix or ""
    out["AGID_SCHEDULE_STATE"] = route.state
    cause = "" if route.arg or route.destination.type == "hangup" else "destination no longer exists"
    finish(session, out, cause)
