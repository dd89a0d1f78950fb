"""``incoming_queue``: a queue's options for the Queue() call.
``AGI(agi://127.0.0.1:4573/incoming_queue,NAME_OR_ID)``.

Outputs: ``AGID_QUEUE_ACTION`` (``QUEUE``; ``FULL`` when ``max_waiting`` callers already wait, by
``QUEUE_WAITING_COUNT``; ``NONE`` for an unknown queue; ``DEFAULT`` when the database is unavailable),
``AGID_QUEUE_NAME`` (the Asterisk queue name; on DEFAULT the argument if it is a name),
``AGID_QUEUE_DISPLAY_NAME``, ``AGID_QUEUE_TIMEOUT`` (max_wait_seconds, empty for no limit),
``AGID_QUEUE_MUSIC`` (music class), ``AGID_QUEUE_ANNOUNCE_POSITION`` (yes/no).
"""

from __future__ import annotations

from functools import partial

from agid.db import DBUnavailable
from agid.handlers._support import BadInput, argument, channel_value, db_call, finish
from agid.session import AGISession
from confdb.asterisk_values import IDENTIFIER
from confdb.read import agid as read


async def handle(session: AGISession) -> None:
    ref = argument(session, 0, "queue")
    if not ref:
        raise BadInput("incoming_queue: no queue name or id (argument 1)")
    if not IDENTIFIER.matches(ref):
        raise BadInput(f"incoming_queue: {ref!r} is not a queue name or id")
    out: dict[str, str | int | None] = {
        "AGID_QUEUE_ACTION": None,
        "AGID_QUEUE_NAME": None,
        "AGID_QUEUE_DISPLAY_NAME": None,
        "AGID_QUEUE_TIMEOUT": None,
        "AGID_QUEUE_MUSIC": None,
        "AGID_QUEUE_ANNOUNCE_POSITION": None,
    }
    try:
        if ref.isdigit():
            queue = await db_call(session, partial(read.queue, queue_id=int(ref)))
        else:
            queue = await db_call(session, partial(read.queue, name=ref))
    except DBUnavailable as exc:
        out["AGID_QUEUE_ACTION"] = "DEFAULT"
        out["AGID_QUEUE_NAME"] = None if ref.isdigit() else ref
        finish(session, out, f"database unavailable: {exc}", degraded=True)
        return
    if queue is None:
        out["AGID_QUEUE_ACTION"] = "NONE"
        finish(session, out, f"no queue {ref}")
        return
    out["AGID_QUEUE_NAME"] = queue.name
    out["AGID_QUEUE_DISPLAY_NAME"] = queue.display_name
    out["AGID_QUEUE_TIMEOUT"] = queue.max_wait_seconds or ""
    out["AGID_QUEUE_MUSIC"] = queue.music_class
    out["AGID_QUEUE_ANNOUNCE_POSITION"] = "yes" if queue.announce_position else "no"
    action, cause = "QUEUE", ""
    if queue.max_waiting:
        waiting = await channel_value(session, f"${{QUEUE_WAITING_COUNT({queue.name})}}")
        if waiting is not None and waiting.isdigit() and int(waiting) >= queue.max_waiting:
            action, cause = "FULL", f"{waiting} callers waiting (max_waiting {queue.max_waiting})"
    out["AGID_QUEUE_ACTION"] = action
    finish(session, out, cause)
