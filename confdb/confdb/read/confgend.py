"""confgend's read model: one consistent snapshot of everything Asterisk's configuration is made of, read
as role ``pbx_confgend`` (see confdb.roles.READ_GRANTS; every query selects only granted tables).

`load_snapshot(conn)` runs a handful of plain queries in one REPEATABLE READ transaction, so all the files
generated from one snapshot agree with each other. Rows come back as frozen, slotted dataclasses; the
generators never see a connection. Timeouts and pooling belong to the caller.
"""

from __future__ import annotations

import gc
import json
import threading
from dataclasses import dataclass, field
from datetime import time
from typing import Any

import psycopg
import psycopg.sql

from confdb.read.common import Member, Queue


@dataclass(frozen=True, slots=True)
class Context:
    id: int
    name: str
    type: str
    includes: tuple[str, ...] = ()  # included context names, in position order


@dataclass(frozen=True, slots=True)
class Voicemail:
    id: int
    context: str
    mailbox: str
    fullname: str
    email: str | None
    pin: str
    language: str | None
    attach_audio: bool
    delete_after_email: bool
    max_messages: int
    enabled: bool


@dataclass(frozen=True, slots=True)
class User:
    id: int
    firstname: str
    lastname: str
    callerid_name: str
    callerid_num: str | None
    language: str
    ring_seconds: int
    enabled: bool
    voicemail_id: int | None
    lines: tuple[int, ...] = ()  # line ids, main line first


@dataclass(frozen=True, slots=True)
class Line:
    id: int
    name: str
    auth_username: str
    secret_ha1: str
    realm: str
    context: str
    codecs: tuple[str, ...]
    max_contacts: int
    enabled: bool
    main_user_id: int | None
    user_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Extension:
    context: str
    exten: str
    type: str  # user, group, queue, voicemail, service
    user_id: int | None = None
    group_id: int | None = None
    queue_id: int | None = None
    voicemail_id: int | None = None
    service: str | None = None


@dataclass(frozen=True, slots=True)
class Agent:
    id: int
    number: str
    firstname: str
    lastname: str
    language: str
    wrapup_seconds: int


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    name: str
    display_name: str
    strategy: str
    ring_seconds: int
    ring_in_use: bool
    members: tuple[Member, ...] = ()  # user members, in position order


@dataclass(frozen=True, slots=True)
class Destination:
    type: str  # user group queue voicemail number hangup
    id: int | None = None
    number: str | None = None


@dataclass(frozen=True, slots=True)
class Period:
    weekdays: tuple[int, ...]  # ISO 1..7
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Schedule:
    id: int
    name: str
    timezone: str
    closed: Destination
    periods: tuple[Period, ...] = ()


@dataclass(frozen=True, slots=True)
class Trunk:
    id: int
    name: str
    host: str
    transport: str
    context: str
    codecs: tuple[str, ...]
    register: bool
    auth_username: str | None
    auth_password: str | None
    from_user: str | None
    identify_match: tuple[str, ...]
    enabled: bool


@dataclass(frozen=True, slots=True)
class Incall:
    id: int
    did: str
    context: str
    dest: Destination
    schedule_id: int | None
    callerid_name_prefix: str


@dataclass(frozen=True, slots=True)
class OutcallPattern:
    pattern: str
    strip: int
    prefix: str
    callerid: str | None


@dataclass(frozen=True, slots=True)
class Outcall:
    id: int
    name: str
    context: str
    internal_callerid: bool
    ring_seconds: int
    patterns: tuple[OutcallPattern, ...] = ()
    trunks: tuple[str, ...] = ()  # trunk names, in position order


