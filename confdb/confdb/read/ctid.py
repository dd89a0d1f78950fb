"""What ctid reads, with its role ``pbx_ctid`` (see roles.READ_GRANTS): users with their lines, agents.

Every function takes an open psycopg connection and returns plain dicts; none writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

_USERS = """
SELECT u.id, u.uuid::text, u.firstname, u.lastname, u.callerid_num, u.cti_login, u.cti_password_hash,
       u.enabled, u.dnd,
       COALESCE(array_agg(l.name ORDER BY ul.main_line DESC, l.id) FILTER (WHERE l.id IS NOT NULL), '{}')
         AS lines,
       (SELECT e.exten FROM extensions e WHERE e.user_id = u.id ORDER BY e.id LIMIT 1) AS exten,
       (SELECT c.name FROM user_lines m
          JOIN lines ml ON ml.id = m.line_id
          JOIN contexts c ON c.id = ml.context_id
         WHERE m.user_id = u.id AND m.main_line) AS context
  FROM users u
  LEFT JOIN user_lines ul ON ul.user_id = u.id
  LEFT JOIN lines l ON l.id = ul.line_id AND l.enabled
"""

_AGENTS = """
SELECT a.id, a.number, a.user_id,
       COALESCE(array_agg(q.name ORDER BY q.name) FILTER (WHERE q.id IS NOT NULL), '{}') AS queues
  FROM agents a
  LEFT JOIN queue_members m ON m.agent_id = a.id
  LEFT JOIN queues q ON q.id = m.queue_id
"""


def _user_row(row: tuple[Any, ...]) -> dict[str, Any]:
    (uid, uuid, first, last, cid_num, login, pw_hash, enabled, dnd, lines, exten, context) = row
    return {
        "id": uid,
        "uuid": uuid,
        "name": f"{first} {last}".strip(),
        "callerid_num": cid_num,
        "cti_login": login,
        "cti_password_hash": pw_hash,
        "enabled": enabled,
        "dnd": dnd,
        "lines": list(lines),
        "exten": exten,
        "context": context,
    }


def users(conn: psycopg.Connection[Any], ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Users (all, or those of ``ids`` that still exist) with their enabled lines, main line first."""
    if ids is None:
        rows = conn.execute(_USERS + " GROUP BY u.id ORDER BY u.id").fetchall()
    else:
        rows = conn.execute(
            _USERS + " WHERE u.id = ANY(%s) GROUP BY u.id ORDER BY u.id", [sorted(set(ids))]
        ).fetchall()
    return [_user_row(r) for r in rows]


def users_of_lines(conn: psycopg.Connection[Any], line_ids: Iterable[int]) -> list[int]:
    """Ids of the users linked to any of ``line_ids``."""
    rows = conn.execute(
        "SELECT DISTINCT user_id FROM user_lines WHERE line_id = ANY(%s) ORDER BY user_id",
        [sorted(set(line_ids))],
    ).fetchall()
    return [r[0] for r in rows]


def agents(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Agents with the names of the queues they are members of."""
    rows = conn.execute(_AGENTS + " GROUP BY a.id ORDER BY a.id").fetchall()
    return [{"id": r[0], "number": r[1], "user_id": r[2], "queues": list(r[3])} for r in rows]
