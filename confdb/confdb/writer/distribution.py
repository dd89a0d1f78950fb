"""What ring groups and queues share: settings tables, the numbered object's row, and member checks.

`kind` is the object and extension type ("group", "queue"); its table is `<kind>s`, its members sit in
`<kind>_members` keyed by `<kind>_id`. `label` is how messages name it ("ring group", "queue").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import psycopg

from confdb import events, validation
from confdb.validation import ValidationError
from confdb.writer import extensions, references
from confdb.writer.errors import Conflict, NotFound

Checker = Callable[[str, Any], Any]
Validator = Callable[[Mapping[str, Any]], dict[str, Any]]

MAX_ID = 2**31 - 1


def bounded(minimum: int, maximum: int) -> Checker:
    """A settings-table checker for a whole number from `minimum` to `maximum` (seconds, counts)."""
    return lambda f, v: validation.integer(f, v, minimum=minimum, maximum=maximum)


def field_validator(fields: Mapping[str, Checker], kind: str, label: str) -> Validator:
    """Check a mapping of settings against `fields`, naming each as `<kind>.<name>`; unknown names refused."""

    def validate_fields(values: Mapping[str, Any]) -> dict[str, Any]:
        clean: dict[str, Any] = {}
        for name, value in values.items():
            checker = fields.get(name)
            if checker is None:
                raise ValidationError(f"{kind}.{name}", f"is not a {label} setting")
            clean[name] = checker(f"{kind}.{name}", value)
        return clean

    return validate_fields


def object_id(conn: psycopg.Connection[Any], kind: str, label: str, name: str) -> int:
    row = conn.execute(f"SELECT id FROM {kind}s WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"{label} {validation.shown(name)} does not exist")
    return int(row[0])


def create_object(
    conn: psycopg.Connection[Any],
    kind: str,
    label: str,
    values: dict[str, Any],
    exten: str | None,
    context: str,
) -> int:
    """Insert validated `values` (a unique name), emit `<kind>.created`, add the extension when given."""
    if conn.execute(f"SELECT 1 FROM {kind}s WHERE name = %s", (values["name"],)).fetchone():
        raise Conflict(f"{label} {values['name']!r} already exists")
    columns, marks = ", ".join(values), ", ".join(["%s"] * len(values))
    row = conn.execute(
        f"INSERT INTO {kind}s ({columns}) VALUES ({marks}) RETURNING id", list(values.values())
    ).fetchone()
    assert row is not None
    new_id = int(row[0])
    events.emit(conn, kind, "created", id=new_id, name=values["name"])
    if exten is not None:
        extensions.add_extension(conn, kind, new_id, exten, context)
    return new_id


def delete_object(conn: psycopg.Connection[Any], kind: str, label: str, name: str) -> None:
    """Delete with its extension and members; refused while an incall or schedule uses it."""
    target = object_id(conn, kind, label, name)
    with references.refusing_referenced(conn, kind, target, f"{label} {name!r}"):
        extensions.remove_extensions(conn, kind, target)
        conn.execute(f"DELETE FROM {kind}s WHERE id = %s", (target,))
    events.emit(conn, kind, "deleted", id=target, name=name)


# -- members ---------------------------------------------------------------------------------------------
# `column` is the member's key in `<kind>_members`: "user_id" or "agent_id"; messages name it "user 7".


def member_id(kind: str, column: str, value: Any) -> int:
    return validation.integer(f"{kind}_member.{column}", value, minimum=1, maximum=MAX_ID)


def penalty(kind: str, value: Any) -> int:
    return validation.integer(f"{kind}_member.penalty", value, minimum=0, maximum=99)


def position(kind: str, value: Any) -> int:
    return validation.integer(f"{kind}_member.position", value, minimum=0, maximum=9999)


def insert_member(
    conn: psycopg.Connection[Any],
    kind: str,
    label: str,
    name: str,
    target: int,
    column: str,
    member: int,
    penalty: int,
    position: int | None = None,
) -> None:
    """Add an existing user or agent not yet a member; without `position`, after the current members."""
    table = "users" if column == "user_id" else "agents"
    if not conn.execute(f"SELECT 1 FROM {table} WHERE id = %s", (member,)).fetchone():
        raise NotFound(f"{column[:-3]} {member} does not exist")
    if conn.execute(
        f"SELECT 1 FROM {kind}_members WHERE {kind}_id = %s AND {column} = %s", (target, member)
    ).fetchone():
        raise Conflict(f"{column[:-3]} {member} is already a member of {label} {name!r}")
    conn.execute(
        f"INSERT INTO {kind}_members ({kind}_id, {column}, penalty, position) VALUES (%s, %s, %s, "
        f" coalesce(%s, (SELECT coalesce(max(position) + 1, 0) FROM {kind}_members WHERE {kind}_id = %s)))",
        (target, member, penalty, position, target),
    )


def update_member(
    conn: psycopg.Connection[Any],
    kind: str,
    label: str,
    name: str,
    target: int,
    column: str,
    member: int,
    values: dict[str, int],
) -> None:
    """Set validated `values` on one membership; NotFound when it is not a member."""
    cursor = conn.execute(
        f"UPDATE {kind}_members SET {', '.join(f'{c} = %s' for c in values)} "
        f"WHERE {kind}_id = %s AND {column} = %s",
        [*values.values(), target, member],
    )
    if cursor.rowcount == 0:
        raise NotFound(f"{column[:-3]} {member} is not a member of {label} {name!r}")


def delete_member(
    conn: psycopg.Connection[Any], kind: str, label: str, name: str, target: int, column: str, member: int
) -> None:
    cursor = conn.execute(
        f"DELETE FROM {kind}_members WHERE {kind}_id = %s AND {column} = %s", (target, member)
    )
    if cursor.rowcount == 0:
        raise NotFound(f"{column[:-3]} {member} is not a member of {label} {name!r}")
