"""The read model on a real database, as role pbx_confgend, and the generators on what it returns."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from confdb import demo
from confdb.read.confgend import TABLES, load_snapshot
from confdb.roles import READ_GRANTS
from confdb.writer import bulk_users, lines, users
from confgend.generators import GENERATORS
from confgend.generators.base import Context
from testkit.confgend.astconf import parse

ASTERISKLINT = Path(sys.executable).parent / "asterisklint"


def test_the_role_reads_exactly_the_declared_tables() -> None:
    # the snapshot itself runs as pbx_confgend below: a table it reads but does not declare fails there
    assert set(READ_GRANTS["pbx_confgend"]) == set(TABLES)


def test_snapshot_of_the_demo_generates_clean_files(pbx_db, tmp_path: Path) -> None:
    with psycopg.connect(pbx_db.dsn()) as conn:
        demo.create_demo(
            conn, users_count=40, phonebook_count=0, seed=3, cti_users=0, hasher=bulk_users.placeholder_hashes
        )
    with psycopg.connect(pbx_db.dsn("pbx_confgend"), autocommit=True) as conn:
        snap = load_snapshot(conn)
        assert conn.autocommit
    assert len(snap.users) == 40
    assert {c.name for c in snap.contexts} >= {"internal", "incall", "outcall", "services"}
    internal = next(c for c in snap.contexts if c.name == "internal")
    assert internal.includes == ("services", "outcall")
    assert any(len(line.user_ids) > 1 for line in snap.lines), "the demo shares some phones"
    assert any(len(user.lines) > 1 for user in snap.users), "the demo gives some users a second line"
    assert snap.queues and snap.groups and snap.incalls and snap.outcalls and snap.trunks and snap.schedules

    ctx = Context()
    files = {name: gen.generate(snap, ctx) for name, gen in GENERATORS.items()}
    assert [s for s in ctx.skipped if "AMI user" not in s] == []
    for name, text in files.items():
        assert parse(text).directives == [], name
    pjsip = parse(files["asterisk/pjsip.conf"])
    endpoints = [s for s in pjsip.sections if s.options == ("pbx-endpoint",)]
    assert len(endpoints) == len(snap.lines)
    path = tmp_path / "extensions.conf"
    path.write_text(files["asterisk/extensions.conf"])
    assert ASTERISKLINT.exists(), f"{ASTERISKLINT} is missing: make deps installs it (requirements-dev.txt)"
    out = subprocess.run([str(ASTERISKLINT), "dialplan-check", str(path)], capture_output=True, text=True)
    assert [x for x in (out.stdout + out.stderr).splitlines() if " E_" in x or " W_" in x] == []


def test_shared_and_multi_line_users_and_the_ha1(pbx_db) -> None:
    with psycopg.connect(pbx_db.dsn()) as conn:
        alice = users.create_user(conn, users.UserSpec(firstname="Alice", exten="1001", voicemail=True))
        bob = users.create_user(
            conn, users.UserSpec(firstname="Bob", exten="1002", shared_line=alice.line.name, new_line=False)
        )
        soft = lines.create_line(conn, context="internal")
        lines.associate(conn, alice.id, soft.id)
        realm = conn.execute("SELECT realm FROM lines WHERE id = %s", (alice.line.id,)).fetchone()[0]
    with psycopg.connect(pbx_db.dsn("pbx_confgend")) as conn:
        snap = load_snapshot(conn)
    out = GENERATORS["asterisk/pjsip.conf"].generate(snap, Context())
    sections = {(s.name, s.options): dict(s.items) for s in parse(out).sections}
    auth = sections[(alice.line.name, ("pbx-auth",))]
    expected = hashlib.md5(f"{alice.line.auth_username}:{realm}:{alice.line.secret}".encode()).hexdigest()
    assert auth == {"username": alice.line.auth_username, "realm": realm, "md5_cred": expected}
    endpoint = sections[(alice.line.name, ("pbx-endpoint",))]
    assert endpoint["callerid"] == '"Alice" <1001>'  # the main user of the shared line
    dialplan = GENERATORS["asterisk/extensions.conf"].generate(snap, Context())
    assert f"exten => 1002,hint,PJSIP/{alice.line.name}\n" in dialplan
    assert bob.line is None
    assert f"exten => 1001,hint,PJSIP/{alice.line.name}&PJSIP/{soft.name}\n" in dialplan


@pytest.mark.parametrize("role", ["pbx_agid", "pbx_ctid"])
def test_other_roles_cannot_read_secrets(pbx_db, role: str) -> None:
    with psycopg.connect(pbx_db.dsn(role)) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        load_snapshot(conn)
