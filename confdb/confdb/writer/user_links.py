"""What hangs off a user and changes with it after creation: its extension, its voicemail box; and the
line a user reference stands for (`reset-secret 1001`)."""

from __future__ import annotations

from typing import Any

import psycopg

from confdb import events, validation
from confdb.validation import ValidationError
from confdb.writer import extensions, users, voicemails
from confdb.writer.contexts import context_id
from confdb.writer.errors import NotFound


def set_extension(
    conn: psycopg.Connection[Any], user_id: int, *, exten: str | None = None, context: str | None = None
) -> list[str]:
    """Replace the user's extension by `exten` ("" removes it; None keeps the number) in internal `context`
    (None: the current one). A caller-ID number that was the extension (or none) follows it, and the lines
    only this user uses move with it to the new context. The voicemail box keeps its number. Returns what
    changed."""
    if exten is None and context is None:
        return []
    current = extensions.extensions_of(conn, "user", user_id)
    row = conn.execute("SELECT callerid_num FROM users WHERE id = %s FOR UPDATE", (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    if exten is None:
        if not current:
            raise ValidationError("user.context", "the user has no extension to move: give the extension too")
        exten = current[0][0]
    old_context = current[0][1] if current else None
    changed = ["exten"] if extensions.set_extension(conn, "user", user_id, exten, context) else []
    new_number = exten.strip() or None
    follows = row[0] in {e for e, _ in current} or (row[0] is None and bool(new_number))  # as at creation
    if follows and row[0] != new_number:
        conn.execute(
            "UPDATE users SET callerid_num = %s, updated_at = now() WHERE id = %s", (new_number, user_id)
        )
        changed.append("callerid_num")
    if new_number and context and old_context and context != old_context:
        changed += _move_own_lines(conn, user_id, old_context, context)
    if changed:
        events.emit(conn, "user", "updated", id=user_id, fields=changed)
    return changed


def _move_own_lines(conn: psycopg.Connection[Any], user_id: int, old: str, new: str) -> list[str]:
    target = context_id(conn, new, expected_type="internal", field="user.context")
    moved = conn.execute(
        "UPDATE lines l SET context_id = %s FROM user_lines ul, contexts c "
        "WHERE ul.line_id = l.id AND ul.user_id = %s AND c.id = l.context_id AND c.name = %s "
        "AND NOT EXISTS (SELECT 1 FROM user_lines o WHERE o.line_id = l.id AND o.user_id <> %s) "
        "RETURNING l.id, l.name",
        (target, user_id, old, user_id),
    ).fetchall()
    for line_id, name in moved:
        events.emit(conn, "line", "updated", id=line_id, name=name, fields=["context"])
    return ["lines"] if moved else []


def set_voicemail(
    conn: psycopg.Connection[Any],
    user_id: int,
    *,
    enabled: bool | str | None = None,
    pin: str | None = None,
    email: str | None = None,
) -> tuple[list[str], str | None]:
    """Give the user a voicemail box (`enabled` true: numbered like its extension), take it away (false),
    or change its PIN or e-mail address ("" removes it); None leaves a setting as it is. Returns what
    changed and the PIN of a new box (generated unless given)."""
    wanted = None if enabled is None else validation.boolean("user.voicemail", enabled)
    row = conn.execute(
        "SELECT voicemail_id, callerid_name, language FROM users WHERE id = %s FOR UPDATE", (user_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    box, fullname, language = row
    settings = {k: v for k, v in (("pin", pin), ("email", email)) if v is not None}
    if wanted is False:
        if settings:
            raise ValidationError("user.voicemail", "a box being removed takes no PIN or e-mail address")
        if box is None:
            return [], None
        conn.execute("UPDATE users SET voicemail_id = NULL, updated_at = now() WHERE id = %s", (user_id,))
        voicemails.delete_voicemail(conn, box)
        events.emit(conn, "user", "updated", id=user_id, fields=["voicemail"])
        return ["voicemail"], None
    if box is not None:
        return voicemails.update_voicemail(conn, box, settings), None
    if wanted is None:
        if settings:
            raise ValidationError("user.voicemail", "the user has no voicemail box: ask for one too")
        return [], None
    numbers = extensions.extensions_of(conn, "user", user_id)
    if not numbers:
        raise ValidationError("user.voicemail", "a voicemail box needs the user's extension as mailbox")
    new_box, new_pin = voicemails.create_voicemail(
        conn, mailbox=numbers[0][0], fullname=fullname, email=email, pin=pin, language=language
    )
    conn.execute("UPDATE users SET voicemail_id = %s, updated_at = now() WHERE id = %s", (new_box, user_id))
    events.emit(conn, "user", "updated", id=user_id, fields=["voicemail"])
    return ["voicemail"], new_pin


def find_line(conn: psycopg.Connection[Any], ref: str, *, line: str | None = None) -> tuple[int, str]:
    """(id, name) of the line `ref` names: a line name, else the main line of the user `ref` names
    (extension, CTI login, UUID or id); `line` picks another of that user's lines."""
    text = str(ref).strip()
    if line is None:
        row = conn.execute("SELECT id, name FROM lines WHERE name = %s", (text,)).fetchone()
        if row is not None:
            return int(row[0]), str(row[1])
    try:
        user_id = users.find_user(conn, text)
    except NotFound:
        raise NotFound(
            f"no line is named {validation.shown(text)}, and no user has it as extension, CTI login, "
            "UUID or id"
        ) from None
    query = "SELECT l.id, l.name FROM user_lines ul JOIN lines l ON l.id = ul.line_id WHERE ul.user_id = %s "
    found = conn.execute(
        query + ("AND l.name = %s" if line is not None else "AND ul.main_line"),
        (user_id, line) if line is not None else (user_id,),
    ).fetchone()
    if found is None:
        what = f"is not on line {validation.shown(line)}" if line is not None else "has no line"
        raise NotFound(f"user {validation.shown(text)} {what}")
    return int(found[0]), str(found[1])
