"""The company phonebook: entries with several numbers each, indexed for reverse lookup.

Each number is stored as written and as ``numbers.normalize(number, country=...)``, the form agid looks up
caller IDs by. The country is pbx-admin's ``directory.country``; after changing it, ``renormalize`` brings
the stored forms in line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from confdb import events, numbers, validation
from confdb.progress import Progress
from confdb.validation import ValidationError
from confdb.writer import bulk
from confdb.writer.errors import NotFound

NUMBER_KINDS = ("office", "mobile", "home", "fax", "other")
MAX_NUMBERS = 20
TEXT_FIELDS = ("display_name", "firstname", "lastname", "company")


@dataclass(frozen=True)
class PhoneNumber:
    number: str
    kind: str = "office"


@dataclass
class EntrySpec:
    display_name: str = ""  # default: "firstname lastname", else the company
    firstname: str = ""
    lastname: str = ""
    company: str = ""
    email: str | None = None
    numbers: list[PhoneNumber] = field(default_factory=list)


@dataclass(frozen=True)
class CheckedEntry:
    display_name: str
    firstname: str
    lastname: str
    company: str
    email: str | None
    numbers: tuple[tuple[str, str, str], ...]  # (kind, number as written, normalized)


def check_numbers(numbers_: Sequence[PhoneNumber], *, country: str) -> tuple[tuple[str, str, str], ...]:
    if len(numbers_) > MAX_NUMBERS:
        raise ValidationError("phonebook.numbers", f"{len(numbers_)} numbers, the limit is {MAX_NUMBERS}")
    result = []
    for item in numbers_:
        kind = validation.choice("phonebook.kind", item.kind, NUMBER_KINDS)
        number = validation.phone_number(f"phonebook.{kind}", item.number)
        normalized = numbers.normalize(number, country=country)
        if len(normalized) < 2:
            raise ValidationError(f"phonebook.{kind}", f"{number!r} has fewer than two digits")
        result.append((kind, number, normalized))
    return tuple(result)


def check_entry(spec: EntrySpec, *, country: str = numbers.DEFAULT_COUNTRY) -> CheckedEntry:
    """Every rule on an entry (no database needed): shared by create_entry and the bulk path."""
    names = {
        name: validation.text(f"phonebook.{name}", getattr(spec, name) or "", required=False)
        for name in TEXT_FIELDS
    }
    if not names["display_name"]:
        names["display_name"] = f"{names['firstname']} {names['lastname']}".strip() or names["company"]
    if not names["display_name"]:
        raise ValidationError(
            "phonebook.display_name", "give a display name, a first or last name or a company"
        )
    email = validation.email("phonebook.email", spec.email)
    if email is not None and len(email) > 254:
        raise ValidationError("phonebook.email", "is longer than 254 characters")
    return CheckedEntry(
        names["display_name"],
        names["firstname"],
        names["lastname"],
        names["company"],
        email,
        check_numbers(spec.numbers, country=country),
    )


def _insert_numbers(conn: psycopg.Connection[Any], rows: Sequence[tuple[int, str, str, str]]) -> None:
    bulk.copy_rows(conn, "phonebook_numbers", ("entry_id", "kind", "number", "normalized"), rows)


def create_entry(
    conn: psycopg.Connection[Any], spec: EntrySpec, *, country: str = numbers.DEFAULT_COUNTRY
) -> int:
    entry = check_entry(spec, country=country)
    row = conn.execute(
        "INSERT INTO phonebook_entries (display_name, firstname, lastname, company, email) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (entry.display_name, entry.firstname, entry.lastname, entry.company, entry.email),
    ).fetchone()
    assert row is not None
    entry_id = int(row[0])
    _insert_numbers(conn, [(entry_id, *n) for n in entry.numbers])
    events.emit(conn, "phonebook_entry", "created", id=entry_id)
    return entry_id


def create_entries(
    conn: psycopg.Connection[Any],
    entries: Sequence[CheckedEntry],
    *,
    progress: Progress | None = None,
    chunk_size: int = 2000,
) -> list[int]:
    """Bulk variant of create_entry for checked entries (import, demo): ids in order. Nothing here can
    conflict (the phonebook has no unique keys), so any database error is a real failure and propagates."""
    ids: list[int] = []
    for start in range(0, len(entries), chunk_size):
        chunk = entries[start : start + chunk_size]
        chunk_ids = bulk.allocate_ids(conn, "phonebook_entries", len(chunk))
        bulk.copy_rows(
            conn,
            "phonebook_entries",
            ("id", "display_name", "firstname", "lastname", "company", "email"),
            [
                (i, e.display_name, e.firstname, e.lastname, e.company, e.email)
                for i, e in zip(chunk_ids, chunk, strict=True)
            ],
        )
        _insert_numbers(conn, [(i, *n) for i, e in zip(chunk_ids, chunk, strict=True) for n in e.numbers])
        events.emit_many(conn, [("phonebook_entry", "created", {"id": i}) for i in chunk_ids])
        ids += chunk_ids
        if progress:
            progress.advance(len(chunk))
    return ids


def _require(conn: psycopg.Connection[Any], entry_id: int) -> None:
    if not conn.execute("SELECT 1 FROM phonebook_entries WHERE id = %s FOR UPDATE", (entry_id,)).fetchone():
        raise NotFound(f"phonebook entry {entry_id} does not exist")


def update_entry(
    conn: psycopg.Connection[Any],
    entry_id: int,
    changes: Mapping[str, Any],
    *,
    numbers_: Sequence[PhoneNumber] | None = None,
    country: str = numbers.DEFAULT_COUNTRY,
) -> list[str]:
    """Change the given fields; `numbers_` (when not None) replaces all the entry's numbers."""
    unknown = set(changes) - {*TEXT_FIELDS, "email"}
    if unknown:
        raise ValidationError(f"phonebook.{sorted(unknown)[0]}", "is not a phonebook field")
    _require(conn, entry_id)
    current = get_entry(conn, entry_id)
    merged = EntrySpec(
        **{k: current[k] for k in (*TEXT_FIELDS, "email")} | dict(changes), numbers=list(numbers_ or [])
    )
    entry = check_entry(merged, country=country)
    values = {k: getattr(entry, k) for k in changes}
    changed = sorted(values)
    if values:
        assignments = ", ".join(f"{column} = %s" for column in values)
        conn.execute(
            f"UPDATE phonebook_entries SET {assignments} WHERE id = %s", [*values.values(), entry_id]
        )
    if numbers_ is not None:
        conn.execute("DELETE FROM phonebook_numbers WHERE entry_id = %s", (entry_id,))
        _insert_numbers(conn, [(entry_id, *n) for n in entry.numbers])
        changed.append("numbers")
    if changed:
        events.emit(conn, "phonebook_entry", "updated", id=entry_id, fields=changed)
    return changed


