"""``reverse_lookup``: the caller's name from the directories.
``AGI(agi://127.0.0.1:4573/reverse_lookup[,NUMBER])``; NUMBER defaults to the channel's caller ID number.

The number is normalised (``confdb.numbers.normalize`` with the configured ``country``, as the phonebook
was written), then internal users, the phonebook table and the CSV files are asked at once until
``lookup_budget`` after the call reached agid: one absolute deadline, for the wait and the database reads
(see :mod:`agid.lookup`). When a name is found,
``CALLERID(name)`` is set to it with the decision (unless ``?set_callerid=no``). Outputs:
``AGID_LOOKUP_NAME``, ``AGID_LOOKUP_SOURCE`` (users / phonebook / csv / empty), ``AGID_LOOKUP_NUMBER``
(normalised); ``AGID_DEGRADED=1`` when nothing was found and a source did not answer in time.
"""

from __future__ import annotations

import time

from agid.handlers._support import finish
from agid.session import AGISession

UNKNOWN = {"", "unknown", "anonymous", "restricted", "private"}


async def handle(session: AGISession) -> None:
    raw = session.args[0].strip() if session.args and session.args[0].strip() else session.env.callerid
    out: dict[str, str | int | None] = {
        "AGID_LOOKUP_NAME": "",
        "AGID_LOOKUP_SOURCE": "",
        "AGID_LOOKUP_NUMBER": "",
    }
    lookup = session.context.lookup if session.context is not None else None
    if (raw or "").strip().lower() in UNKNOWN or lookup is None:
        finish(session, out, "no caller number" if lookup is not None else "no lookup service")
        return
    # the session's deadline, earlier if lookup_budget (counted from the accept too) ends first
    deadline = min(session.deadline, session.accepted_at + lookup.budget)
    late = deadline <= time.monotonic()
    result = await lookup.lookup(raw, deadline)
    out["AGID_LOOKUP_NUMBER"] = result.number
    if result.name:
        out["AGID_LOOKUP_NAME"] = result.name
        out["AGID_LOOKUP_SOURCE"] = result.source
        if session.query.get("set_callerid", "yes").lower() not in ("no", "0", "false"):
            out["CALLERID(name)"] = result.name  # set with the decision
        finish(session, out)
    elif result.complete:
        finish(session, out, "not found")
    elif late:
        finish(session, out, "no time left of lookup_budget since the call reached agid", degraded=True)
    else:
        finish(session, out, "not found; a source did not answer in time", degraded=True)
