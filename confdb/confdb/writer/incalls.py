"""Incalls: a DID (the number a trunk call was made to) routed to a destination, optionally on a schedule."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from confdb import events, validation
from confdb.writer import destinations, schedules
from confdb.writer.contexts import context_id
from confdb.writer.destinations import Destination
from confdb.writer.errors import Conflict, NotFound

_KEEP: Any = object()


def _prefix(value: object) -> str:
    # Prepended to the caller's name by the dialplan (an argument of Gosub): dialplan free text, whose rule
    # also keeps out what splits "Name" <number>. A trailing blank is kept: 'SALES ' + 'Jean Dupont'.
    return validation.dialplan_text("incall.callerid_name_prefix", value, max_len=20)


def _schedule(conn: psycopg.Connection[Any], name: str | None) -> int | None:
    if name is None or name == "":
        return None
    return schedules.schedule_id(conn, validation.identifier("incall.schedule", name))


def _context(conn: psycopg.Connection[Any], name: str) -> int:
    return context_id(
        conn, validation.identifier("incall.context", name), expected_type="incall", field="incall.context"
    )


def incall_id(conn: psycopg.Connection[Any], did: str, *, context: str = "incall") -> int:
    row = conn.execute(
        "SELECT i.id FROM incalls i JOIN contexts c ON c.id = i.context_id WHERE i.did = %s AND c.name = %s",
        (str(did).strip(), context),
    ).fetchone()
    if row is None:
        raise NotFound(f"no incall for DID {validation.shown(did)} in context {validation.shown(context)}")
    return int(row[0])


def _check_free(conn: psycopg.Connection[Any], ctx: int, did: str, context: str) -> None:
    row = conn.execute(
        "SELECT dest_type, dest_id, dest_number FROM incalls WHERE context_id = %s AND did = %s", (ctx, did)
    ).fetchone()
    if row is not None:
        current = destinations.describe(conn, Destination.from_columns(*row))
        raise Conflict(f"DID {did} in context {context!r} already routes to {current}")


def create_incall(
    conn: psycopg.Connection[Any],
    did: str,
    destination: Destination,
    *,
    context: str = "incall",
    schedule: str | None = None,
    callerid_name_prefix: str = "",
) -> int:
    """Route calls to `did` (a number or a pattern such as _0412XXXXXX) arriving in `context`."""
    did = validation.extension("incall.did", did)
    ctx = _context(conn, context)
    dest = destinations.check_destination(conn, destination, field="incall.destination")
    prefix = _prefix(callerid_name_prefix)
    schedule_ref = _schedule(conn, schedule)
    _check_free(conn, ctx, did, context)
    row = conn.execute(
        "INSERT INTO incalls (did, context_id, dest_type, dest_id, dest_number, schedule_id, "
        "  callerid_name_prefix) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (did, ctx, *dest.columns(), schedule_ref, prefix),
    ).fetchone()
    assert row is not None
    events.emit(conn, "incall", "created", id=row[0], did=did, context=context)
    return int(row[0])


def update_incall(
    conn: psycopg.Connection[Any],
    did: str,
    *,
    context: str = "incall",
    new_did: str | None = None,
    destination: Destination | None = None,
    schedule: str | None = _KEEP,
    callerid_name_prefix: str | None = None,
) -> list[str]:
    """Change an incall; `schedule=None` (or "") makes it always open. Returns the changed fields."""
    target = incall_id(conn, did, context=context)
    values: dict[str, Any] = {}
    if new_did is not None:
        values["did"] = validation.extension("incall.did", new_did)
        if values["did"] != did:
            _check_free(conn, _context(conn, context), values["did"], context)
    if destination is not None:
        dest = destinations.check_destination(conn, destination, field="incall.destination")
        values |= dict(zip(("dest_type", "dest_id", "dest_number"), dest.columns(), strict=True))
    if schedule is not _KEEP:
        values["schedule_id"] = _schedule(conn, schedule)
    if callerid_name_prefix is not None:
        values["callerid_name_prefix"] = _prefix(callerid_name_prefix)
    if not values:
        return []
    conn.execute(
        f"UPDATE incalls SET {', '.join(f'{c} = %s' for c in values)} WHERE id = %s",
        [*values.values(), target],
    )
    names = {
        "dest_type": "destination",
        "dest_id": "destination",
        "dest_number": "destination",
        "schedule_id": "schedule",
    }
    changed = sorted({names.get(c, c) for c in values})
    events.emit(
        conn, "incall", "updated", id=target, did=values.get("did", did), context=context, fields=changed
    )
    return changed


def delete_incall(conn: psycopg.Connection[Any], did: str, *, context: str = "incall") -> None:
    target = incall_id(conn, did, context=context)
    conn.execute("DELETE FROM incalls WHERE id = %s", (target,))
    events.emit(conn, "incall", "deleted", id=target, did=str(did).strip(), context=context)


def list_incalls(conn: psycopg.Connection[Any], incall: int | None = None) -> list[dict[str, Any]]:
    """Incalls by context and DID (only id `incall` when given), with their destination in the `TYPE:REF`
    form pbx-admin accepts."""
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute(
        "SELECT i.id, i.did, c.name AS context, i.dest_type, i.dest_id, i.dest_number, s.name AS schedule, "
        "  i.callerid_name_prefix "
        "FROM incalls i JOIN contexts c ON c.id = i.context_id LEFT JOIN schedules s ON s.id = i.schedule_id "
        "WHERE %(id)s::int IS NULL OR i.id = %(id)s::int ORDER BY c.name, i.did",
        {"id": incall},
    ).fetchall()
    for row in rows:
        dest = Destination(row.pop("dest_type"), row.pop("dest_id"), row.pop("dest_number"))
        row["destination"] = destinations.describe(conn, dest)
    return rows
