"""Many users at once, each with its line, extension and voicemail box: the fast path behind
`pbx-admin import users` and `pbx-admin demo`.

The rules are create_user's (users.check_user for the values, users.find_conflicts against the database
and between the items); only the writing differs:

1. every spec is checked in Python; the refused ones get an Outcome naming the field and the reason;
2. the database conflicts of all the others are found with a handful of queries (users.find_conflicts);
3. CTI passwords are hashed in a process pool (scrypt costs ~50 ms of CPU each: 10,000 users with CTI
   logins take about 250 s on 2 cores, against 0.5 s for everything else);
4. the users are written in chunks, one savepoint each: ids taken from the sequences, one COPY per table,
   the outbox events with one COPY (the rows events.emit writes, in create_user's order). A chunk the
   database still refuses (a concurrent writer took an extension in between) is split in halves down to
   single users, which go through create_user in their own savepoint and report its precise error.

A user's rows all land or none do. Nothing commits: the caller owns the transaction.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg

from confdb import events, passwords
from confdb.progress import Progress
from confdb.validation import ValidationError
from confdb.writer import bulk, lines, users
from confdb.writer.errors import WriteError

CHUNK_SIZE = 1000
PARALLEL_FROM = 4  # fewer passwords than this are hashed in this process

Hasher = Callable[[Sequence[str], Progress], list[str]]


@dataclass(frozen=True)
class Outcome:
    """What became of specs[index]: the created user, or the field and reason of its refusal."""

    index: int
    created: users.CreatedUser | None = None
    field: str | None = None
    error: str | None = None
    duplicate_of: int | None = None  # the earlier spec that took the same extension, login or box


@dataclass
class _Plan:
    index: int
    user: users.CheckedUser
    cti_hash: str | None
    line_name: str | None
    line_secret: str | None
    vm_pin: str | None


def hash_passwords(clear: Sequence[str], progress: Progress) -> list[str]:
    """scrypt hashes of `clear`, in order, on every CPU. A forkserver pool: the workers do not inherit
    our database connection or threads."""
    progress.phase("hashing CTI passwords", len(clear))
    if len(clear) < PARALLEL_FROM:
        result = []
        for password in clear:
            result.append(passwords.hash_password(password))
            progress.advance()
        return result
    workers = min(os.cpu_count() or 1, len(clear))
    context = multiprocessing.get_context("forkserver")
    result = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for hashed in pool.map(passwords.hash_password, clear, chunksize=4):
            result.append(hashed)
            progress.advance()
    return result


def placeholder_hashes(clear: Sequence[str], progress: Progress) -> list[str]:
    """For dry runs: a value the schema accepts, at no cost. Never commit it."""
    return ["$scrypt$dry-run"] * len(clear)


def _line_names(conn: psycopg.Connection[Any], count: int) -> list[str]:
    """`count` distinct fresh line names (lines.create_line's generator), none already in the database."""
    names: list[str] = []
    taken: set[str] = set()
    while len(names) < count:
        wanted = {lines._random_name() for _ in range(count - len(names))} - taken
        clash = {
            r[0]
            for r in conn.execute(
                "SELECT name FROM lines WHERE name = ANY(%(n)s) UNION SELECT auth_username FROM lines "
                "WHERE auth_username = ANY(%(n)s)",
                {"n": sorted(wanted)},
            )
        }
        fresh = sorted(wanted - clash)
        names += fresh
        taken |= wanted
    return names


def create_users(
    conn: psycopg.Connection[Any],
    specs: Sequence[users.UserSpec],
    *,
    progress: Progress | None = None,
    hasher: Hasher = hash_passwords,
    chunk_size: int = CHUNK_SIZE,
) -> list[Outcome]:
    """Create every acceptable spec; one Outcome per spec, in order."""
    progress = progress or Progress(mode="off")
    outcomes: dict[int, Outcome] = {}
    checked: list[tuple[int, users.CheckedUser]] = []
    progress.phase("checking", len(specs))
    for index, spec in enumerate(specs):
        try:
            checked.append((index, users.check_user(spec)))
        except ValidationError as exc:
            outcomes[index] = Outcome(index, field=exc.field, error=exc.message)
        progress.advance()

    resolved = users.find_conflicts(conn, [c for _, c in checked])
    accepted: list[tuple[int, users.CheckedUser]] = []
    for position, (index, user) in enumerate(checked):
        problem = resolved.problems.get(position)
        if problem is None:
            accepted.append((index, user))
            continue
        earlier = None if problem.duplicate_of is None else checked[problem.duplicate_of][0]
        outcomes[index] = Outcome(
            index, field=problem.field, error=problem.error.message, duplicate_of=earlier
        )

    with_cti = [(index, user) for index, user in accepted if user.cti_password]
    hashes = dict(
        zip(
            [i for i, _ in with_cti],
            hasher([u.cti_password or "" for _, u in with_cti], progress),
            strict=True,
        )
    )
    names = iter(_line_names(conn, sum(1 for _, u in accepted if u.new_line)))
    plans = [
        _Plan(
            index,
            user,
            hashes.get(index),
            next(names) if user.new_line else None,
            passwords.generate_sip_secret() if user.new_line else None,
            (user.voicemail.pin or passwords.generate_pin()) if user.voicemail else None,
        )
        for index, user in accepted
    ]

    def write_one(plan: _Plan) -> None:
        try:
            with conn.transaction():
                created = users.create_user(conn, specs[plan.index])
        except ValidationError as exc:
            outcomes[plan.index] = Outcome(plan.index, field=exc.field, error=exc.message)
        except WriteError as exc:
            outcomes[plan.index] = Outcome(plan.index, field=exc.field or None, error=exc.message)
        except psycopg.Error as exc:
            if conn.closed or conn.broken:
                raise
            message = (exc.diag.message_primary if exc.diag else None) or str(exc)
            outcomes[plan.index] = Outcome(plan.index, error=f"database refused: {message.strip()}")
        else:
            outcomes[plan.index] = Outcome(plan.index, created=created)

    def write_chunk(chunk: Sequence[_Plan]) -> None:
        for created in _write_chunk(conn, chunk, resolved):
            outcomes[created[0]] = Outcome(created[0], created=created[1])

    progress.phase("writing", len(plans))
    bulk.write_in_chunks(
        conn, plans, write_chunk, write_one, chunk_size=chunk_size, on_written=progress.advance
    )
    progress.done()
    return [outcomes[index] for index in range(len(specs))]


def _write_chunk(
    conn: psycopg.Connection[Any], chunk: Sequence[_Plan], resolved: users.Resolved
) -> list[tuple[int, users.CreatedUser]]:
    user_ids = bulk.allocate_ids(conn, "users", len(chunk))
    boxes = [p for p in chunk if p.user.voicemail]
    box_ids = dict(
        zip((p.index for p in boxes), bulk.allocate_ids(conn, "voicemails", len(boxes)), strict=True)
    )
    new_lines = [p for p in chunk if p.line_name]
    line_ids = dict(
        zip((p.index for p in new_lines), bulk.allocate_ids(conn, "lines", len(new_lines)), strict=True)
    )
    uuids = [str(uuid.uuid4()) for _ in chunk]

    bulk.copy_rows(
        conn,
        "voicemails",
        ("id", "context", "mailbox", "fullname", "email", "pin", "language"),
        [
            (box_ids[p.index], v.context, v.mailbox, v.fullname, v.email, p.vm_pin, v.language)
            for p in boxes
            if (v := p.user.voicemail)
        ],
    )

    by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for plan, user_id, user_uuid in zip(chunk, user_ids, uuids, strict=True):
        values = dict(plan.user.values)
        if plan.cti_hash:
            values["cti_password_hash"] = plan.cti_hash
        if plan.index in box_ids:
            values["voicemail_id"] = box_ids[plan.index]
        columns = ("id", "uuid", *values)
        by_columns.setdefault(columns, []).append((user_id, user_uuid, *values.values()))
    for columns, rows in by_columns.items():
        bulk.copy_rows(conn, "users", columns, rows)

    realm = lines.DEFAULT_REALM
    bulk.copy_rows(
        conn,
        "lines",
        ("id", "name", "auth_username", "secret_ha1", "realm", "context_id"),
        [
            (
                line_ids[p.index],
                p.line_name,
                p.line_name,
                passwords.sip_ha1(p.line_name, realm, p.line_secret or ""),
                realm,
                resolved.context_ids[p.user.context],
            )
            for p in new_lines
            if p.line_name
        ],
    )
    # A new user on a new line is that line's main user and that user's main line (lines.associate's rule).
    bulk.copy_rows(
        conn,
        "user_lines",
        ("user_id", "line_id", "main_user", "main_line"),
        [
            (user_id, line_ids[p.index], True, True)
            for p, user_id in zip(chunk, user_ids, strict=True)
            if p.index in line_ids
        ],
    )
    for plan, user_id in zip(chunk, user_ids, strict=True):
        if plan.user.shared_line:
            lines.associate(conn, user_id, resolved.line_ids[plan.user.shared_line])
    bulk.copy_rows(
        conn,
        "extensions",
        ("context_id", "exten", "type", "user_id"),
        [
            (resolved.context_ids[p.user.context], p.user.exten, "user", user_id)
            for p, user_id in zip(chunk, user_ids, strict=True)
            if p.user.exten
        ],
    )

    queued: list[tuple[str, str, dict[str, Any]]] = []
    created: list[tuple[int, users.CreatedUser]] = []
    for plan, user_id, user_uuid in zip(chunk, user_ids, uuids, strict=True):
        user = plan.user
        if user.voicemail:
            queued.append(
                (
                    "voicemail",
                    "created",
                    {
                        "id": box_ids[plan.index],
                        "mailbox": user.voicemail.mailbox,
                        "context": user.voicemail.context,
                    },
                )
            )
        queued.append(("user", "created", {"id": user_id, "uuid": user_uuid}))
        line = None
        if plan.line_name:
            line_id = line_ids[plan.index]
            line = lines.NewLine(line_id, plan.line_name, plan.line_name, plan.line_secret or "")
            queued.append(("line", "created", {"id": line_id, "name": plan.line_name}))
            queued.append(("user_line", "created", {"user_id": user_id, "line_id": line_id}))
        if user.exten:
            queued.append(
                ("extension", "created", {"context": user.context, "exten": user.exten, "user_id": user_id})
            )
        created.append(
            (
                plan.index,
                users.CreatedUser(user_id, user_uuid, user.exten, line, user.shared_line, plan.vm_pin),
            )
        )
    events.emit_many(conn, queued)
    return created
