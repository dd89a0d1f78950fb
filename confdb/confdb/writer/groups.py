"""Ring groups: users whose phones ring together (ringall) or in turn (linear, by position)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row

from confdb import events, validation
from confdb.writer import destinations, distribution

GROUP_FIELDS: Mapping[str, distribution.Checker] = {
    "name": validation.identifier,
    "display_name": lambda f, v: validation.text(f, v),
    "strategy": lambda f, v: validation.choice(f, v, validation.GROUP_STRATEGIES),
    "ring_seconds": distribution.bounded(5, 600),
    "ring_in_use": validation.boolean,
}

validate_fields = distribution.field_validator(GROUP_FIELDS, "group", "ring group")


def group_id(conn: psycopg.Connection[Any], name: str) -> int:
    return distribution.object_id(conn, "group", "ring group", name)


def create_group(
    conn: psycopg.Connection[Any],
    name: str,
    display_name: str,
    *,
    strategy: str = "ringall",
    ring_seconds: int = 30,
    ring_in_use: bool = False,
    exten: str | None = None,
    context: str = "internal",
) -> int:
    """Create a ring group; with `exten`, an extension of type 'group' in internal `context` reaches it."""
    values = validate_fields(
        {
            "name": name,
            "display_name": display_name,
            "strategy": strategy,
            "ring_seconds": ring_seconds,
            "ring_in_use": ring_in_use,
        }
    )
    return distribution.create_object(conn, "group", "ring group", values, exten, context)


def update_group(conn: psycopg.Connection[Any], name: str, /, **changes: Any) -> list[str]:
    """Change GROUP_FIELDS settings; `exten` (None or "" removes it) and `context` move its extension."""
    return destinations.update_numbered(
        conn, "group", "ring group", group_id(conn, name), name, changes, validate_fields
    )


def delete_group(conn: psycopg.Connection[Any], name: str) -> None:
    """Delete a ring group with its extension and members; refused while an incall or schedule uses it."""
    distribution.delete_object(conn, "group", "ring group", name)


def list_groups(conn: psycopg.Connection[Any], group: int | None = None) -> list[dict[str, Any]]:
    """Ring groups by name (only id `group` when given); extensions a list, members a count."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT g.id, g.name, g.display_name, g.strategy, g.ring_seconds, g.ring_in_use, "
        "  coalesce((SELECT array_agg(e.exten || '@' || c.name ORDER BY e.exten) FROM extensions e "
        "     JOIN contexts c ON c.id = e.context_id WHERE e.group_id = g.id), '{}') AS extensions, "
        "  (SELECT count(*) FROM group_members m WHERE m.group_id = g.id)::int AS members "
        "FROM groups g WHERE %(id)s::int IS NULL OR g.id = %(id)s::int ORDER BY g.name",
        {"id": group},
    ).fetchall()


# -- members ---------------------------------------------------------------------------------------------


def add_member(
    conn: psycopg.Connection[Any],
    group_name: str,
    user_id: int,
    *,
    penalty: int = 0,
    position: int | None = None,
) -> None:
    """Add a user; without `position` it rings after the current members (linear strategy)."""
    target = group_id(conn, group_name)
    user_id = distribution.member_id("group", "user_id", user_id)
    penalty = distribution.penalty("group", penalty)
    if position is not None:
        position = distribution.position("group", position)
    distribution.insert_member(
        conn, "group", "ring group", group_name, target, "user_id", user_id, penalty, position
    )
    events.emit(conn, "group_member", "created", group_id=target, group=group_name, user_id=user_id)


def update_member(
    conn: psycopg.Connection[Any],
    group_name: str,
    user_id: int,
    *,
    penalty: int | None = None,
    position: int | None = None,
) -> list[str]:
    target = group_id(conn, group_name)
    values: dict[str, int] = {}
    if penalty is not None:
        values["penalty"] = distribution.penalty("group", penalty)
    if position is not None:
        values["position"] = distribution.position("group", position)
    if not values:
        return []
    distribution.update_member(conn, "group", "ring group", group_name, target, "user_id", user_id, values)
    events.emit(
        conn,
        "group_member",
        "updated",
        group_id=target,
        group=group_name,
        user_id=user_id,
        fields=sorted(values),
    )
    return sorted(values)


def remove_member(conn: psycopg.Connection[Any], group_name: str, user_id: int) -> None:
    target = group_id(conn, group_name)
    distribution.delete_member(conn, "group", "ring group", group_name, target, "user_id", user_id)
    events.emit(conn, "group_member", "deleted", group_id=target, group=group_name, user_id=user_id)


def list_members(conn: psycopg.Connection[Any], group_name: str) -> list[dict[str, Any]]:
    """Members in ring order: user id, extension, name, penalty, position."""
    target = group_id(conn, group_name)
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT u.id AS user_id, (SELECT min(e.exten) FROM extensions e WHERE e.user_id = u.id) AS exten, "
        "  trim(u.firstname || ' ' || u.lastname) AS name, m.penalty, m.position "
        "FROM group_members m JOIN users u ON u.id = m.user_id WHERE m.group_id = %s "
        "ORDER BY m.position, u.id",
        (target,),
    ).fetchall()
