"""Call queues (app_queue) and their members: users (their phones ring) or agents (who log in anywhere)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row

from confdb import events, validation
from confdb.validation import ValidationError
from confdb.writer import destinations, distribution

# Every settable queue column with its validator; creation and update share this table.
QUEUE_FIELDS: Mapping[str, distribution.Checker] = {
    "name": validation.identifier,
    "display_name": lambda f, v: validation.text(f, v),
    "strategy": lambda f, v: validation.choice(f, v, validation.QUEUE_STRATEGIES),
    "member_timeout": distribution.bounded(1, 600),
    "retry_seconds": distribution.bounded(0, 600),
    "wrapup_seconds": distribution.bounded(0, 3600),
    "max_waiting": distribution.bounded(0, 10000),
    "max_wait_seconds": distribution.bounded(0, 86400),
    "music_class": validation.identifier,
    "announce_position": validation.boolean,
    "weight": distribution.bounded(0, 100),
}

validate_fields = distribution.field_validator(QUEUE_FIELDS, "queue", "queue")


def queue_id(conn: psycopg.Connection[Any], name: str) -> int:
    return distribution.object_id(conn, "queue", "queue", name)


def create_queue(
    conn: psycopg.Connection[Any],
    name: str,
    display_name: str,
    *,
    strategy: str = "ringall",
    member_timeout: int = 15,
    retry_seconds: int = 5,
    wrapup_seconds: int = 0,
    max_waiting: int = 0,
    max_wait_seconds: int = 0,
    music_class: str = "default",
    announce_position: bool = False,
    weight: int = 0,
    exten: str | None = None,
    context: str = "internal",
) -> int:
    """Create a queue; with `exten`, an extension of type 'queue' in the internal `context` reaches it."""
    values = validate_fields(
        {
            "name": name,
            "display_name": display_name,
            "strategy": strategy,
            "member_timeout": member_timeout,
            "retry_seconds": retry_seconds,
            "wrapup_seconds": wrapup_seconds,
            "max_waiting": max_waiting,
            "max_wait_seconds": max_wait_seconds,
            "music_class": music_class,
            "announce_position": announce_position,
            "weight": weight,
        }
    )
    return distribution.create_object(conn, "queue", "queue", values, exten, context)


def update_queue(conn: psycopg.Connection[Any], name: str, /, **changes: Any) -> list[str]:
    """Change QUEUE_FIELDS settings; `exten` (None or "" removes it) and `context` move its extension.

    Returns the names of the changed settings.
    """
    return destinations.update_numbered(
        conn, "queue", "queue", queue_id(conn, name), name, changes, validate_fields
    )


def delete_queue(conn: psycopg.Connection[Any], name: str) -> None:
    """Delete a queue with its extension and memberships; refused while an incall or schedule uses it."""
    distribution.delete_object(conn, "queue", "queue", name)


def list_queues(conn: psycopg.Connection[Any], queue: int | None = None) -> list[dict[str, Any]]:
    """Queues by name (only id `queue` when given); extensions a list, members a count."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT q.id, q.name, q.display_name, q.strategy, q.member_timeout, q.retry_seconds, "
        "  q.wrapup_seconds, q.max_waiting, q.max_wait_seconds, q.music_class, q.announce_position, "
        "  q.weight, "
        "  coalesce((SELECT array_agg(e.exten || '@' || c.name ORDER BY e.exten) FROM extensions e "
        "     JOIN contexts c ON c.id = e.context_id WHERE e.queue_id = q.id), '{}') AS extensions, "
        "  (SELECT count(*) FROM queue_members m WHERE m.queue_id = q.id)::int AS members "
        "FROM queues q WHERE %(id)s::int IS NULL OR q.id = %(id)s::int ORDER BY q.name",
        {"id": queue},
    ).fetchall()


# -- members ---------------------------------------------------------------------------------------------


def _member(user_id: int | None, agent_id: int | None) -> tuple[str, int]:
    if (user_id is None) == (agent_id is None):
        raise ValidationError("queue_member.user_id", "give exactly one of a user and an agent")
    if user_id is not None:
        return "user_id", distribution.member_id("queue", "user_id", user_id)
    return "agent_id", distribution.member_id("queue", "agent_id", agent_id)


def add_member(
    conn: psycopg.Connection[Any],
    queue_name: str,
    *,
    user_id: int | None = None,
    agent_id: int | None = None,
    penalty: int = 0,
) -> None:
    """Add a user or an agent to a queue, after its current members (position = order for linear)."""
    target = queue_id(conn, queue_name)
    column, member = _member(user_id, agent_id)
    penalty = distribution.penalty("queue", penalty)
    distribution.insert_member(conn, "queue", "queue", queue_name, target, column, member, penalty)
    events.emit(conn, "queue_member", "created", queue_id=target, queue=queue_name, **{column: member})


def update_member(
    conn: psycopg.Connection[Any],
    queue_name: str,
    *,
    user_id: int | None = None,
    agent_id: int | None = None,
    penalty: int,
) -> None:
    target = queue_id(conn, queue_name)
    column, member = _member(user_id, agent_id)
    values = {"penalty": distribution.penalty("queue", penalty)}
    distribution.update_member(conn, "queue", "queue", queue_name, target, column, member, values)
    events.emit(
        conn,
        "queue_member",
        "updated",
        queue_id=target,
        queue=queue_name,
        fields=["penalty"],
        **{column: member},
    )


def remove_member(
    conn: psycopg.Connection[Any], queue_name: str, *, user_id: int | None = None, agent_id: int | None = None
) -> None:
    target = queue_id(conn, queue_name)
    column, member = _member(user_id, agent_id)
    distribution.delete_member(conn, "queue", "queue", queue_name, target, column, member)
    events.emit(conn, "queue_member", "deleted", queue_id=target, queue=queue_name, **{column: member})


def list_members(conn: psycopg.Connection[Any], queue_name: str) -> list[dict[str, Any]]:
    """Members in queue order: kind (user or agent), id, number (extension or agent number), name, penalty."""
    target = queue_id(conn, queue_name)
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT CASE WHEN m.user_id IS NOT NULL THEN 'user' ELSE 'agent' END AS kind, "
        "  coalesce(m.user_id, m.agent_id) AS id, "
        "  coalesce(a.number, (SELECT min(e.exten) FROM extensions e WHERE e.user_id = u.id)) AS number, "
        "  coalesce(trim(u.firstname || ' ' || u.lastname), trim(a.firstname || ' ' || a.lastname)) AS name, "
        "  m.penalty, m.position "
        "FROM queue_members m LEFT JOIN users u ON u.id = m.user_id LEFT JOIN agents a ON a.id = m.agent_id "
        "WHERE m.queue_id = %s ORDER BY m.position, kind, id",
        (target,),
    ).fetchall()
