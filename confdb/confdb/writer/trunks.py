"""SIP trunks to providers.

A trunk either registers to the provider (register + auth_username + auth_password) or recognises the
provider's calls by source address (identify). One that does neither could never be matched by Asterisk
for an incoming call, so it is refused. The password is sent to the provider, so it is stored as given;
it never appears in events or listings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from confdb import events, validation
from confdb.validation import ValidationError
from confdb.writer.contexts import context_id
from confdb.writer.errors import Conflict, NotFound

TRANSPORTS = ("udp", "tcp", "tls")
DEFAULT_CODECS = ("alaw", "ulaw")
_SIP_USER = re.compile(r"[A-Za-z0-9_.+\-]{1,64}")
# pjsip.conf reads ';' and '#' as comments, '\\' as an escape, and a space ends nothing reliably.
PASSWORD_FORBIDDEN = ";#\\ "


def sip_user(field: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError(field, f"must be text, not {type(value).__name__}")
    validation.text(field, value, max_len=64)
    if not _SIP_USER.fullmatch(value.strip()):
        raise ValidationError(
            field, f"{value!r} is not a SIP user name (letters, digits, '_', '.', '+', '-'; 64 at most)"
        )
    return value.strip()


def password(field: str, value: object) -> str | None:
    """1 to 128 characters with no control character, ';', '#', '\\' or space (they break pjsip.conf)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(field, f"must be text, not {type(value).__name__}")
    if value == "":
        raise ValidationError(field, "must not be empty")
    for pos, ch in enumerate(value):
        if ch in PASSWORD_FORBIDDEN:
            shown = "a space" if ch == " " else repr(ch)
            raise ValidationError(
                field, f"must not contain {shown} (position {pos}): pjsip.conf would misread it"
            )
    validation.text(field, value, max_len=128)  # control characters, length
    return value


def _networks(field: str, value: object) -> list[str]:
    if value is None or value == "" or (isinstance(value, list | tuple) and not value):
        return []
    return validation.networks(field, value)


TRUNK_FIELDS: Mapping[str, Callable[[str, Any], Any]] = {
    "name": validation.identifier,
    "host": validation.host,
    "transport": lambda f, v: validation.choice(f, v, TRANSPORTS),
    "codecs": validation.codecs,
    "register": validation.boolean,
    "auth_username": sip_user,
    "auth_password": password,
    "from_user": sip_user,
    "identify_match": _networks,
    "enabled": validation.boolean,
}


def validate_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in values.items():
        checker = TRUNK_FIELDS.get(name)
        if checker is None:
            raise ValidationError(f"trunk.{name}", "is not a trunk setting")
        clean[name] = checker(f"trunk.{name}", value)
    return clean


def _check_auth(values: Mapping[str, Any]) -> None:
    """The rules across fields, on the merged (current + changed) values."""
    if (values.get("auth_username") is None) != (values.get("auth_password") is None):
        missing = "auth_password" if values.get("auth_password") is None else "auth_username"
        raise ValidationError(f"trunk.{missing}", "auth_username and auth_password go together")
    if values.get("register") and values.get("auth_username") is None:
        raise ValidationError(
            "trunk.auth_username", "registering to the provider needs auth_username and auth_password"
        )
    if not values.get("register") and not values.get("identify_match"):
        raise ValidationError(
            "trunk.identify",
            "the trunk neither registers nor identifies the provider by "
            "address, so no incoming call could be matched to it: enable "
            "registration with credentials, or give the provider's addresses",
        )


