"""PostgreSQL roles: one owner, one writer, one read-only role per daemon, each granted only what it reads.

`ensure_roles` (as a superuser) creates the roles and the database, with generated passwords kept in
root-only files. `apply_grants` (as the owner) re-applies the grant table after every migration.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import psycopg
from psycopg import sql

from confdb.read import confgend as confgend_reads

OWNER = "pbx_owner"
WRITER = "pbx_writer"
READERS = ("pbx_confgend", "pbx_agid", "pbx_ctid")
ALL_ROLES = (OWNER, WRITER, *READERS)

ALL = ("*",)
# What each daemon reads. A table maps to ALL or to the only columns the role may select.
READ_GRANTS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    # confgend reads the tables its snapshot declares: whole, or only the columns it declares of them.
    "pbx_confgend": {table: confgend_reads.COLUMNS.get(table, ALL) for table in confgend_reads.TABLES},
    "pbx_agid": {
        "users": (
            "id",
            "uuid",
            "firstname",
            "lastname",
            "callerid_name",
            "callerid_num",
            "language",
            "ring_seconds",
            "simultaneous_calls",
            "dnd",
            "fwd_unconditional_enabled",
            "fwd_unconditional",
            "fwd_busy_enabled",
            "fwd_busy",
            "fwd_noanswer_enabled",
            "fwd_noanswer",
            "voicemail_id",
            "enabled",
        ),
        "lines": ("id", "name", "context_id", "enabled", "max_contacts"),
        "trunks": ("id", "name", "enabled"),
        "voicemails": ("id", "context", "mailbox", "enabled"),
        **{
            table: ALL
            for table in (
                "contexts",
                "user_lines",
                "extensions",
                "groups",
                "group_members",
                "queues",
                "incalls",
                "schedules",
                "schedule_periods",
                "outcalls",
                "outcall_patterns",
                "outcall_trunks",
                "phonebook_entries",
                "phonebook_numbers",
            )
        },
    },
    "pbx_ctid": {
        "users": (
            "id",
            "uuid",
            "firstname",
            "lastname",
            "callerid_name",
            "callerid_num",
            "dnd",
            "cti_login",
            "cti_password_hash",
            "enabled",
            "fwd_unconditional_enabled",
            "fwd_unconditional",
            "fwd_busy_enabled",
            "fwd_busy",
            "fwd_noanswer_enabled",
            "fwd_noanswer",
        ),
        "lines": ("id", "name", "context_id", "enabled"),
        **{
            table: ALL
            for table in ("contexts", "user_lines", "extensions", "queues", "queue_members", "agents")
        },
    },
}


def generate_password() -> str:
    return secrets.token_urlsafe(32)


def password_file(secrets_dir: Path, role: str) -> Path:
    return secrets_dir / f"{role}.password"


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.replace(tmp, path)


def role_dsn(host: str, port: int, dbname: str, role: str, password: str) -> str:
    return psycopg.conninfo.make_conninfo(host=host, port=port, dbname=dbname, user=role, password=password)


def write_dsn_files(secrets_dir: Path, host: str, port: int, dbname: str, passwords: dict[str, str]) -> None:
    """One root-only `<role>.dsn` per role, what each daemon's configuration points to."""
    for role, password in passwords.items():
        _write_secret(secrets_dir / f"{role}.dsn", role_dsn(host, port, dbname, role, password))


def ensure_roles(superuser_dsn: str, dbname: str, secrets_dir: Path) -> dict[str, str]:
    """Create the roles (passwords generated once) and the database. Safe to run again."""
    passwords: dict[str, str] = {}
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        for role in ALL_ROLES:
            path = password_file(secrets_dir, role)
            known = path.exists()
            password = path.read_text().strip() if known else generate_password()
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if not exists:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(password)
                    )
                )
            elif not known:
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
                )
            if not known:
                _write_secret(path, password)
            passwords[role] = password
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                    sql.Identifier(dbname), sql.Identifier(OWNER)
                )
            )
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)))
        for role in ALL_ROLES:
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(dbname), sql.Identifier(role)
                )
            )
    return passwords


def apply_grants(owner_dsn: str) -> None:
    """Make every role's privileges exactly what the grant table says. Idempotent; run after migrations."""
    with psycopg.connect(owner_dsn) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        roles = sql.SQL(", ").join(sql.Identifier(r) for r in (WRITER, *READERS))
        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA public FROM PUBLIC"))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(roles))
        for table in tables:
            ident = sql.Identifier(table)
            conn.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC, {}").format(ident, roles))
            # Column-level grants survive a table-level REVOKE: clear them too.
            for (column,) in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped",
                (table,),
            ).fetchall():
                conn.execute(
                    sql.SQL("REVOKE ALL ({}) ON {} FROM {}").format(sql.Identifier(column), ident, roles)
                )
            privileges = "SELECT" if table == "alembic_version" else "SELECT, INSERT, UPDATE, DELETE"
            conn.execute(sql.SQL(f"GRANT {privileges} ON {{}} TO {{}}").format(ident, sql.Identifier(WRITER)))
        conn.execute(
            sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(
                sql.Identifier(WRITER)
            )
        )
        for role, grants in READ_GRANTS.items():
            for table, columns in grants.items():
                if table not in tables:
                    continue  # an older schema revision: granted once the migration creates it
                target = sql.Identifier(table)
                if columns == ALL:
                    stmt = sql.SQL("GRANT SELECT ON {} TO {}").format(target, sql.Identifier(role))
                else:
                    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
                    stmt = sql.SQL("GRANT SELECT ({}) ON {} TO {}").format(cols, target, sql.Identifier(role))
                conn.execute(stmt)
