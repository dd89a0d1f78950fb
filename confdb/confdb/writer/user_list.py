"""Users as `pbx-admin user list` and `user show` print them: one shape for both, filters and paging."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from confdb import validation
from confdb.writer.errors import NotFound

MAX_LIMIT = 100_000

_SELECT = """
SELECT u.id, u.uuid::text AS uuid, u.firstname, u.lastname, u.callerid_name, u.callerid_num, u.language,
  u.ring_seconds, u.simultaneous_calls, u.dnd, u.fwd_unconditional, u.fwd_unconditional_enabled,
  u.fwd_busy, u.fwd_busy_enabled, u.fwd_noanswer, u.fwd_noanswer_enabled, u.enabled, u.cti_login,
  coalesce((SELECT array_agg(e.exten || '@' || c.name ORDER BY c.name = 'internal' DESC, e.exten, c.name)
            FROM extensions e JOIN contexts c ON c.id = e.context_id WHERE e.user_id = u.id), '{}')
    AS extensions,
  coalesce((SELECT array_agg(l.name ORDER BY ul.main_line DESC, l.name)
            FROM user_lines ul JOIN lines l ON l.id = ul.line_id WHERE ul.user_id = u.id), '{}') AS lines,
  (SELECT l.name FROM user_lines ul JOIN lines l ON l.id = ul.line_id
    WHERE ul.user_id = u.id AND ul.main_line) AS main_line,
  v.mailbox, v.email
FROM users u LEFT JOIN voicemails v ON v.id = u.voicemail_id
"""
_HAS_EXTEN = (
    "EXISTS (SELECT 1 FROM extensions e JOIN contexts c ON c.id = e.context_id WHERE e.user_id = u.id"
)


@dataclass(frozen=True)
class UserFilter:
    """Which users `list_users` returns: every condition given must hold."""

    user_id: int | None = None
    name: str | None = None  # a substring of "firstname lastname" or of the caller-ID name, any case
    exten: str | None = None  # an extension of the user (in `context` when given too)
    context: str | None = None  # a context the user has an extension in
    limit: int | None = None
    offset: int = 0


def _contains(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, its wildcards taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _where(found: UserFilter) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if found.user_id is not None:
        clauses.append("u.id = %(id)s")
        params["id"] = found.user_id
    if found.name is not None:
        params["name"] = _contains(validation.text("user.name", found.name))
        clauses.append("(u.firstname || ' ' || u.lastname ILIKE %(name)s OR u.callerid_name ILIKE %(name)s)")
    if found.exten is not None or found.context is not None:
        extra = []
        if found.exten is not None:
            params["exten"] = validation.extension("user.exten", found.exten)
            extra.append("e.exten = %(exten)s")
        if found.context is not None:
            params["context"] = validation.identifier("user.context", found.context)
            extra.append("c.name = %(context)s")
        clauses.append(f"{_HAS_EXTEN} AND {' AND '.join(extra)})")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def list_users(conn: psycopg.Connection[Any], found: UserFilter = UserFilter()) -> list[dict[str, Any]]:
    """Users by id; extensions, lines (the main line first) are lists, a missing mailbox is None."""
    where, params = _where(found)
    params["limit"] = (
        None
        if found.limit is None
        else validation.integer("limit", found.limit, minimum=1, maximum=MAX_LIMIT)
    )
    params["offset"] = validation.integer("offset", found.offset, minimum=0, maximum=2**31 - 1)
    query = _SELECT + where + " ORDER BY u.id LIMIT %(limit)s OFFSET %(offset)s"
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()


def show_user(conn: psycopg.Connection[Any], user_id: int) -> dict[str, Any]:
    """One user, in the shape of list_users' rows."""
    rows = list_users(conn, UserFilter(user_id=user_id))
    if not rows:
        raise NotFound(f"user {user_id} does not exist")
    return rows[0]