def trunk_id(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute("SELECT id FROM trunks WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"trunk {validation.shown(name)} does not exist")
    return int(row[0])


def create_trunk(
    conn: psycopg.Connection[Any],
    name: str,
    host: str,
    *,
    transport: str = "udp",
    context: str = "incall",
    codecs: Sequence[str] = DEFAULT_CODECS,
    register: bool = False,
    auth_username: str | None = None,
    auth_password: str | None = None,
    from_user: str | None = None,
    identify: Sequence[str] = (),
) -> int:
    """Create a trunk whose incoming calls enter the incall-type `context`."""
    values = validate_fields(
        {
            "name": name,
            "host": host,
            "transport": transport,
            "codecs": codecs if isinstance(codecs, str) else list(codecs),
            "register": register,
            "auth_username": auth_username,
            "auth_password": auth_password,
            "from_user": from_user,
            "identify_match": identify if isinstance(identify, str) else list(identify),
        }
    )
    _check_auth(values)
    values["context_id"] = context_id(
        conn, validation.identifier("trunk.context", context), expected_type="incall", field="trunk.context"
    )
    if conn.execute("SELECT 1 FROM trunks WHERE name = %s", (values["name"],)).fetchone():
        raise Conflict(f"trunk {values['name']!r} already exists")
    columns = list(values)
    placeholders = ", ".join("%s::cidr[]" if c == "identify_match" else "%s" for c in columns)
    row = conn.execute(
        f"INSERT INTO trunks ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id",
        list(values.values()),
    ).fetchone()
    assert row is not None
    events.emit(conn, "trunk", "created", id=row[0], name=values["name"])
    return int(row[0])


def update_trunk(conn: psycopg.Connection[Any], name: str, /, **changes: Any) -> list[str]:
    """Change TRUNK_FIELDS settings (`identify` is accepted for identify_match, `context` by name).

    None clears auth_username, auth_password or from_user. Returns the changed names.
    """
    if "identify" in changes:
        changes["identify_match"] = changes.pop("identify")
    context = changes.pop("context", None)
    values = validate_fields(changes)
    cur = conn.cursor(row_factory=dict_row)
    current = cur.execute(
        "SELECT id, register, auth_username, auth_password, identify_match::text[] AS identify_match "
        "FROM trunks WHERE name = %s FOR UPDATE",
        (name,),
    ).fetchone()
    if current is None:
        raise NotFound(f"trunk {validation.shown(name)} does not exist")
    _check_auth(current | values)
    if context is not None:
        values["context_id"] = context_id(
            conn,
            validation.identifier("trunk.context", context),
            expected_type="incall",
            field="trunk.context",
        )
    if not values:
        return []
    if (
        "name" in values
        and values["name"] != name
        and conn.execute("SELECT 1 FROM trunks WHERE name = %s", (values["name"],)).fetchone()
    ):
        raise Conflict(f"trunk {values['name']!r} already exists")
    assignments = ", ".join(f"{c} = %s::cidr[]" if c == "identify_match" else f"{c} = %s" for c in values)
    conn.execute(f"UPDATE trunks SET {assignments} WHERE id = %s", [*values.values(), current["id"]])
    changed = sorted("context" if c == "context_id" else c for c in values)
    events.emit(conn, "trunk", "updated", id=current["id"], name=values.get("name", name), fields=changed)
    return changed


def delete_trunk(conn: psycopg.Connection[Any], name: str) -> None:
    """Delete a trunk; refused while an outcall dials through it."""
    target = trunk_id(conn, name)
    users = [
        r[0]
        for r in conn.execute(
            "SELECT o.name FROM outcall_trunks t JOIN outcalls o ON o.id = t.outcall_id "
            "WHERE t.trunk_id = %s ORDER BY o.name",
            (target,),
        ).fetchall()
    ]
    if users:
        raise Conflict(
            f"trunk {name!r} is used by outcall {', '.join(users)}; take it out of "
            f"{'that outcall' if len(users) == 1 else 'those outcalls'} first"
        )
    try:
        with conn.transaction():
            conn.execute("DELETE FROM trunks WHERE id = %s", (target,))
    except psycopg.errors.ForeignKeyViolation:
        raise Conflict(f"trunk {name!r} is used by an outcall; take it out first") from None
    events.emit(conn, "trunk", "deleted", id=target, name=name)


def list_trunks(conn: psycopg.Connection[Any], trunk: int | None = None) -> list[dict[str, Any]]:
    """Trunks by name (only id `trunk` when given), without their password (has_password tells whether
    one is set); codecs, identify and outcalls are lists."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT t.id, t.name, t.host, t.transport, c.name AS context, t.codecs, "
        "  t.register, t.auth_username, t.auth_password IS NOT NULL AS has_password, t.from_user, "
        "  t.identify_match::text[] AS identify, t.enabled, "
        "  coalesce((SELECT array_agg(o.name ORDER BY o.name) FROM outcall_trunks ot "
        "     JOIN outcalls o ON o.id = ot.outcall_id WHERE ot.trunk_id = t.id), '{}') AS outcalls "
        "FROM trunks t JOIN contexts c ON c.id = t.context_id "
        "WHERE %(id)s::int IS NULL OR t.id = %(id)s::int ORDER BY t.name",
        {"id": trunk},
    ).fetchall()
