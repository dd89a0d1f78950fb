"""agid's read model: the queries of the FastAGI handlers, as role ``pbx_agid`` (see confdb.roles).

Every query selects only columns granted to ``pbx_agid`` (``READ_GRANTS``; a test checks it by running them
all under that role). Functions are coroutines over a ``psycopg.AsyncConnection`` in autocommit mode; they
return frozen dataclasses and never write. Timeouts, pooling and failure handling belong to the caller.

Interpreting this data the way Asterisk does is pure functions of its own: :mod:`confdb.patterns`
(which incall DID or outcall pattern a number takes) and :mod:`confdb.schedules` (whether a schedule is
open).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time
from typing import Any

from psycopg import AsyncConnection

from confdb.read.common import Queue

# ----------------------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class Line:
    name: str
    enabled: bool
    max_contacts: int


@dataclass(frozen=True)
class UserRouting:
    id: int
    firstname: str
    lastname: str
    callerid_name: str
    callerid_num: str | None
    language: str
    ring_seconds: int
    simultaneous_calls: int
    dnd: bool
    fwd_unconditional: str | None  # the destination when enabled, else None
    fwd_busy: str | None
    fwd_noanswer: str | None
    voicemail: str | None  # "mailbox@context" of an enabled box, else None
    enabled: bool
    lines: tuple[Line, ...]  # every line of the user, by line id


@dataclass(frozen=True)
class Destination:
    """Where a call goes: ``type`` user/group/queue/voicemail (with ``id``), number (``number``), hangup."""

    type: str
    id: int | None = None
    number: str | None = None


@dataclass(frozen=True)
class Incall:
    id: int
    did: str
    destination: Destination
    schedule_id: int | None
    callerid_name_prefix: str


@dataclass(frozen=True)
class Period:
    weekdays: tuple[int, ...]
    start: time
    end: time


@dataclass(frozen=True)
class Schedule:
    id: int
    name: str
    timezone: str
    closed: Destination
    periods: tuple[Period, ...]


@dataclass(frozen=True)
class OutcallRoute:
    """One outcall pattern with its outcall's settings and its enabled trunks in order."""

    outcall: str
    pattern: str
    strip: int
    prefix: str
    callerid: str | None
    internal_callerid: bool
    ring_seconds: int
    trunks: tuple[str, ...]


# ----------------------------------------------------------------------------------------------- users

_USER = (
    "SELECT u.id, u.firstname, u.lastname, u.callerid_name, u.callerid_num, u.language, u.ring_seconds, "
    "u.simultaneous_calls, u.dnd, u.fwd_unconditional_enabled, u.fwd_unconditional, u.fwd_busy_enabled, "
    "u.fwd_busy, u.fwd_noanswer_enabled, u.fwd_noanswer, u.enabled, "
    "CASE WHEN v.enabled THEN v.mailbox || '@' || v.context END, "
    "COALESCE((SELECT array_agg(ARRAY[l.name, l.enabled::text, l.max_contacts::text] ORDER BY l.id) "
    "          FROM user_lines ul JOIN lines l ON l.id = ul.line_id WHERE ul.user_id = u.id), '{}') "
    "FROM users u LEFT JOIN voicemails v ON v.id = u.voicemail_id "
)


def _user(row: Sequence[Any]) -> UserRouting:
    (uid, first, last, cid_name, cid_num, lang, ring, simult, dnd, fu_on, fu, fb_on, fb, fn_on, fn, enabled,
     vm, lines) = row  # fmt: skip
    return UserRouting(
        id=uid,
        firstname=first,
        lastname=last,
        callerid_name=cid_name,
        callerid_num=cid_num,
        language=lang,
        ring_seconds=ring,
        simultaneous_calls=simult,
        dnd=dnd,
        fwd_unconditional=fu if fu_on else None,
        fwd_busy=fb if fb_on else None,
        fwd_noanswer=fn if fn_on else None,
        voicemail=vm,
        enabled=enabled,
        lines=tuple(Line(name, flag == "true", int(contacts)) for name, flag, contacts in lines),
    )


