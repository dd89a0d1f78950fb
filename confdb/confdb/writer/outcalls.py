"""Outcalls: dial patterns of an outcall context sent out through an ordered list of trunks.

A pattern is an extension pattern (`_0XXXXXXXXX`, `_00.`) or a literal number (`112`). Before dialling,
`strip` leading digits are removed and `prefix` is prepended: `_0XXXXXXXXX` with strip 1 and prefix +33
sends 0612345678 as +33612345678. `callerid` overrides the caller's number for this pattern. On the
command line a pattern is written `PATTERN [strip=N] [prefix=P] [callerid=NUMBER]`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from confdb import asterisk_values, events, validation
from confdb.validation import ValidationError
from confdb.writer.contexts import context_id
from confdb.writer.errors import Conflict, NotFound

OPTIONS = ("strip", "prefix", "callerid")  # what may follow a pattern on the command line


@dataclass(frozen=True)
class OutcallPattern:
    pattern: str
    strip: int = 0
    prefix: str = ""
    callerid: str | None = None

    def __str__(self) -> str:
        extra = [f"strip={self.strip}"] if self.strip else []
        extra += [f"prefix={self.prefix}"] if self.prefix else []
        extra += [f"callerid={self.callerid}"] if self.callerid else []
        return " ".join([self.pattern, *extra])


def min_digits(pattern: str) -> int:
    """How many characters the shortest number matching an extension or pattern has."""
    if not pattern.startswith("_"):
        return len(pattern)
    body = re.sub(r"\[[^\]]*\]", "X", pattern[1:])  # a set matches one character
    return len(body.replace("!", ""))  # '.' matches one or more characters, '!' zero or more


def parse_pattern(text: str) -> OutcallPattern:
    """`_0XXXXXXXXX strip=1 prefix=+33` -> OutcallPattern('_0XXXXXXXXX', 1, '+33')."""
    field = "outcall_pattern"
    if not isinstance(text, str) or not text.split():
        raise ValidationError(f"{field}.pattern", "must be text such as '_0XXXXXXXXX strip=1 prefix=+33'")
    first, *options = text.split()
    values: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key not in OPTIONS or key in values:
            raise ValidationError(  # the field is ours, never the user's text
                f"{field}.{key if key in OPTIONS else 'options'}",
                f"{validation.shown(option)} is not one of strip=N, prefix=DIGITS, callerid=NUMBER "
                "(each at most once)",
            )
        values[key] = value
    return check_pattern(OutcallPattern(first, **values))


def check_pattern(pattern: OutcallPattern) -> OutcallPattern:
    field = "outcall_pattern"
    if not isinstance(pattern, OutcallPattern):
        raise ValidationError(f"{field}.pattern", f"must be an OutcallPattern, not {type(pattern).__name__}")
    text = validation.extension(f"{field}.pattern", pattern.pattern)
    strip = validation.integer(f"{field}.strip", pattern.strip, minimum=0, maximum=20)
    if strip > min_digits(text):
        raise ValidationError(
            f"{field}.strip", f"strips {strip} digits but {text} matches numbers of {min_digits(text)}"
        )
    prefix = validation.text(f"{field}.prefix", pattern.prefix, max_len=21, required=False)
    if not asterisk_values.PREFIX.matches(prefix):
        raise ValidationError(
            f"{field}.prefix",
            f"{validation.shown(prefix)} is not {asterisk_values.PREFIX.what}",
        )
    callerid = validation.optional_dialable(f"{field}.callerid", pattern.callerid)
    return OutcallPattern(text, strip, prefix, callerid)


def outcall_id(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute("SELECT id FROM outcalls WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"outcall {validation.shown(name)} does not exist")
    return int(row[0])


def _trunk_ids(conn: psycopg.Connection[Any], names: Sequence[str]) -> list[int]:
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    if not names:
        raise ValidationError("outcall.trunks", "an outcall needs at least one trunk to dial through")
    clean = [validation.identifier("outcall.trunks", n) for n in names]
    duplicates = sorted({n for n in clean if clean.count(n) > 1})
    if duplicates:
        raise ValidationError("outcall.trunks", f"trunk {', '.join(duplicates)} is listed twice")
    ids = []
    for name in clean:
        row = conn.execute("SELECT id FROM trunks WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise NotFound(f"trunk {validation.shown(name)} does not exist")
        ids.append(int(row[0]))
    return ids


def _write_trunks(conn: psycopg.Connection[Any], target: int, trunk_ids: list[int]) -> None:
    conn.execute("DELETE FROM outcall_trunks WHERE outcall_id = %s", (target,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO outcall_trunks (outcall_id, trunk_id, position) VALUES (%s, %s, %s)",
            [(target, trunk, pos) for pos, trunk in enumerate(trunk_ids)],
        )


def _insert_pattern(conn: psycopg.Connection[Any], target: int, name: str, pattern: OutcallPattern) -> int:
    taken = conn.execute(
        "SELECT o.name, c.name FROM outcall_patterns p JOIN outcalls o ON o.id = p.outcall_id "
        "JOIN contexts c ON c.id = o.context_id "
        "WHERE p.pattern = %s AND o.context_id = (SELECT context_id FROM outcalls WHERE id = %s)",
        (pattern.pattern, target),
    ).fetchone()
    if taken:
        where = "this outcall" if taken[0] == name else f"outcall {taken[0]!r}"
        raise Conflict(f"pattern {pattern.pattern} is already dialled by {where} in context {taken[1]!r}")
    row = conn.execute(
        "INSERT INTO outcall_patterns (outcall_id, pattern, strip, prefix, callerid) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (target, pattern.pattern, pattern.strip, pattern.prefix, pattern.callerid),
    ).fetchone()
    assert row is not None
    events.emit(
        conn,
        "outcall_pattern",
        "created",
        id=row[0],
        outcall_id=target,
        outcall=name,
        pattern=pattern.pattern,
    )
    return int(row[0])


def create_outcall(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    context: str = "outcall",
    trunks: Sequence[str] = (),
    patterns: Sequence[OutcallPattern | str] = (),
    internal_callerid: bool = False,
    ring_seconds: int = 60,
) -> int:
    """Create an outcall in an outcall-type context; `trunks` are tried in the order given."""
    name = validation.identifier("outcall.name", name)
    internal_callerid = validation.boolean("outcall.internal_callerid", internal_callerid)
    ring_seconds = validation.integer("outcall.ring_seconds", ring_seconds, minimum=5, maximum=600)
    clean = [parse_pattern(p) if isinstance(p, str) else check_pattern(p) for p in patterns]
    repeated = sorted({p.pattern for p in clean if [q.pattern for q in clean].count(p.pattern) > 1})
    if repeated:
        raise ValidationError("outcall_pattern.pattern", f"{', '.join(repeated)} is given twice")
    ctx = context_id(
        conn,
        validation.identifier("outcall.context", context),
        expected_type="outcall",
        field="outcall.context",
    )
    trunk_ids = _trunk_ids(conn, trunks)
    if conn.execute("SELECT 1 FROM outcalls WHERE name = %s", (name,)).fetchone():
        raise Conflict(f"outcall {name!r} already exists")
    row = conn.execute(
        "INSERT INTO outcalls (name, context_id, internal_callerid, ring_seconds) VALUES (%s, %s, %s, %s) "
        "RETURNING id",
        (name, ctx, internal_callerid, ring_seconds),
    ).fetchone()
    assert row is not None
    target = int(row[0])
    events.emit(conn, "outcall", "created", id=target, name=name)
    _write_trunks(conn, target, trunk_ids)
    for pattern in clean:
        _insert_pattern(conn, target, name, pattern)
    return target


def update_outcall(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    new_name: str | None = None,
    internal_callerid: bool | None = None,
    ring_seconds: int | None = None,
) -> list[str]:
    target = outcall_id(conn, name)
    values: dict[str, Any] = {}
    if new_name is not None:
        values["name"] = validation.identifier("outcall.name", new_name)
        if (
            values["name"] != name
            and conn.execute("SELECT 1 FROM outcalls WHERE name = %s", (values["name"],)).fetchone()
        ):
            raise Conflict(f"outcall {values['name']!r} already exists")
    if internal_callerid is not None:
        values["internal_callerid"] = validation.boolean("outcall.internal_callerid", internal_callerid)
    if ring_seconds is not None:
        values["ring_seconds"] = validation.integer(
            "outcall.ring_seconds", ring_seconds, minimum=5, maximum=600
        )
    if not values:
        return []
    conn.execute(
        f"UPDATE outcalls SET {', '.join(f'{c} = %s' for c in values)} WHERE id = %s",
        [*values.values(), target],
    )
    events.emit(conn, "outcall", "updated", id=target, name=values.get("name", name), fields=sorted(values))
    return sorted(values)


def set_trunks(conn: psycopg.Connection[Any], name: str, trunks: Sequence[str]) -> None:
    """Replace the outcall's trunks by `trunks`, tried in this order."""
    target = outcall_id(conn, name)
    _write_trunks(conn, target, _trunk_ids(conn, trunks))
    events.emit(conn, "outcall", "updated", id=target, name=name, fields=["trunks"])


