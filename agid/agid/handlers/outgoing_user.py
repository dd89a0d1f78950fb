"""``outgoing_user``: which trunks an external number goes out through, and as whom.
``AGI(agi://127.0.0.1:4573/outgoing_user[,NUMBER[,CONTEXT]][?user=ID])``; NUMBER defaults to
``agi_extension``, CONTEXT (an outcall context) to ``outcall``; ``user`` is the calling user's id.

The pattern is the exact one, else the most specific matching one of the context (Asterisk's order).
The number sent is the dialled one without its first ``strip`` digits, after ``prefix``.

Outputs: ``AGID_OUT_ACTION`` (``DIAL``; ``REFUSE`` with ``AGID_CAUSE`` and ``AGID_HANGUPCAUSE``, Q.850
3 "no route" when no pattern matches, 34 "no circuit" when the outcall has no enabled trunk; ``DEFAULT``
when the database is unavailable), ``AGID_OUT_NUMBER``, ``AGID_OUT_TRUNKS`` (count N) and
``AGID_OUT_TRUNK_1`` .. ``AGID_OUT_TRUNK_N`` (``PJSIP/<number>@<trunk>``, to try in order),
``AGID_RINGTIME``, ``AGID_OUTCALL``, ``AGID_CALLERID_NUM`` / ``AGID_CALLERID_NAME``: the caller ID to
present (the user's own when the outcall has internal_callerid, else the pattern's; empty: leave the
channel's as is).
"""

from __future__ import annotations

from typing import Any

from agid.db import DBUnavailable
from agid.handlers._support import BadInput, argument, db_call, finish
from agid.session import AGISession
from confdb.asterisk_values import LITERAL_EXTENSION
from confdb.patterns import best_match
from confdb.read import agid as read

NO_ROUTE = 3
NO_CIRCUIT = 34


async def _routes(
    conn: Any, context: str, number: str, user_id: int | None
) -> tuple[read.OutcallRoute | None, tuple[str, str | None] | None]:
    routes = await read.outcall_routes(conn, context)
    best = best_match(number, [r.pattern for r in routes])
    if best is None:
        return None, None
    route = routes[best]
    caller = None
    if route.internal_callerid and user_id is not None:
        caller = await read.user_caller_id(conn, user_id)
    return route, caller


async def handle(session: AGISession) -> None:
    number = argument(session, 0, "number", session.env.extension)
    context = argument(session, 1, "context", "outcall")
    user_ref = session.query.get("user", "").strip()
    if not LITERAL_EXTENSION.matches(number):
        raise BadInput(f"outgoing_user: {number!r} is not a dialable number")
    if user_ref and not user_ref.isdigit():
        raise BadInput(f"outgoing_user: user={user_ref!r} is not a user id")
    out: dict[str, str | int | None] = {
        "AGID_OUT_ACTION": None,
        "AGID_OUT_NUMBER": None,
        "AGID_OUT_TRUNKS": 0,
        "AGID_RINGTIME": None,
        "AGID_OUTCALL": None,
        "AGID_CALLERID_NUM": None,
        "AGID_CALLERID_NAME": None,
        "AGID_HANGUPCAUSE": None,
    }
    try:
        route, caller = await db_call(session, _routes, context, number, int(user_ref) if user_ref else None)
    except DBUnavailable as exc:
        out["AGID_OUT_ACTION"] = "DEFAULT"
        finish(session, out, f"database unavailable: {exc}", degraded=True)
        return
    if route is None:
        out["AGID_OUT_ACTION"] = "REFUSE"
        out["AGID_HANGUPCAUSE"] = NO_ROUTE
        finish(session, out, f"no outcall pattern of context {context} matches {number}")
        return
    out["AGID_OUTCALL"] = route.outcall
    if not route.trunks:
        out["AGID_OUT_ACTION"] = "REFUSE"
        out["AGID_HANGUPCAUSE"] = NO_CIRCUIT
        finish(session, out, f"outcall {route.outcall} has no enabled trunk")
        return
    dialled = route.prefix + number[route.strip :]
    out["AGID_OUT_ACTION"] = "DIAL"
    out["AGID_OUT_NUMBER"] = dialled
    out["AGID_OUT_TRUNKS"] = len(route.trunks)
    for index, trunk in enumerate(route.trunks, 1):
        out[f"AGID_OUT_TRUNK_{index}"] = f"PJSIP/{dialled}@{trunk}"
    out["AGID_RINGTIME"] = route.ring_seconds
    out["AGID_CALLERID_NAME"] = out["AGID_CALLERID_NUM"] = ""
    if caller is not None:
        out["AGID_CALLERID_NAME"], out["AGID_CALLERID_NUM"] = caller[0], caller[1] or ""
    elif route.callerid:
        out["AGID_CALLERID_NUM"] = route.callerid
    finish(session, out)