async def users_by_id(conn: AsyncConnection[Any], user_ids: Sequence[int]) -> dict[int, UserRouting]:
    """The users among ``user_ids`` that exist, by id (a batch: agid gathers concurrent sessions)."""
    cur = await conn.execute(_USER + "WHERE u.id = ANY(%s)", (list(user_ids),))
    return {user.id: user for user in map(_user, await cur.fetchall())}


async def user_by_extension(conn: AsyncConnection[Any], exten: str, context: str) -> UserRouting | None:
    cur = await conn.execute(
        _USER + "JOIN extensions e ON e.user_id = u.id AND e.type = 'user' "
        "JOIN contexts c ON c.id = e.context_id WHERE e.exten = %s AND c.name = %s",
        (exten, context),
    )
    row = await cur.fetchone()
    return None if row is None else _user(row)


async def user_caller_id(conn: AsyncConnection[Any], user_id: int) -> tuple[str, str | None] | None:
    """``(callerid_name, callerid_num)`` of a user, for outgoing caller-ID presentation."""
    cur = await conn.execute("SELECT callerid_name, callerid_num FROM users WHERE id = %s", (user_id,))
    row = await cur.fetchone()
    return None if row is None else (row[0], row[1])


async def internal_names(
    conn: AsyncConnection[Any], candidates: Sequence[tuple[str, ...]]
) -> dict[tuple[str, ...], str]:
    """For each tuple of ``candidates`` (the forms of one caller number), the caller-ID name of the enabled
    user whose caller-ID number, else extension, is one of them (the lowest user id first); a batch."""
    numbers = sorted({number for forms in candidates for number in forms})
    cur = await conn.execute(
        "SELECT u.callerid_num, 0, u.id, u.callerid_name FROM users u "
        " WHERE u.enabled AND u.callerid_num = ANY(%s) "
        "UNION ALL "
        "SELECT e.exten, 1, u.id, u.callerid_name FROM extensions e JOIN users u ON u.id = e.user_id "
        " WHERE e.type = 'user' AND u.enabled AND e.exten = ANY(%s)",
        (numbers, numbers),
    )
    best: dict[str, tuple[int, int, str]] = {}  # number -> (rank, user id, name), the best per number
    for number, rank, user_id, name in await cur.fetchall():
        if number not in best or (rank, user_id) < best[number][:2]:
            best[number] = (rank, user_id, name)
    found: dict[tuple[str, ...], str] = {}
    for forms in candidates:
        matches = [best[number] for number in forms if number in best]
        if matches:
            found[forms] = min(matches)[2]
    return found


async def phonebook_names(conn: AsyncConnection[Any], numbers: Sequence[str]) -> dict[str, str]:
    """For each normalised number of ``numbers`` in the phonebook, the display name of its first entry (by
    number id); a batch."""
    # One index lookup per number (LATERAL). A join over "normalized = ANY(...)" gets a hash join over the
    # whole entries table when the planner guesses many rows per number. OFFSET 0 keeps each lookup on the
    # index of `normalized`: with ORDER BY id LIMIT 1 the planner may walk the primary key instead.
    cur = await conn.execute(
        "SELECT k.number, f.display_name FROM unnest(%s::text[]) AS k(number) CROSS JOIN LATERAL ("
        "  SELECT e.display_name FROM (SELECT id, entry_id FROM phonebook_numbers "
        "   WHERE normalized = k.number OFFSET 0) n JOIN phonebook_entries e ON e.id = n.entry_id "
        "  ORDER BY n.id LIMIT 1) f",
        (list(numbers),),
    )
    return dict(await cur.fetchall())


# --------------------------------------------------------------------------------------------- routing


def _destination(type_: str, id_: int | None, number: str | None) -> Destination:
    return Destination(type_, id_, number)


