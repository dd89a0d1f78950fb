"""SIP lines and their links to users: many users per line, many lines per user, one main of each."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from confdb import events, passwords, validation
from confdb.writer.contexts import context_id
from confdb.writer.errors import Conflict, NotFound

DEFAULT_REALM = "pbx"
DEFAULT_CODECS = ("g722", "alaw", "ulaw")


@dataclass(frozen=True)
class NewLine:
    id: int
    name: str
    auth_username: str
    secret: str  # shown once; only its HA1 is stored


def _random_name() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def create_line(
    conn: psycopg.Connection[Any],
    *,
    context: str = "internal",
    name: str | None = None,
    codecs: list[str] | tuple[str, ...] = DEFAULT_CODECS,
    max_contacts: int = 1,
    realm: str = DEFAULT_REALM,
) -> NewLine:
    name = validation.identifier("line.name", name) if name else _random_name()
    codec_list = validation.codecs("line.codecs", list(codecs))
    max_contacts = validation.integer("line.max_contacts", max_contacts, minimum=1, maximum=10)
    realm = validation.identifier("line.realm", realm)
    ctx = context_id(
        conn, validation.identifier("line.context", context), expected_type="internal", field="line.context"
    )
    if conn.execute("SELECT 1 FROM lines WHERE name = %s OR auth_username = %s", (name, name)).fetchone():
        raise Conflict(f"line {name!r} already exists")
    secret = passwords.generate_sip_secret()
    row = conn.execute(
        "INSERT INTO lines (name, auth_username, secret_ha1, realm, context_id, codecs, max_contacts) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (name, name, passwords.sip_ha1(name, realm, secret), realm, ctx, codec_list, max_contacts),
    ).fetchone()
    assert row is not None
    events.emit(conn, "line", "created", id=row[0], name=name)
    return NewLine(int(row[0]), name, name, secret)


def line_id(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute("SELECT id FROM lines WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"line {validation.shown(name)} does not exist")
    return int(row[0])


# What update_line may change; the name is the SIP user name the secret's digest is made from, the realm
# too: changing them needs a new secret, so they are not here.
LINE_FIELDS = {
    "codecs": validation.codecs,
    "max_contacts": lambda f, v: validation.integer(f, v, minimum=1, maximum=10),
    "enabled": validation.boolean,
}


def update_line(conn: psycopg.Connection[Any], name: str, changes: dict[str, Any]) -> list[str]:
    """Change LINE_FIELDS settings, and `context` (an internal context, by name); returns what changed."""
    target = line_id(conn, name)
    changes = dict(changes)
    context = changes.pop("context", None)
    values: dict[str, Any] = {}
    for key, value in changes.items():
        checker = LINE_FIELDS.get(key)
        if checker is None:
            raise validation.ValidationError(f"line.{key}", "is not a line setting")
        values[key] = checker(f"line.{key}", value)
    if context is not None:
        values["context_id"] = context_id(
            conn,
            validation.identifier("line.context", context),
            expected_type="internal",
            field="line.context",
        )
    if not values:
        return []
    conn.execute(
        f"UPDATE lines SET {', '.join(f'{c} = %s' for c in values)} WHERE id = %s", [*values.values(), target]
    )
    changed = sorted("context" if c == "context_id" else c for c in values)
    events.emit(conn, "line", "updated", id=target, name=name, fields=changed)
    return changed


_SELECT = """
SELECT l.id, l.name, l.auth_username, l.realm, c.name AS context, l.codecs, l.max_contacts, l.enabled,
  d.mac::text AS device, l.device_position,
  coalesce((SELECT json_agg(json_build_object('id', u.id, 'name', trim(u.firstname || ' ' || u.lastname))
                            ORDER BY ul.main_user DESC, u.id)
            FROM user_lines ul JOIN users u ON u.id = ul.user_id WHERE ul.line_id = l.id), '[]') AS users,
  (SELECT ul.user_id FROM user_lines ul WHERE ul.line_id = l.id AND ul.main_user) AS main_user
FROM lines l JOIN contexts c ON c.id = l.context_id LEFT JOIN devices d ON d.id = l.device_id
"""


def list_lines(
    conn: psycopg.Connection[Any], *, line: int | None = None, user: int | None = None
) -> list[dict[str, Any]]:
    """Lines by name (only line id `line`, or the lines of user id `user`): users (the main one first) as
    {id, name} objects, codecs a list, device the MAC address of the phone carrying the line."""
    where, params = [], []
    if line is not None:
        where.append("l.id = %s")
        params.append(line)
    if user is not None:
        where.append("l.id IN (SELECT line_id FROM user_lines WHERE user_id = %s)")
        params.append(user)
    query = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY l.name"
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()


def reset_secret(conn: psycopg.Connection[Any], name: str) -> str:
    row = conn.execute("SELECT id, auth_username, realm FROM lines WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"line {validation.shown(name)} does not exist")
    secret = passwords.generate_sip_secret()
    conn.execute(
        "UPDATE lines SET secret_ha1 = %s WHERE id = %s", (passwords.sip_ha1(row[1], row[2], secret), row[0])
    )
    events.emit(conn, "line", "updated", id=row[0], name=name, fields=["secret"])
    return secret


def associate(conn: psycopg.Connection[Any], user_id: int, line_id: int) -> None:
    """Link a user to a line. The first user of a line is its main user; a user's first line is main."""
    if conn.execute(
        "SELECT 1 FROM user_lines WHERE user_id = %s AND line_id = %s", (user_id, line_id)
    ).fetchone():
        raise Conflict(f"user {user_id} is already on line {line_id}")
    conn.execute(
        "INSERT INTO user_lines (user_id, line_id, main_user, main_line) VALUES (%s, %s, "
        " NOT EXISTS (SELECT 1 FROM user_lines WHERE line_id = %s AND main_user),"
        " NOT EXISTS (SELECT 1 FROM user_lines WHERE user_id = %s AND main_line))",
        (user_id, line_id, line_id, user_id),
    )
    events.emit(conn, "user_line", "created", user_id=user_id, line_id=line_id)


def dissociate(conn: psycopg.Connection[Any], user_id: int, line_id: int) -> None:
    """Unlink; promote another user (or line) to main where the removed link was main."""
    row = conn.execute(
        "DELETE FROM user_lines WHERE user_id = %s AND line_id = %s RETURNING main_user, main_line",
        (user_id, line_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"user {user_id} is not on line {line_id}")
    if row[0]:
        conn.execute(
            "UPDATE user_lines SET main_user = true WHERE (user_id, line_id) = "
            "(SELECT user_id, line_id FROM user_lines WHERE line_id = %s ORDER BY user_id LIMIT 1)",
            (line_id,),
        )
    if row[1]:
        conn.execute(
            "UPDATE user_lines SET main_line = true WHERE (user_id, line_id) = "
            "(SELECT user_id, line_id FROM user_lines WHERE user_id = %s ORDER BY line_id LIMIT 1)",
            (user_id,),
        )
    events.emit(conn, "user_line", "deleted", user_id=user_id, line_id=line_id)


def delete_line(conn: psycopg.Connection[Any], line_id: int) -> None:
    for (user_id,) in conn.execute(
        "SELECT user_id FROM user_lines WHERE line_id = %s", (line_id,)
    ).fetchall():
        dissociate(conn, user_id, line_id)
    row = conn.execute("DELETE FROM lines WHERE id = %s RETURNING name", (line_id,)).fetchone()
    if row is None:
        raise NotFound(f"line {line_id} does not exist")
    events.emit(conn, "line", "deleted", id=line_id, name=row[0])