@dataclass(frozen=True)
class Snapshot:
    contexts: tuple[Context, ...] = ()
    voicemails: tuple[Voicemail, ...] = ()
    users: tuple[User, ...] = ()
    lines: tuple[Line, ...] = ()
    extensions: tuple[Extension, ...] = ()
    agents: tuple[Agent, ...] = ()
    queues: tuple[Queue, ...] = ()
    groups: tuple[Group, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    trunks: tuple[Trunk, ...] = ()
    incalls: tuple[Incall, ...] = ()
    outcalls: tuple[Outcall, ...] = ()
    _index: dict[str, dict[int, Any]] = field(default_factory=dict, compare=False, repr=False)

    def by_id(self, kind: str) -> dict[int, Any]:
        """`{id: row}` of users, lines, voicemails, agents, queues, groups or schedules (built once)."""
        index = self._index.get(kind)
        if index is None:
            index = {row.id: row for row in getattr(self, kind)}
            self._index[kind] = index
        return index


# ----------------------------------------------------------------------------------------------- queries
# Text is ordered COLLATE "C": byte order is stable across locales and sorts 10,000 names several times
# faster than a linguistic collation.

_CONTEXTS = 'SELECT id, name, type FROM contexts ORDER BY name COLLATE "C"'
_INCLUDES = """
SELECT ci.context_id, c.name FROM context_includes ci JOIN contexts c ON c.id = ci.included_context_id
 ORDER BY ci.context_id, ci.position, c.name COLLATE "C" """
_VOICEMAILS = """
SELECT id, context, mailbox, fullname, email, pin, language, attach_audio, delete_after_email, max_messages,
       enabled FROM voicemails ORDER BY context COLLATE "C", mailbox COLLATE "C" """
# users also holds the CTI login and password hash and the call forwards, which confgend has no use for:
# pbx_confgend may read only these columns of it (COLUMNS, confdb.roles), in User's order.
USER_COLUMNS = (
    "id", "firstname", "lastname", "callerid_name", "callerid_num", "language", "ring_seconds", "enabled",
    "voicemail_id",
)  # fmt: skip
_USERS = f"SELECT {', '.join(USER_COLUMNS)} FROM users ORDER BY id"
_USER_LINES = "SELECT user_id, line_id, main_user, main_line FROM user_lines ORDER BY line_id, user_id"
_LINES = """
SELECT l.id, l.name, l.auth_username, l.secret_ha1, l.realm, c.name AS context, l.codecs, l.max_contacts,
       l.enabled
  FROM lines l JOIN contexts c ON c.id = l.context_id ORDER BY l.name COLLATE "C" """
_EXTENSIONS = """
SELECT c.name, e.exten, e.type, e.user_id, e.group_id, e.queue_id, e.voicemail_id, e.service
  FROM extensions e JOIN contexts c ON c.id = e.context_id
 ORDER BY c.name COLLATE "C", e.exten COLLATE "C" """
_AGENTS = (
    'SELECT id, number, firstname, lastname, language, wrapup_seconds FROM agents ORDER BY number COLLATE "C"'
)
_QUEUES = """
SELECT id, name, display_name, strategy, member_timeout, retry_seconds, wrapup_seconds, max_waiting,
       max_wait_seconds, music_class, announce_position, weight FROM queues ORDER BY name COLLATE "C" """
_QUEUE_MEMBERS = """
SELECT queue_id, user_id, agent_id, penalty FROM queue_members
 ORDER BY queue_id, position, user_id NULLS LAST, agent_id"""
_GROUPS = (
    'SELECT id, name, display_name, strategy, ring_seconds, ring_in_use FROM groups ORDER BY name COLLATE "C"'
)
_GROUP_MEMBERS = "SELECT group_id, user_id, penalty FROM group_members ORDER BY group_id, position, user_id"
_SCHEDULES = """
SELECT id, name, timezone, closed_dest_type, closed_dest_id, closed_dest_number
  FROM schedules ORDER BY name COLLATE "C" """
_PERIODS = """
SELECT schedule_id, weekdays, start_time, end_time FROM schedule_periods
 ORDER BY schedule_id, id"""
_TRUNKS = """
SELECT t.id, t.name, t.host, t.transport, c.name AS context, t.codecs, t.register, t.auth_username,
       t.auth_password, t.from_user, t.identify_match::text[] AS identify_match, t.enabled
  FROM trunks t JOIN contexts c ON c.id = t.context_id ORDER BY t.name COLLATE "C" """
_INCALLS = """
SELECT i.id, i.did, c.name, i.dest_type, i.dest_id, i.dest_number, i.schedule_id, i.callerid_name_prefix
  FROM incalls i JOIN contexts c ON c.id = i.context_id ORDER BY c.name COLLATE "C", i.did COLLATE "C" """
_OUTCALLS = """
SELECT o.id, o.name, c.name AS context, o.internal_callerid, o.ring_seconds
  FROM outcalls o JOIN contexts c ON c.id = o.context_id ORDER BY o.name COLLATE "C" """
_OUTCALL_PATTERNS = """
SELECT outcall_id, pattern, strip, prefix, callerid FROM outcall_patterns
 ORDER BY outcall_id, pattern COLLATE "C" """
_OUTCALL_TRUNKS = """
SELECT ot.outcall_id, t.name FROM outcall_trunks ot JOIN trunks t ON t.id = ot.trunk_id
 ORDER BY ot.outcall_id, ot.position"""

# Every table the snapshot reads: confdb.roles grants pbx_confgend SELECT on exactly these (on COLUMNS
# only, for the tables named there).
TABLES = (
    "contexts",
    "context_includes",
    "voicemails",
    "users",
    "lines",
    "user_lines",
    "extensions",
    "agents",
    "queues",
    "queue_members",
    "groups",
    "group_members",
    "schedules",
    "schedule_periods",
    "trunks",
    "incalls",
    "outcalls",
    "outcall_patterns",
    "outcall_trunks",
)
# The tables of TABLES read in part: pbx_confgend is granted only these columns of them.
COLUMNS: dict[str, tuple[str, ...]] = {"users": USER_COLUMNS}


def _as_json(conn: psycopg.Connection[Any], query: str) -> str:
    """`query` rewritten to return its rows as ONE json value (`json_agg` of arrays).

    Not a plain cursor: bookworm's psycopg has no C speedups and converts each value through ctypes, about
    3 us a value, 1.2 s for the 400,000 values of 10,000 users; one JSON document of arrays costs a tenth.
    """
    wrapped = _JSON_QUERIES.get(query)
    if wrapped is None:
        cur = conn.execute(f"SELECT * FROM ({query}) x LIMIT 0")
        names = [col.name for col in cur.description or ()]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate column names in {query!r}")
        cols = ", ".join(f"x.{psycopg.sql.Identifier(n).as_string(conn)}" for n in names)
        wrapped = f"SELECT coalesce(json_agg(json_build_array({cols})), '[]'::json)::text FROM ({query}) x"
        _JSON_QUERIES[query] = wrapped
    return wrapped


_JSON_QUERIES: dict[str, str] = {}  # query -> its json_agg form (derived from constant queries only)
# In the order _load reads them: they are all sent at once (pipeline), and each result is parsed while
# PostgreSQL computes the next ones.
_QUERIES = (
    _INCLUDES, _CONTEXTS, _VOICEMAILS, _USER_LINES, _USERS, _LINES, _EXTENSIONS, _AGENTS, _QUEUE_MEMBERS,
    _QUEUES, _GROUP_MEMBERS, _GROUPS, _PERIODS, _SCHEDULES, _TRUNKS, _INCALLS, _OUTCALL_PATTERNS,
    _OUTCALL_TRUNKS, _OUTCALLS,
)  # fmt: skip


class _PausedGC:
    """The cyclic garbage collector off while a snapshot is built: its hundreds of thousands of new
    objects (no cycles among them) trigger collections that cost a third of the snapshot. Counted, so
    that concurrent snapshots in several threads re-enable it only when the last one ends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0

    def __enter__(self) -> None:
        with self.lock:
            if self.depth == 0 and gc.isenabled():
                gc.disable()
                self.depth = 1
            elif self.depth:
                self.depth += 1

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            if self.depth:
                self.depth -= 1
                if self.depth == 0:
                    gc.enable()


paused_gc = _PausedGC()


def _grouped(rows: list[tuple[Any, ...]]) -> dict[Any, list[tuple[Any, ...]]]:
    out: dict[Any, list[tuple[Any, ...]]] = {}
    for row in rows:
        out.setdefault(row[0], []).append(row[1:])
    return out


def load_snapshot(conn: psycopg.Connection[Any]) -> Snapshot:
    """Read everything in one REPEATABLE READ, read-only transaction (the connection's state is restored)."""
    previous = conn.autocommit
    conn.autocommit = False
    try:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            wrapped = [_as_json(conn, query) for query in _QUERIES]
            with paused_gc, conn.pipeline():
                cursors = {
                    query: conn.cursor().execute(w) for query, w in zip(_QUERIES, wrapped, strict=True)
                }
                return _load(cursors)
        finally:
            conn.rollback()
    finally:
        conn.autocommit = previous


def _load(cursors: dict[str, psycopg.Cursor[Any]]) -> Snapshot:
    def rows(query: str) -> list[list[Any]]:
        row = cursors[query].fetchone()
        assert row is not None
        return json.loads(row[0])

    includes = _grouped(rows(_INCLUDES))
    contexts = tuple(
        Context(cid, name, type_, tuple(r[0] for r in includes.get(cid, ())))
        for cid, name, type_ in rows(_CONTEXTS)
    )
    voicemails = tuple(Voicemail(*r) for r in rows(_VOICEMAILS))

    user_lines = rows(_USER_LINES)
    lines_of_user: dict[int, list[tuple[bool, int]]] = {}
    users_of_line: dict[int, list[int]] = {}
    main_user: dict[int, int] = {}
    for user_id, line_id, is_main_user, is_main_line in user_lines:
        lines_of_user.setdefault(user_id, []).append((not is_main_line, line_id))
        users_of_line.setdefault(line_id, []).append(user_id)
        if is_main_user:
            main_user[line_id] = user_id
    users = tuple(
        User(*r, lines=tuple(lid for _, lid in sorted(lines_of_user.get(r[0], ())))) for r in rows(_USERS)
    )
    lines = tuple(
        Line(
            lid,
            name,
            auth,
            ha1,
            realm,
            ctx,
            tuple(codecs),
            maxc,
            enabled,
            main_user.get(lid),
            tuple(users_of_line.get(lid, ())),
        )
        for lid, name, auth, ha1, realm, ctx, codecs, maxc, enabled in rows(_LINES)
    )
    extensions = tuple(Extension(*r) for r in rows(_EXTENSIONS))
    agents = tuple(Agent(*r) for r in rows(_AGENTS))

    qmembers = _grouped(rows(_QUEUE_MEMBERS))
    queues = tuple(
        Queue(*r, members=tuple(Member(*m) for m in qmembers.get(r[0], ()))) for r in rows(_QUEUES)
    )
    gmembers = _grouped(rows(_GROUP_MEMBERS))
    groups = tuple(
        Group(*r, members=tuple(Member(uid, None, pen) for uid, pen in gmembers.get(r[0], ())))
        for r in rows(_GROUPS)
    )
    periods = _grouped(rows(_PERIODS))
    schedules = tuple(
        Schedule(
            sid,
            name,
            tz,
            Destination(dtype, did, dnum),
            tuple(
                Period(tuple(sorted(w)), time.fromisoformat(s), time.fromisoformat(e))
                for w, s, e in periods.get(sid, ())
            ),
        )
        for sid, name, tz, dtype, did, dnum in rows(_SCHEDULES)
    )
    trunks = tuple(
        Trunk(tid, name, host, tr, ctx, tuple(codecs), reg, au, ap, fu, tuple(match), en)
        for tid, name, host, tr, ctx, codecs, reg, au, ap, fu, match, en in rows(_TRUNKS)
    )
    incalls = tuple(
        Incall(iid, did, ctx, Destination(dt, di, dn), sched, prefix)
        for iid, did, ctx, dt, di, dn, sched, prefix in rows(_INCALLS)
    )
    patterns = _grouped(rows(_OUTCALL_PATTERNS))
    otrunks = _grouped(rows(_OUTCALL_TRUNKS))
    outcalls = tuple(
        Outcall(
            *r,
            patterns=tuple(OutcallPattern(*p) for p in patterns.get(r[0], ())),
            trunks=tuple(t[0] for t in otrunks.get(r[0], ())),
        )
        for r in rows(_OUTCALLS)
    )
    return Snapshot(
        contexts=contexts,
        voicemails=voicemails,
        users=users,
        lines=lines,
        extensions=extensions,
        agents=agents,
        queues=queues,
        groups=groups,
        schedules=schedules,
        trunks=trunks,
        incalls=incalls,
        outcalls=outcalls,
    )