def add_pattern(conn: psycopg.Connection[Any], name: str, pattern: OutcallPattern | str) -> int:
    target = outcall_id(conn, name)
    clean = parse_pattern(pattern) if isinstance(pattern, str) else check_pattern(pattern)
    return _insert_pattern(conn, target, name, clean)


def remove_pattern(conn: psycopg.Connection[Any], name: str, pattern: str) -> None:
    target = outcall_id(conn, name)
    row = conn.execute(
        "DELETE FROM outcall_patterns WHERE outcall_id = %s AND pattern = %s RETURNING id",
        (target, str(pattern).strip()),
    ).fetchone()
    if row is None:
        raise NotFound(f"outcall {name!r} has no pattern {pattern}")
    events.emit(
        conn,
        "outcall_pattern",
        "deleted",
        id=row[0],
        outcall_id=target,
        outcall=name,
        pattern=str(pattern).strip(),
    )


def delete_outcall(conn: psycopg.Connection[Any], name: str) -> None:
    """Delete an outcall with its patterns and trunk list (the trunks themselves stay)."""
    target = outcall_id(conn, name)
    conn.execute("DELETE FROM outcalls WHERE id = %s", (target,))
    events.emit(conn, "outcall", "deleted", id=target, name=name)


def get_patterns(conn: psycopg.Connection[Any], target: int) -> list[OutcallPattern]:
    return [
        OutcallPattern(*r)
        for r in conn.execute(
            "SELECT pattern, strip, prefix, callerid FROM outcall_patterns WHERE outcall_id = %s "
            "ORDER BY pattern",
            (target,),
        ).fetchall()
    ]


def list_outcalls(conn: psycopg.Connection[Any], outcall: int | None = None) -> list[dict[str, Any]]:
    """Outcalls by name (only id `outcall` when given); trunks a list in dialling order, patterns a list of
    {pattern, strip, prefix, callerid} objects."""
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute(
        "SELECT o.id, o.name, c.name AS context, o.internal_callerid, o.ring_seconds, "
        "  coalesce((SELECT array_agg(t.name ORDER BY ot.position) FROM outcall_trunks ot "
        "     JOIN trunks t ON t.id = ot.trunk_id WHERE ot.outcall_id = o.id), '{}') AS trunks "
        "FROM outcalls o JOIN contexts c ON c.id = o.context_id "
        "WHERE %(id)s::int IS NULL OR o.id = %(id)s::int ORDER BY o.name",
        {"id": outcall},
    ).fetchall()
    for row in rows:
        row["patterns"] = [dataclasses.asdict(p) for p in get_patterns(conn, row["id"])]
    return rows
