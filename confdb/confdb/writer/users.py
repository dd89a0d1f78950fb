"""Users, created with their line, extension and voicemail box in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from confdb import events, passwords, validation
from confdb.validation import ValidationError
from confdb.writer import extensions, lines, voicemails
from confdb.writer.contexts import context_id
from confdb.writer.errors import Conflict, NotFound, WriteError
from confdb.writer.references import refusing_referenced

# Every settable user column with its validator. Creation and update share this table.
USER_FIELDS: Mapping[str, Callable[[str, Any], Any]] = {
    "firstname": lambda f, v: validation.text(f, v),
    "lastname": lambda f, v: validation.text(f, v, required=False),
    "callerid_name": validation.callerid_name,
    "callerid_num": validation.optional_dialable,
    "language": validation.language,
    "ring_seconds": lambda f, v: validation.integer(f, v, minimum=5, maximum=600),
    "simultaneous_calls": lambda f, v: validation.integer(f, v, minimum=1, maximum=20),
    "dnd": validation.boolean,
    "fwd_unconditional_enabled": validation.boolean,
    "fwd_unconditional": validation.optional_dialable,
    "fwd_busy_enabled": validation.boolean,
    "fwd_busy": validation.optional_dialable,
    "fwd_noanswer_enabled": validation.boolean,
    "fwd_noanswer": validation.optional_dialable,
    "enabled": validation.boolean,
}


@dataclass
class UserSpec:
    firstname: str
    lastname: str = ""
    fields: dict[str, Any] = field(default_factory=dict)  # any other USER_FIELDS entry
    exten: str | None = None
    context: str = "internal"
    new_line: bool = True  # a fresh SIP line; False with shared_line=None means no line
    shared_line: str | None = None  # join this existing line instead (a shared phone)
    voicemail: bool = False
    voicemail_pin: str | None = None
    email: str | None = None
    cti_login: str | None = None
    cti_password: str | None = None


@dataclass(frozen=True)
class CreatedUser:
    id: int
    uuid: str
    exten: str | None
    line: lines.NewLine | None
    shared_line: str | None
    voicemail_pin: str | None


def validate_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in values.items():
        checker = USER_FIELDS.get(name)
        if checker is None:
            raise ValidationError(f"user.{name}", "is not a user field")
        clean[name] = checker(f"user.{name}", value)
    return clean


def _check_forwards(values: Mapping[str, Any]) -> None:
    for kind in ("unconditional", "busy", "noanswer"):
        if values.get(f"fwd_{kind}_enabled") and not values.get(f"fwd_{kind}"):
            raise ValidationError(f"user.fwd_{kind}", "a forward cannot be enabled without a destination")


@dataclass(frozen=True)
class CheckedUser:
    """A UserSpec that passed every rule needing no database (check_user); what create_user and the bulk
    writer (confdb.writer.bulk_users) both start from."""

    values: dict[str, Any]  # users columns, validated; no cti_password_hash yet
    exten: str | None
    context: str
    new_line: bool  # a fresh line is to be created
    shared_line: str | None
    voicemail: voicemails.CheckedVoicemail | None
    cti_password: str | None


@dataclass(frozen=True)
class Problem:
    """Why the database refuses an item: the field, the error, and the earlier item it clashes with."""

    field: str
    error: WriteError
    duplicate_of: int | None = None


def _check_cti_password(password: object) -> str:
    value = validation.text("user.cti_password", password, max_len=256)
    if len(value) < 8:
        raise ValidationError("user.cti_password", "must be at least 8 characters long")
    return str(password)


def check_user(spec: UserSpec) -> CheckedUser:
    """Every rule on a new user that needs no database, in the order create_user applies them."""
    values = validate_fields({"firstname": spec.firstname, "lastname": spec.lastname, **spec.fields})
    exten = validation.extension("user.exten", spec.exten) if spec.exten else None
    if exten and exten.startswith("_"):
        raise ValidationError("user.exten", "a user's extension must be a number, not a pattern")
    values.setdefault(
        "callerid_name",
        validation.callerid_name(
            "user.callerid_name", f"{values['firstname']} {values.get('lastname', '')}".strip()
        ),
    )
    if exten and "callerid_num" not in values:
        values["callerid_num"] = validation.dialable("user.callerid_num", exten)
    _check_forwards(values)
    cti_password = None
    if spec.cti_login or spec.cti_password:
        if not (spec.cti_login and spec.cti_password):
            raise ValidationError("user.cti_password", "a CTI login needs a password, and a password a login")
        values["cti_login"] = validation.cti_login("user.cti_login", spec.cti_login)
        cti_password = _check_cti_password(spec.cti_password)
    box = None
    if spec.voicemail:
        if not exten:
            raise ValidationError("user.voicemail", "a voicemail box needs the user's extension as mailbox")
        box = voicemails.check_voicemail(
            mailbox=exten,
            fullname=values["callerid_name"],
            email=spec.email,
            pin=spec.voicemail_pin,
            language=values.get("language"),
        )
    return CheckedUser(
        values,
        exten,
        spec.context,
        bool(spec.new_line and exten and not spec.shared_line),
        spec.shared_line,
        box,
        cti_password,
    )


@dataclass
class Resolved:
    """find_conflicts' answer: ids of the contexts and shared lines named, and each refused item's Problem."""

    context_ids: dict[str, int] = field(default_factory=dict)
    line_ids: dict[str, int] = field(default_factory=dict)
    problems: dict[int, Problem] = field(default_factory=dict)


def find_conflicts(conn: psycopg.Connection[Any], items: Sequence[CheckedUser]) -> Resolved:
    """What the database, or an earlier item of `items`, refuses in each item: one query per kind of check,
    whatever the number of items. create_user runs it on one item, the bulk writer on thousands."""
    found = Resolved()
    by_context: dict[str, WriteError] = {}
    for name in sorted({u.context for u in items if u.exten}):
        try:
            found.context_ids[name] = context_id(conn, name, expected_type="internal", field="user.context")
        except WriteError as exc:
            by_context[name] = exc
    by_line: dict[str, WriteError] = {}
    for name in sorted({u.shared_line for u in items if u.shared_line}):
        try:
            found.line_ids[name] = lines.line_id(conn, name)
        except WriteError as exc:
            by_line[name] = exc
    logins = {
        r[0]
        for r in conn.execute(
            "SELECT cti_login FROM users WHERE cti_login = ANY(%s)",
            ([u.values["cti_login"] for u in items if "cti_login" in u.values],),
        )
    }
    keys = [
        (found.context_ids[u.context], u.exten) for u in items if u.exten and u.context in found.context_ids
    ]
    extens = extensions.owners(conn, keys)
    boxes_wanted = [(u.voicemail.context, u.voicemail.mailbox) for u in items if u.voicemail]
    boxes = {
        (r[0], r[1])
        for r in conn.execute(
            "SELECT context, mailbox FROM voicemails WHERE (context, mailbox) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([b[0] for b in boxes_wanted], [b[1] for b in boxes_wanted]),
        )
    }

    seen: dict[tuple[str, Any], int] = {}  # what earlier items take, and which item takes it
    for index, user in enumerate(items):
        login = user.values.get("cti_login")
        ctx = found.context_ids.get(user.context)
        box = user.voicemail
        claims: list[tuple[tuple[str, Any], str, WriteError, bool]] = []
        if login:
            claims.append(
                (
                    ("login", login),
                    "user.cti_login",
                    Conflict(f"CTI login {login!r} is already used"),
                    login in logins,
                )
            )
        if user.exten and user.context in by_context:
            found.problems[index] = Problem("user.context", by_context[user.context])
            continue
        if user.exten:
            claims.append(
                (
                    ("exten", (ctx, user.exten)),
                    "user.exten",
                    Conflict(
                        extensions.taken_message(user.exten, user.context, extens[(ctx, user.exten)])
                        if (ctx, user.exten) in extens
                        else f"extension {user.exten}@{user.context} is already used"
                    ),
                    (ctx, user.exten) in extens,
                )
            )
        if box:
            claims.append(
                (
                    ("box", (box.context, box.mailbox)),
                    "voicemail.mailbox",
                    Conflict(f"voicemail box {box.mailbox}@{box.context} already exists"),
                    (box.context, box.mailbox) in boxes,
                )
            )
        for key, field_, error, taken in claims:
            if taken or key in seen:
                found.problems[index] = Problem(field_, error, seen.get(key))
                break
        else:
            if user.shared_line in by_line:
                found.problems[index] = Problem("user.shared_line", by_line[user.shared_line])
                continue
            seen.update((claim[0], index) for claim in claims)
    return found


def create_user(conn: psycopg.Connection[Any], spec: UserSpec) -> CreatedUser:
    checked = check_user(spec)
    resolved = find_conflicts(conn, [checked])
    if resolved.problems:
        problem = resolved.problems[0]  # raised naming its field: "user.exten: extension 1001@... is used"
        raise type(problem.error)(problem.error.message, field=problem.error.field or problem.field)
    values = dict(checked.values)
    exten = checked.exten
    ctx = resolved.context_ids.get(checked.context)
    if checked.cti_password:
        values["cti_password_hash"] = passwords.hash_password(checked.cti_password)

    vm_pin = None
    if checked.voicemail:
        box = checked.voicemail
        vm_id, vm_pin = voicemails.create_voicemail(
            conn,
            mailbox=box.mailbox,
            fullname=box.fullname,
            email=box.email,
            pin=box.pin,
            context=box.context,
            language=box.language,
        )
        values["voicemail_id"] = vm_id

    columns = list(values)
    placeholders = ", ".join(["%s"] * len(columns))
    row = conn.execute(
        f"INSERT INTO users ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id, uuid",
        [values[c] for c in columns],
    ).fetchone()
    assert row is not None
    user_id, uuid = int(row[0]), str(row[1])
    events.emit(conn, "user", "created", id=user_id, uuid=uuid)

    new_line = None
    if checked.shared_line:
        lines.associate(conn, user_id, resolved.line_ids[checked.shared_line])
    elif checked.new_line:
        new_line = lines.create_line(conn, context=checked.context)
        lines.associate(conn, user_id, new_line.id)
    if exten:
        conn.execute(
            "INSERT INTO extensions (context_id, exten, type, user_id) VALUES (%s, %s, 'user', %s)",
            (ctx, exten, user_id),
        )
        events.emit(conn, "extension", "created", context=checked.context, exten=exten, user_id=user_id)
    return CreatedUser(user_id, uuid, exten, new_line, checked.shared_line, vm_pin)


def find_user(conn: psycopg.Connection[Any], ref: str | int) -> int:
    """A user by extension (internal contexts first), then CTI login, then UUID, then id.

    The one lookup behind every command and destination (`user:REF`) that names a user.
    """
    text_ref = str(ref).strip()
    queries: list[tuple[str, tuple[Any, ...]]] = [
        (
            "SELECT e.user_id FROM extensions e JOIN contexts c ON c.id = e.context_id "
            "WHERE e.type = 'user' AND e.exten = %s AND c.type = 'internal' "
            "ORDER BY c.name = 'internal' DESC LIMIT 1",
            (text_ref,),
        ),
        ("SELECT id FROM users WHERE cti_login = %s", (text_ref.lower(),)),
        ("SELECT id FROM users WHERE uuid::text = %s", (text_ref.lower(),)),
    ]
    if text_ref.isascii() and text_ref.isdigit() and len(text_ref) < 10:
        queries.append(("SELECT id FROM users WHERE id = %s", (int(text_ref),)))
    for query, params in queries:
        row = conn.execute(query, params).fetchone()
        if row is not None:
            return int(row[0])
    raise NotFound(f"no user has extension, CTI login, UUID or id {validation.shown(text_ref)}")


def update_user(
    conn: psycopg.Connection[Any],
    user_id: int,
    changes: Mapping[str, Any],
    *,
    cti_login: str | None = None,
    cti_password: str | None = None,
) -> list[str]:
    values = validate_fields(changes)
    if cti_login is not None:
        values["cti_login"] = validation.cti_login("user.cti_login", cti_login)
    if cti_password is not None:
        values["cti_password_hash"] = passwords.hash_password(_check_cti_password(cti_password))
    if not values:
        return []
    current = conn.execute(
        "SELECT fwd_unconditional_enabled, fwd_unconditional, fwd_busy_enabled, fwd_busy, "
        "fwd_noanswer_enabled, fwd_noanswer FROM users WHERE id = %s FOR UPDATE",
        (user_id,),
    ).fetchone()
    if current is None:
        raise NotFound(f"user {user_id} does not exist")
    merged = (
        dict(
            zip(
                (
                    "fwd_unconditional_enabled",
                    "fwd_unconditional",
                    "fwd_busy_enabled",
                    "fwd_busy",
                    "fwd_noanswer_enabled",
                    "fwd_noanswer",
                ),
                current,
                strict=True,
            )
        )
        | values
    )
    _check_forwards(merged)
    assignments = ", ".join(f"{column} = %s" for column in values)
    try:
        conn.execute(
            f"UPDATE users SET {assignments}, updated_at = now() WHERE id = %s", [*values.values(), user_id]
        )
    except psycopg.errors.UniqueViolation:
        raise Conflict(f"CTI login {values.get('cti_login')!r} is already used") from None
    changed = sorted(k if k != "cti_password_hash" else "cti_password" for k in values)
    events.emit(conn, "user", "updated", id=user_id, fields=changed)
    return changed


def delete_user(conn: psycopg.Connection[Any], user_id: int) -> None:
    """Delete a user with its extensions and voicemail box; its lines go too unless others share them."""
    row = conn.execute("SELECT uuid, voicemail_id FROM users WHERE id = %s FOR UPDATE", (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    uuid, voicemail_id = row
    with refusing_referenced(conn, "user", user_id, f"user {user_id}"):
        _delete_user_rows(conn, user_id)
    events.emit(conn, "user", "deleted", id=user_id, uuid=str(uuid))
    if voicemail_id is not None:
        voicemails.delete_voicemail(conn, voicemail_id)


def _delete_user_rows(conn: psycopg.Connection[Any], user_id: int) -> None:
    for exten, ctx in conn.execute(
        "DELETE FROM extensions e USING contexts c WHERE e.user_id = %s AND c.id = e.context_id "
        "RETURNING e.exten, c.name",
        (user_id,),
    ).fetchall():
        events.emit(conn, "extension", "deleted", context=ctx, exten=exten, user_id=user_id)
    for (line_id,) in conn.execute(
        "SELECT line_id FROM user_lines WHERE user_id = %s ORDER BY line_id", (user_id,)
    ).fetchall():
        lines.dissociate(conn, user_id, line_id)
        if not conn.execute("SELECT 1 FROM user_lines WHERE line_id = %s", (line_id,)).fetchone():
            lines.delete_line(conn, line_id)
    conn.execute("DELETE FROM users WHERE id = %s", (user_id,))
