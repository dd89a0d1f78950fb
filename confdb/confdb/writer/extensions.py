"""Extension numbers that reach a user, a ring group or a queue, and who owns a taken number."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from confdb import events, validation
from confdb.validation import ValidationError
from confdb.writer.contexts import context_id
from confdb.writer.errors import Conflict

KINDS = ("user", "group", "queue")  # what add_extension can number

# Who holds each (context_id, exten) asked: its kind, a name and, for users, the id.
_OWNERS = (
    "SELECT e.context_id, e.exten, e.type, "
    "  coalesce(nullif(trim(u.firstname || ' ' || u.lastname), ''), g.name, q.name, "
    "           v.mailbox || '@' || v.context, e.service), e.user_id "
    "FROM extensions e LEFT JOIN users u ON u.id = e.user_id LEFT JOIN groups g ON g.id = e.group_id "
    "LEFT JOIN queues q ON q.id = e.queue_id LEFT JOIN voicemails v ON v.id = e.voicemail_id "
    "WHERE (e.context_id, e.exten) IN (SELECT * FROM unnest(%s::int[], %s::text[]))"
)
_LABELS = {"user": "user", "group": "ring group", "queue": "queue", "voicemail": "voicemail box"}


def _describe(kind: str, name: str | None, user_id: int | None) -> str:
    if kind == "user":
        return f"user {name!r} (id {user_id})"
    if kind == "service":
        return f"the service {name}"
    return f"{_LABELS.get(kind, kind)} {name!r}"


def owners(conn: psycopg.Connection[Any], keys: Iterable[tuple[int, str]]) -> dict[tuple[int, str], str]:
    """Who owns each taken (context id, exten) of `keys`, such as "ring group 'sales'"; free ones are absent.
    One query whatever the number of keys."""
    wanted = list(keys)
    rows = conn.execute(_OWNERS, ([k[0] for k in wanted], [k[1] for k in wanted])).fetchall()
    return {(r[0], r[1]): _describe(r[2], r[3], r[4]) for r in rows}


def taken_message(exten: str, context: str, owner: str) -> str:
    return f"extension {exten}@{context} is already used by {owner}"


def add_extension(conn: psycopg.Connection[Any], kind: str, obj_id: int, exten: object, context: str) -> str:
    """Give a user, group or queue (`kind`) an extension number in an internal context."""
    field = f"{kind}.exten"
    exten = validation.extension(field, exten)
    if exten.startswith("_"):
        raise ValidationError(field, f"a {kind}'s extension must be a number, not a pattern")
    ctx = context_id(
        conn,
        validation.identifier(f"{kind}.context", context),
        expected_type="internal",
        field=f"{kind}.context",
    )
    owner = owners(conn, [(ctx, exten)]).get((ctx, exten))
    if owner:
        raise Conflict(taken_message(exten, context, owner), field=field)
    conn.execute(
        f"INSERT INTO extensions (context_id, exten, type, {kind}_id) VALUES (%s, %s, %s, %s)",
        (ctx, exten, kind, obj_id),
    )
    events.emit(conn, "extension", "created", context=context, exten=exten, **{f"{kind}_id": obj_id})
    return exten


def remove_extensions(conn: psycopg.Connection[Any], kind: str, obj_id: int) -> None:
    for exten, ctx in conn.execute(
        f"DELETE FROM extensions e USING contexts c WHERE e.{kind}_id = %s AND c.id = e.context_id "
        "RETURNING e.exten, c.name",
        (obj_id,),
    ).fetchall():
        events.emit(conn, "extension", "deleted", context=ctx, exten=exten, **{f"{kind}_id": obj_id})


def extensions_of(conn: psycopg.Connection[Any], kind: str, obj_id: int) -> list[tuple[str, str]]:
    """(exten, context) pairs of a user, group or queue."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            f"SELECT e.exten, c.name FROM extensions e JOIN contexts c ON c.id = e.context_id "
            f"WHERE e.{kind}_id = %s ORDER BY e.exten",
            (obj_id,),
        ).fetchall()
    ]


def set_extension(
    conn: psycopg.Connection[Any], kind: str, obj_id: int, exten: object, context: str | None = None
) -> bool:
    """Replace the extensions of a user, group or queue by `exten` (None or "" removes them); `context`
    defaults to the current one. Returns whether anything changed."""
    current = extensions_of(conn, kind, obj_id)
    target_context = context or (current[0][1] if current else "internal")
    if exten not in (None, "") and current == [(str(exten).strip(), target_context)]:
        return False
    if exten in (None, "") and not current:
        return False
    remove_extensions(conn, kind, obj_id)
    if exten not in (None, ""):
        add_extension(conn, kind, obj_id, exten, target_context)
    return True