async def incalls(conn: AsyncConnection[Any], context: str, did: str) -> list[Incall]:
    """The incalls of ``context`` whose DID is ``did`` exactly or a pattern (the caller picks the best)."""
    cur = await conn.execute(
        "SELECT i.id, i.did, i.dest_type, i.dest_id, i.dest_number, i.schedule_id, i.callerid_name_prefix "
        "FROM incalls i JOIN contexts c ON c.id = i.context_id "
        "WHERE c.name = %s AND (i.did = %s OR i.did LIKE '\\_%%') ORDER BY i.id",
        (context, did),
    )
    return [
        Incall(row[0], row[1], _destination(row[2], row[3], row[4]), row[5], row[6])
        for row in await cur.fetchall()
    ]


async def schedule(
    conn: AsyncConnection[Any], *, schedule_id: int | None = None, name: str | None = None
) -> Schedule | None:
    cur = await conn.execute(
        "SELECT s.id, s.name, s.timezone, s.closed_dest_type, s.closed_dest_id, s.closed_dest_number, "
        "COALESCE((SELECT array_agg(ARRAY[array_to_string(p.weekdays, ','), p.start_time::text, "
        "          p.end_time::text] ORDER BY p.id) FROM schedule_periods p "
        "          WHERE p.schedule_id = s.id), '{}') "
        "FROM schedules s WHERE " + ("s.id = %s" if schedule_id is not None else "s.name = %s"),
        (schedule_id if schedule_id is not None else name,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    periods = tuple(
        Period(tuple(int(d) for d in days.split(",")), time.fromisoformat(start), time.fromisoformat(end))
        for days, start, end in row[6]
    )
    return Schedule(row[0], row[1], row[2], _destination(row[3], row[4], row[5]), periods)


async def outcall_routes(conn: AsyncConnection[Any], context: str) -> list[OutcallRoute]:
    """Every outcall pattern of the outcall context ``context``, with its enabled trunks in order."""
    cur = await conn.execute(
        "SELECT o.name, p.pattern, p.strip, p.prefix, p.callerid, o.internal_callerid, o.ring_seconds, "
        "COALESCE((SELECT array_agg(t.name ORDER BY ot.position) FROM outcall_trunks ot "
        "          JOIN trunks t ON t.id = ot.trunk_id WHERE ot.outcall_id = o.id AND t.enabled), '{}') "
        "FROM outcall_patterns p JOIN outcalls o ON o.id = p.outcall_id "
        "JOIN contexts c ON c.id = o.context_id "
        "WHERE c.name = %s ORDER BY p.id",
        (context,),
    )
    return [OutcallRoute(*row[:7], tuple(row[7])) for row in await cur.fetchall()]


_QUEUE = (
    "SELECT id, name, display_name, strategy, member_timeout, retry_seconds, wrapup_seconds, max_waiting, "
    "max_wait_seconds, music_class, announce_position, weight FROM queues "
)


async def queue(
    conn: AsyncConnection[Any], *, queue_id: int | None = None, name: str | None = None
) -> Queue | None:
    if queue_id is not None:
        cur = await conn.execute(_QUEUE + "WHERE id = %s", (queue_id,))
    else:
        cur = await conn.execute(_QUEUE + "WHERE name = %s", (name,))
    row = await cur.fetchone()
    return None if row is None else Queue(*row)


async def destination_argument(conn: AsyncConnection[Any], dest: Destination) -> str:
    """What the dialplan needs to reach ``dest``: a user id, a group or queue name, ``mailbox@context``, a
    number; empty for hangup or a target that no longer exists."""
    if dest.type == "user":
        return str(dest.id)
    if dest.type == "number":
        return dest.number or ""
    if dest.type == "group":
        cur = await conn.execute("SELECT name FROM groups WHERE id = %s", (dest.id,))
    elif dest.type == "queue":
        cur = await conn.execute("SELECT name FROM queues WHERE id = %s", (dest.id,))
    elif dest.type == "voicemail":
        cur = await conn.execute("SELECT mailbox || '@' || context FROM voicemails WHERE id = %s", (dest.id,))
    else:
        return ""
    row = await cur.fetchone()
    return "" if row is None else str(row[0])
