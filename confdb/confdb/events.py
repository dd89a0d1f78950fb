"""Config events: written to the outbox in the transaction of the change, published by the relay.

Routing keys are `<object>.<action>` on the topic exchange `pbx.config`; payloads are documented in
docs/events.md. Events name what changed; consumers read the new state from the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import psycopg

EXCHANGE = "pbx.config"
PAYLOAD_VERSION = 1
ACTIONS = ("created", "updated", "deleted")
# pbx-event-relay LISTENs here; a NOTIFY is delivered at commit, once per transaction.
NOTIFY_CHANNEL = "outbox"


def _row(obj: str, action: str, data: dict[str, Any]) -> tuple[str, str]:
    if action not in ACTIONS:
        raise ValueError(f"unknown event action {action!r}")
    payload = {"version": PAYLOAD_VERSION, "object": obj, "action": action, "data": data}
    return f"{obj}.{action}", json.dumps(payload, separators=(",", ":"), default=str)


def emit(conn: psycopg.Connection[Any], obj: str, action: str, **data: Any) -> None:
    """Queue `<obj>.<action>` with `data` (ids and changed field names) in the current transaction."""
    conn.execute(
        "WITH queued AS (INSERT INTO outbox (routing_key, payload) VALUES (%s, %s) RETURNING id) "
        "SELECT pg_notify(%s, '') FROM queued",
        (*_row(obj, action, data), NOTIFY_CHANNEL),
    )


def emit_many(conn: psycopg.Connection[Any], items: Iterable[tuple[str, str, dict[str, Any]]]) -> int:
    """Queue many `(obj, action, data)` events in order, with one COPY (bulk writes); same rows as emit."""
    rows = [_row(obj, action, data) for obj, action, data in items]
    with conn.cursor().copy("COPY outbox (routing_key, payload) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    if rows:
        conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
    return len(rows)