def delete_entry(conn: psycopg.Connection[Any], entry_id: int) -> None:
    if (
        conn.execute("DELETE FROM phonebook_entries WHERE id = %s RETURNING id", (entry_id,)).fetchone()
        is None
    ):
        raise NotFound(f"phonebook entry {entry_id} does not exist")
    events.emit(conn, "phonebook_entry", "deleted", id=entry_id)


_SELECT = (
    "SELECT e.id, e.display_name, e.firstname, e.lastname, e.company, e.email, "
    "  coalesce((SELECT json_agg(json_build_object('kind', n.kind, 'number', n.number, "
    "     'normalized', n.normalized) ORDER BY n.id) FROM phonebook_numbers n WHERE n.entry_id = e.id), "
    "     '[]') AS numbers "
    "FROM phonebook_entries e "
)


def _rows(cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def get_entry(conn: psycopg.Connection[Any], entry_id: int) -> dict[str, Any]:
    rows = _rows(conn.execute(_SELECT + "WHERE e.id = %s", (entry_id,)))
    if not rows:
        raise NotFound(f"phonebook entry {entry_id} does not exist")
    return rows[0]


def list_entries(
    conn: psycopg.Connection[Any], *, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    return _rows(conn.execute(_SELECT + "ORDER BY e.display_name, e.id LIMIT %s OFFSET %s", (limit, offset)))


def search(
    conn: psycopg.Connection[Any], text: str, *, country: str = numbers.DEFAULT_COUNTRY, limit: int = 50
) -> list[dict[str, Any]]:
    """Entries whose names, company or e-mail contain `text` (case-insensitive), or that have the number
    `text` (compared in normalised form)."""
    text = validation.text("phonebook.search", text, max_len=128)
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    digits = numbers.normalize(text, country=country) if any(ch.isdigit() for ch in text) else None
    return _rows(
        conn.execute(
            _SELECT + "WHERE e.display_name ILIKE %(p)s OR e.firstname ILIKE %(p)s OR e.lastname ILIKE %(p)s "
            "OR e.company ILIKE %(p)s OR e.email ILIKE %(p)s OR e.id IN "
            "(SELECT entry_id FROM phonebook_numbers WHERE normalized = %(n)s) "
            "ORDER BY e.display_name, e.id LIMIT %(l)s",
            {"p": pattern, "n": digits, "l": limit},
        )
    )


def lookup(
    conn: psycopg.Connection[Any], number: str, *, country: str = numbers.DEFAULT_COUNTRY
) -> list[dict[str, Any]]:
    """Reverse lookup, as agid does it: the entries having `number`, with the kind of the matching number."""
    normalized = numbers.normalize(number, country=country)
    cur = conn.execute(
        "SELECT e.id, e.display_name, e.company, n.kind, n.number, n.normalized FROM phonebook_numbers n "
        "JOIN phonebook_entries e ON e.id = n.entry_id WHERE n.normalized = %s ORDER BY e.id, n.id",
        (normalized,),
    )
    return _rows(cur)


def renormalize(conn: psycopg.Connection[Any], *, country: str = numbers.DEFAULT_COUNTRY) -> int:
    """Recompute every stored normalised form (after directory.country changed); returns how many changed."""
    rows = conn.execute(
        "SELECT id, entry_id, number, normalized FROM phonebook_numbers ORDER BY id"
    ).fetchall()
    changed = [
        (numbers.normalize(number, country=country), id_, entry)
        for id_, entry, number, old in rows
        if numbers.normalize(number, country=country) != old
    ]
    if changed:
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE phonebook_numbers SET normalized = %s WHERE id = %s", [(n, i) for n, i, _ in changed]
            )
        events.emit_many(
            conn,
            [
                ("phonebook_entry", "updated", {"id": e, "fields": ["numbers"]})
                for e in sorted({e for _, _, e in changed})
            ],
        )
    return len(changed)
