"""Where a call goes: destinations of incalls and schedules, and the extensions that reach groups and queues.

A destination is stored as three columns (`<prefix>_type`, `<prefix>_id`, `<prefix>_number`). On the command
line it is written `TYPE:REF`:

    user:1001        a user, by extension, then CTI login, then id
    group:sales      a ring group, by name, then id
    queue:support    a queue, by name, then id
    voicemail:1001   a voicemail box, by mailbox (context "default", or MAILBOX@CONTEXT), then id
    number:+33612345678
    hangup
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from confdb import events, validation
from confdb.validation import ValidationError
from confdb.writer.errors import Conflict, NotFound
from confdb.writer.extensions import extensions_of, set_extension
from confdb.writer.users import find_user

ID_TYPES = ("user", "group", "queue", "voicemail")
TYPES = (*ID_TYPES, "number", "hangup")
_TABLES = {"user": "users", "group": "groups", "queue": "queues", "voicemail": "voicemails"}
SYNTAX = "user:EXTEN|LOGIN|ID, group:NAME, queue:NAME, voicemail:MAILBOX[@CONTEXT], number:NUMBER or hangup"


@dataclass(frozen=True)
class Destination:
    type: str
    id: int | None = None
    number: str | None = None

    def columns(self) -> tuple[str, int | None, str | None]:
        return self.type, self.id, self.number

    @classmethod
    def from_columns(cls, type_: str | None, id_: int | None, number: str | None) -> Destination | None:
        return None if type_ is None else cls(type_, id_, number)


def parse_destination(conn: psycopg.Connection[Any], text: str, *, field: str = "destination") -> Destination:
    """A `TYPE:REF` string (see the module docstring) resolved to ids; NotFound names what is missing."""
    if not isinstance(text, str):
        raise ValidationError(field, f"must be text such as {SYNTAX}")
    kind, sep, ref = text.strip().partition(":")
    kind, ref = kind.strip().lower(), ref.strip()
    if kind == "hangup" and not ref:
        return Destination("hangup")
    if kind not in TYPES or not sep or not ref:
        raise ValidationError(field, f"{validation.shown(text)} is not a destination; write {SYNTAX}")
    if kind == "number":
        return Destination("number", number=validation.dialable(field, ref))
    if kind == "hangup":
        raise ValidationError(field, "hangup takes no argument")
    return Destination(kind, id=_RESOLVERS[kind](conn, ref))


def _first(conn: psycopg.Connection[Any], queries: list[tuple[str, tuple[Any, ...]]]) -> int | None:
    for query, params in queries:
        row = conn.execute(query, params).fetchone()
        if row is not None:
            return int(row[0])
    return None


def _by_id(table: str, ref: str) -> list[tuple[str, tuple[Any, ...]]]:
    return (
        [(f"SELECT id FROM {table} WHERE id = %s", (int(ref),))]
        if ref.isascii() and ref.isdigit() and len(ref) < 10
        else []
    )


def find_group(conn: psycopg.Connection[Any], ref: str) -> int:
    found = _first(conn, [("SELECT id FROM groups WHERE name = %s", (ref,)), *_by_id("groups", ref)])
    if found is None:
        raise NotFound(f"no ring group is named {validation.shown(ref)}")
    return found


def find_queue(conn: psycopg.Connection[Any], ref: str) -> int:
    found = _first(conn, [("SELECT id FROM queues WHERE name = %s", (ref,)), *_by_id("queues", ref)])
    if found is None:
        raise NotFound(f"no queue is named {validation.shown(ref)}")
    return found


def find_voicemail(conn: psycopg.Connection[Any], ref: str) -> int:
    """A voicemail box by MAILBOX@CONTEXT, or MAILBOX in context default, else the only box of that number."""
    mailbox, _, context = ref.partition("@")
    found = _first(
        conn,
        [("SELECT id FROM voicemails WHERE mailbox = %s AND context = %s", (mailbox, context or "default"))],
    )
    if found is None and not context:
        rows = conn.execute(
            "SELECT id, context FROM voicemails WHERE mailbox = %s ORDER BY context", (mailbox,)
        ).fetchall()
        if len(rows) > 1:
            where = ", ".join(f"{mailbox}@{r[1]}" for r in rows)
            raise Conflict(f"voicemail box {mailbox} exists in several contexts ({where}): say which")
        found = int(rows[0][0]) if rows else _first(conn, _by_id("voicemails", ref))
    if found is None:
        raise NotFound(f"no voicemail box {validation.shown(ref)} (MAILBOX, MAILBOX@CONTEXT or id)")
    return found


_RESOLVERS = {"user": find_user, "group": find_group, "queue": find_queue, "voicemail": find_voicemail}


def check_destination(
    conn: psycopg.Connection[Any], dest: Destination, *, field: str = "destination"
) -> Destination:
    """Check the shape of `dest` and that its target exists; returns it normalised."""
    if not isinstance(dest, Destination):
        raise ValidationError(field, f"must be a Destination, not {type(dest).__name__}")
    if dest.type not in TYPES:
        raise ValidationError(field, f"{dest.type!r} is not one of {', '.join(TYPES)}")
    if dest.type == "hangup":
        if dest.id is not None or dest.number is not None:
            raise ValidationError(field, "hangup takes neither an id nor a number")
        return dest
    if dest.type == "number":
        if dest.id is not None:
            raise ValidationError(field, "a number destination takes no id")
        return Destination("number", number=validation.dialable(field, dest.number))
    if dest.number is not None:
        raise ValidationError(field, f"a {dest.type} destination takes an id, not a number")
    target = validation.integer(field, dest.id, minimum=1, maximum=2**31 - 1)
    if not conn.execute(f"SELECT 1 FROM {_TABLES[dest.type]} WHERE id = %s", (target,)).fetchone():
        raise NotFound(f"{field}: {dest.type} {target} does not exist")
    return Destination(dest.type, id=target)


def describe(conn: psycopg.Connection[Any], dest: Destination | None) -> str:
    """The `TYPE:REF` form of a destination, which parse_destination reads back to the same target."""
    if dest is None:
        return ""
    if dest.type == "hangup":
        return "hangup"
    if dest.type == "number":
        return f"number:{dest.number}"
    queries = {
        "user": "SELECT coalesce((SELECT e.exten FROM extensions e JOIN contexts c ON c.id = e.context_id "
        "WHERE e.user_id = u.id AND c.type = 'internal' ORDER BY c.name = 'internal' DESC, e.id LIMIT 1),"
        " cti_login, id::text) FROM users u WHERE id = %s",
        "group": "SELECT name FROM groups WHERE id = %s",
        "queue": "SELECT name FROM queues WHERE id = %s",
        "voicemail": "SELECT mailbox || CASE context WHEN 'default' THEN '' ELSE '@' || context END "
        "FROM voicemails WHERE id = %s",
    }
    row = conn.execute(queries[dest.type], (dest.id,)).fetchone()
    return f"{dest.type}:{row[0] if row else f'{dest.id}(missing)'}"


# -- what ring groups and queues share ---------------------------------------------------------------


def update_numbered(
    conn: psycopg.Connection[Any],
    kind: str,
    label: str,
    target: int,
    name: str,
    changes: dict[str, Any],
    validate: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> list[str]:
    """What updating a ring group or a queue (`kind`, shown as `label`) shares: validated settings, a
    rename that must stay unique, the extension moved (`exten`: None or "" removes it; `context`), one
    event. Returns the names of the changed settings."""
    table = _TABLES[kind]
    exten_given, context_given = "exten" in changes, "context" in changes
    exten, context = changes.pop("exten", None), changes.pop("context", None)
    values = validate(changes)
    if (
        "name" in values
        and values["name"] != name
        and conn.execute(f"SELECT 1 FROM {table} WHERE name = %s", (values["name"],)).fetchone()
    ):
        raise Conflict(f"{label} {values['name']!r} already exists")
    changed = sorted(values)
    if values:
        conn.execute(
            f"UPDATE {table} SET {', '.join(f'{c} = %s' for c in values)} WHERE id = %s",
            [*values.values(), target],
        )
    if exten_given or context_given:
        if not exten_given:
            current = extensions_of(conn, kind, target)
            if not current:
                raise ValidationError(f"{kind}.context", f"{label} {name!r} has no extension to move")
            exten = current[0][0]
        set_extension(conn, kind, target, exten, context)
        changed.append("exten")
    if changed:
        events.emit(conn, kind, "updated", id=target, name=values.get("name", name), fields=changed)
    return changed
