"""Contexts and their includes."""

from __future__ import annotations

from typing import Any

import psycopg

from confdb import events, validation
from confdb.writer.errors import Conflict, NotFound


def context_id(
    conn: psycopg.Connection[Any], name: str, *, expected_type: str | None = None, field: str = ""
) -> int:
    """The id of context `name`; `field` (such as `user.context`) is the field the error names."""
    row = conn.execute("SELECT id, type FROM contexts WHERE name = %s", (name,)).fetchone()
    if row is None:
        known = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM contexts WHERE type = %s::text OR %s::text IS NULL ORDER BY name",
                (expected_type, expected_type),
            )
        ]
        hint = f"; {expected_type or 'known'} contexts: {', '.join(known)}" if known else ""
        raise NotFound(f"context {validation.shown(name)} does not exist{hint}", field=field)
    if expected_type and row[1] != expected_type:
        raise Conflict(f"context {name!r} is of type {row[1]}, not {expected_type}", field=field)
    return int(row[0])


def include(conn: psycopg.Connection[Any], name: str, included: str, position: int = 0) -> None:
    parent, child = context_id(conn, name), context_id(conn, included)
    if parent == child:
        raise Conflict(f"context {name!r} cannot include itself")
    conn.execute(
        "INSERT INTO context_includes (context_id, included_context_id, position) VALUES (%s, %s, %s) "
        "ON CONFLICT (context_id, included_context_id) DO UPDATE SET position = EXCLUDED.position",
        (parent, child, position),
    )
    events.emit(conn, "context", "updated", id=parent, name=name, fields=["includes"])
