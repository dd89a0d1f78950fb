"""What routes calls to an object (incalls, closed-hours schedules), and deleting such objects safely."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from confdb.writer.errors import Conflict


def referrers(conn: psycopg.Connection[Any], kind: str, obj_id: int) -> list[str]:
    """What routes calls to this object: incalls and closed-hours schedules."""
    rows = conn.execute(
        "SELECT 'incall ' || i.did || '@' || c.name FROM incalls i JOIN contexts c ON c.id = i.context_id "
        "WHERE i.dest_type = %s AND i.dest_id = %s "
        "UNION ALL SELECT 'schedule ' || name FROM schedules "
        "WHERE closed_dest_type = %s AND closed_dest_id = %s "
        "ORDER BY 1",
        (kind, obj_id, kind, obj_id),
    ).fetchall()
    return [r[0] for r in rows]


@contextmanager
def refusing_referenced(conn: psycopg.Connection[Any], kind: str, obj_id: int, label: str) -> Iterator[None]:
    """Wrap the deletion of a possible destination: refuse clearly while an incall or schedule points to it.

    The pre-check gives the message. The block runs in a savepoint: when the trigger refuses anyway (a
    concurrent change), everything the block did is undone and the same Conflict is raised, instead of a raw
    database error that would abort the caller's transaction.
    """
    using = referrers(conn, kind, obj_id)
    if using:
        raise Conflict(f"{label} is the destination of {', '.join(using)}; route those elsewhere first")
    try:
        with conn.transaction():
            yield
    except psycopg.errors.ForeignKeyViolation as exc:
        raise Conflict(f"{label}: {(exc.diag.message_primary or str(exc)).strip()}") from None
