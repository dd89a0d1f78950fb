"""Voicemail boxes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from confdb import events, passwords, validation
from confdb.writer.errors import Conflict, NotFound
from confdb.writer.references import refusing_referenced


@dataclass(frozen=True)
class CheckedVoicemail:
    """The values of a new box that passed every rule needing no database; pin None: to be generated."""

    mailbox: str
    fullname: str
    email: str | None
    pin: str | None
    context: str
    language: str | None


def check_voicemail(
    *,
    mailbox: str,
    fullname: str,
    email: str | None = None,
    pin: str | None = None,
    context: str = "default",
    language: str | None = None,
) -> CheckedVoicemail:
    mailbox = validation.dialable("voicemail.mailbox", mailbox)
    if not mailbox.isdigit():
        raise validation.ValidationError("voicemail.mailbox", f"{mailbox!r} must be digits only")
    return CheckedVoicemail(
        mailbox=mailbox,
        fullname=validation.voicemail_text("voicemail.fullname", fullname),
        email=validation.email("voicemail.email", email),
        pin=validation.pin("voicemail.pin", pin) if pin else None,
        context=validation.identifier("voicemail.context", context),
        language=validation.language("voicemail.language", language) if language else None,
    )


def create_voicemail(
    conn: psycopg.Connection[Any],
    *,
    mailbox: str,
    fullname: str,
    email: str | None = None,
    pin: str | None = None,
    context: str = "default",
    language: str | None = None,
) -> tuple[int, str]:
    """Returns the box id and its PIN (generated when not given)."""
    box = check_voicemail(
        mailbox=mailbox, fullname=fullname, email=email, pin=pin, context=context, language=language
    )
    mailbox, fullname, email, context, language = (
        box.mailbox,
        box.fullname,
        box.email,
        box.context,
        box.language,
    )
    pin = box.pin or passwords.generate_pin()
    if conn.execute(
        "SELECT 1 FROM voicemails WHERE context = %s AND mailbox = %s", (context, mailbox)
    ).fetchone():
        raise Conflict(f"voicemail box {mailbox}@{context} already exists")
    row = conn.execute(
        "INSERT INTO voicemails (context, mailbox, fullname, email, pin, language) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (context, mailbox, fullname, email, pin, language),
    ).fetchone()
    assert row is not None
    events.emit(conn, "voicemail", "created", id=row[0], mailbox=mailbox, context=context)
    return int(row[0]), pin


def delete_voicemail(conn: psycopg.Connection[Any], voicemail_id: int) -> None:
    with refusing_referenced(conn, "voicemail", voicemail_id, f"voicemail box {voicemail_id}"):
        row = conn.execute(
            "DELETE FROM voicemails WHERE id = %s RETURNING mailbox, context", (voicemail_id,)
        ).fetchone()
    if row is None:
        raise NotFound(f"voicemail box {voicemail_id} does not exist")
    events.emit(conn, "voicemail", "deleted", id=voicemail_id, mailbox=row[0], context=row[1])


# What update_voicemail may change, with the rules check_voicemail applies at creation.
VOICEMAIL_FIELDS = {
    "fullname": validation.voicemail_text,
    "email": validation.email,
    "pin": validation.pin,
}


def update_voicemail(conn: psycopg.Connection[Any], voicemail_id: int, changes: dict[str, Any]) -> list[str]:
    """Change a box's VOICEMAIL_FIELDS (email None or "" removes the address); returns the changed names."""
    values: dict[str, Any] = {}
    for name, value in changes.items():
        checker = VOICEMAIL_FIELDS.get(name)
        if checker is None:
            raise validation.ValidationError(f"voicemail.{name}", "is not a voicemail box setting")
        values[name] = checker(f"voicemail.{name}", value)
    if not values:
        return []
    row = conn.execute(
        f"UPDATE voicemails SET {', '.join(f'{c} = %s' for c in values)} WHERE id = %s "
        "RETURNING mailbox, context",
        [*values.values(), voicemail_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"voicemail box {voicemail_id} does not exist")
    events.emit(
        conn, "voicemail", "updated", id=voicemail_id, mailbox=row[0], context=row[1], fields=sorted(values)
    )
    return sorted(values)
