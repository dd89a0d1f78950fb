"""Ring groups: users whose phones ring together (ringall) or in turn (linear, by position)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row

from confdb import events, validation
from confdb.validation import ValidationError
from confdb.writer import destinations, extensions, references
from confdb.writer.errors import Conflict, NotFound

GROUP_FIELDS: Mapping[str, Callable[[str, Any], Any]] = {
    "name": validation.identifier,
    "display_name": lambda f, v: validation.text(f, v),
    "strategy": lambda f, v: validation.choice(f, v, validation.GROUP_STRATEGIES),
    "ring_seconds": lambda f, v: validation.integer(f, v, minimum=5, maximum=600),
    "ring_in_use": validation.boolean,
}


def validate_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in values.items():
        checker = GROUP_FIELDS.get(name)
        if checker is None:
            raise ValidationError(f"group.{name}", "is not a ring group setting")
        clean[name] = checker(f"group.{name}", value)
    return clean


def group_id(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute("SELECT id FROM groups WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"ring group {validation.shown(name)} does not exist")
    return int(row[0])


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
    if conn.execute("SELECT 1 FROM groups WHERE name = %s", (values["name"],)).fetchone():
        raise Conflict(f"ring group {values['name']!r} already exists")
    columns = list(values)
    row = conn.execute(
        f"INSERT INTO groups ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) RETURNING id",
        list(values.values()),
    ).fetchone()
    assert row is not None
    new_id = int(row[0])
    events.emit(conn, "group", "created", id=new_id, name=values["name"])
    if exten is not None:
        extensions.add_extension(conn, "group", new_id, exten, context)
    return new_id


def update_group(conn: psycopg.Connection[Any], name: str, /, **changes: Any) -> list[str]:
    """Change GROUP_FIELDS settings; `exten` (None or "" removes it) and `context` move its extension."""
    return destinations.update_numbered(
        conn, "group", "ring group", group_id(conn, name), name, changes, validate_fields
    )


def delete_group(conn: psycopg.Connection[Any], name: str) -> None:
    """Delete a ring group with its extension and members; refused while an incall or schedule uses it."""
    target = group_id(conn, name)
    with references.refusing_referenced(conn, "group", target, f"ring group {name!r}"):
        extensions.remove_extensions(conn, "group", target)
        conn.execute("DELETE FROM groups WHERE id = %s", (target,))
    events.emit(conn, "group", "deleted", id=target, name=name)


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
    user_id = validation.integer("group_member.user_id", user_id, minimum=1, maximum=2**31 - 1)
    penalty = validation.integer("group_member.penalty", penalty, minimum=0, maximum=99)
    if position is not None:
        position = validation.integer("group_member.position", position, minimum=0, maximum=9999)
    if not conn.execute("SELECT 1 FROM users WHERE id = %s", (user_id,)).fetchone():
        raise NotFound(f"user {user_id} does not exist")
    if conn.execute(
        "SELECT 1 FROM group_members WHERE group_id = %s AND user_id = %s", (target, user_id)
    ).fetchone():
        raise Conflict(f"user {user_id} is already a member of ring group {group_name!r}")
    conn.execute(
        "INSERT INTO group_members (group_id, user_id, penalty, position) VALUES (%s, %s, %s, "
        " coalesce(%s, (SELECT coalesce(max(position) + 1, 0) FROM group_members WHERE group_id = %s)))",
        (target, user_id, penalty, position, target),
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
        values["penalty"] = validation.integer("group_member.penalty", penalty, minimum=0, maximum=99)
    if position is not None:
        values["position"] = validation.integer("group_member.position", position, minimum=0, maximum=9999)
    if not values:
        return []
    if (
        conn.execute(
            f"UPDATE group_members SET {', '.join(f'{c} = %s' for c in values)} "
            "WHERE group_id = %s AND user_id = %s",
            [*values.values(), target, user_id],
        ).rowcount
        == 0
    ):
        raise NotFound(f"user {user_id} is not a member of ring group {group_name!r}")
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
    if (
        conn.execute(
            "DELETE FROM group_members WHERE group_id = %s AND user_id = %s", (target, user_id)
        ).rowcount
        == 0
    ):
        raise NotFound(f"user {user_id} is not a member of ring group {group_name!r}")
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
