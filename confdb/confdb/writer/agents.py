"""Call-centre agents: a number they log in with from any phone, optionally tied to a user."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row

from confdb import asterisk_values, events, validation
from confdb.validation import ValidationError
from confdb.writer.errors import Conflict, NotFound


def agent_number(field: str, value: object) -> str:
    value = validation.dialable(field, str(value) if isinstance(value, int) else value)
    if not asterisk_values.DIGITS.matches(value):
        raise ValidationError(field, f"{value!r} must be digits only (agents log in with it from a keypad)")
    return value


def _user_id(field: str, value: object) -> int | None:
    if value is None or value == "":
        return None
    return validation.integer(field, value, minimum=1, maximum=2**31 - 1)


AGENT_FIELDS: Mapping[str, Callable[[str, Any], Any]] = {
    "number": agent_number,
    "firstname": lambda f, v: validation.text(f, v),
    "lastname": lambda f, v: validation.text(f, v, required=False),
    "language": validation.language,
    "wrapup_seconds": lambda f, v: validation.integer(f, v, minimum=0, maximum=3600),
    "user_id": _user_id,
}


def validate_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in values.items():
        checker = AGENT_FIELDS.get(name)
        if checker is None:
            raise ValidationError(f"agent.{name}", "is not an agent setting")
        clean[name] = checker(f"agent.{name}", value)
    return clean


def agent_id(conn: psycopg.Connection[Any], number: str) -> int:
    row = conn.execute("SELECT id FROM agents WHERE number = %s", (str(number).strip(),)).fetchone()
    if row is None:
        raise NotFound(f"agent {validation.shown(number)} does not exist")
    return int(row[0])


def _check_user(conn: psycopg.Connection[Any], user_id: int | None, agent: int | None) -> None:
    if user_id is None:
        return
    if not conn.execute("SELECT 1 FROM users WHERE id = %s", (user_id,)).fetchone():
        raise NotFound(f"user {user_id} does not exist")
    other = conn.execute(
        "SELECT number FROM agents WHERE user_id = %s AND id IS DISTINCT FROM %s", (user_id, agent)
    ).fetchone()
    if other:
        raise Conflict(f"user {user_id} is already agent {other[0]}")


def create_agent(
    conn: psycopg.Connection[Any],
    number: str,
    firstname: str,
    lastname: str = "",
    *,
    language: str = "en_US",
    wrapup_seconds: int = 0,
    user_id: int | None = None,
) -> int:
    values = validate_fields(
        {
            "number": number,
            "firstname": firstname,
            "lastname": lastname,
            "language": language,
            "wrapup_seconds": wrapup_seconds,
            "user_id": user_id,
        }
    )
    if conn.execute("SELECT 1 FROM agents WHERE number = %s", (values["number"],)).fetchone():
        raise Conflict(f"agent {values['number']} already exists")
    _check_user(conn, values["user_id"], None)
    columns = list(values)
    row = conn.execute(
        f"INSERT INTO agents ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) RETURNING id",
        list(values.values()),
    ).fetchone()
    assert row is not None
    events.emit(conn, "agent", "created", id=row[0], number=values["number"])
    return int(row[0])


def update_agent(conn: psycopg.Connection[Any], number: str, /, **changes: Any) -> list[str]:
    """Change AGENT_FIELDS settings (user_id=None unties it from its user); returns the changed names."""
    target = agent_id(conn, number)
    values = validate_fields(changes)
    if not values:
        return []
    if (
        "number" in values
        and values["number"] != number
        and conn.execute("SELECT 1 FROM agents WHERE number = %s", (values["number"],)).fetchone()
    ):
        raise Conflict(f"agent {values['number']} already exists")
    if "user_id" in values:
        _check_user(conn, values["user_id"], target)
    conn.execute(
        f"UPDATE agents SET {', '.join(f'{c} = %s' for c in values)} WHERE id = %s",
        [*values.values(), target],
    )
    events.emit(
        conn, "agent", "updated", id=target, number=values.get("number", number), fields=sorted(values)
    )
    return sorted(values)


def delete_agent(conn: psycopg.Connection[Any], number: str) -> None:
    """Delete an agent; its queue memberships go with it."""
    target = agent_id(conn, number)
    for queue_id, queue in conn.execute(
        "DELETE FROM queue_members m USING queues q WHERE m.agent_id = %s AND q.id = m.queue_id "
        "RETURNING q.id, q.name",
        (target,),
    ).fetchall():
        events.emit(conn, "queue_member", "deleted", queue_id=queue_id, queue=queue, agent_id=target)
    conn.execute("DELETE FROM agents WHERE id = %s", (target,))
    events.emit(conn, "agent", "deleted", id=target, number=str(number).strip())


def list_agents(conn: psycopg.Connection[Any], agent: int | None = None) -> list[dict[str, Any]]:
    """Agents by number (only id `agent` when given); queues a list of names."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT a.id, a.number, a.firstname, a.lastname, a.language, a.wrapup_seconds, a.user_id, "
        "  coalesce((SELECT array_agg(q.name ORDER BY q.name) FROM queue_members m "
        "     JOIN queues q ON q.id = m.queue_id WHERE m.agent_id = a.id), '{}') AS queues "
        "FROM agents a WHERE %(id)s::int IS NULL OR a.id = %(id)s::int ORDER BY a.number",
        {"id": agent},
    ).fetchall()
