"""Users with line, extension and voicemail in one transaction; shared lines; events in the outbox."""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
import pytest

from confdb import passwords
from confdb.validation import ValidationError
from confdb.writer import lines, user_list, users
from confdb.writer.errors import Conflict, NotFound
from testkit.pbxdb import PbxDatabase


@pytest.fixture
def conn(pbx_db: PbxDatabase):
    with psycopg.connect(pbx_db.dsn()) as connection:
        yield connection


def _events(conn: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in conn.execute("SELECT routing_key FROM outbox ORDER BY id")]


def test_create_user_with_line_extension_voicemail(conn) -> None:
    created = users.create_user(
        conn,
        users.UserSpec(
            firstname="Alice", lastname="Martin", exten="1001", voicemail=True, email="alice@example.com"
        ),
    )
    conn.commit()
    assert created.line is not None and created.voicemail_pin is not None
    row = conn.execute(
        "SELECT u.callerid_name, u.callerid_num, l.name, l.secret_ha1, l.realm, ul.main_user, ul.main_line, "
        "v.mailbox, v.email, e.exten FROM users u JOIN user_lines ul ON ul.user_id = u.id "
        "JOIN lines l ON l.id = ul.line_id JOIN voicemails v ON v.id = u.voicemail_id "
        "JOIN extensions e ON e.user_id = u.id WHERE u.id = %s",
        (created.id,),
    ).fetchone()
    name, ha1 = row[2], row[3]
    assert row[:2] == ("Alice Martin", "1001")
    assert ha1 == hashlib.md5(f"{name}:{row[4]}:{created.line.secret}".encode()).hexdigest()
    assert created.line.secret not in str(row)  # the clear secret is never stored
    assert row[5:] == (True, True, "1001", "alice@example.com", "1001")
    assert _events(conn) == [
        "voicemail.created",
        "user.created",
        "line.created",
        "user_line.created",
        "extension.created",
    ]


def test_secrets_are_generated_and_distinct(conn) -> None:
    a = users.create_user(conn, users.UserSpec(firstname="A", exten="1001"))
    b = users.create_user(conn, users.UserSpec(firstname="B", exten="1002"))
    assert a.line and b.line
    assert a.line.secret != b.line.secret and len(a.line.secret) >= 16
    assert a.line.name != b.line.name


def test_shared_line_and_multi_line_user(conn) -> None:
    alice = users.create_user(conn, users.UserSpec(firstname="Alice", exten="1001"))
    bob = users.create_user(conn, users.UserSpec(firstname="Bob", exten="1002", shared_line=alice.line.name))
    second = lines.create_line(conn)
    lines.associate(conn, alice.id, second.id)
    links = conn.execute(
        "SELECT user_id, line_id, main_user, main_line FROM user_lines ORDER BY user_id, line_id"
    )
    assert links.fetchall() == [
        (alice.id, alice.line.id, True, True),
        (alice.id, second.id, True, False),
        (bob.id, alice.line.id, False, True),
    ]
    # Alice leaves: Bob becomes the shared line's main user; the line stays for him.
    users.delete_user(conn, alice.id)
    rows = conn.execute("SELECT user_id, line_id, main_user, main_line FROM user_lines").fetchall()
    assert rows == [(bob.id, alice.line.id, True, True)]
    assert conn.execute("SELECT count(*) FROM lines").fetchone() == (1,)


def test_cti_password_is_hashed(conn) -> None:
    created = users.create_user(
        conn, users.UserSpec(firstname="C", cti_login="Carol", cti_password="long enough")
    )
    stored = conn.execute(
        "SELECT cti_login, cti_password_hash FROM users WHERE id = %s", (created.id,)
    ).fetchone()
    assert stored[0] == "carol"
    assert stored[1].startswith("$scrypt$") and "long enough" not in stored[1]
    assert passwords.verify_password("long enough", stored[1])
    assert not passwords.verify_password("wrong", stored[1])


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (users.UserSpec(firstname="Eve\nexten => 666,1,Hangup"), "user.firstname"),
        (users.UserSpec(firstname="Eve", fields={"callerid_name": 'x" <666>'}), "user.callerid_name"),
        (users.UserSpec(firstname="Eve", exten="_X."), "user.exten"),
        (users.UserSpec(firstname="Eve", exten="10;01"), "user.exten"),
        (users.UserSpec(firstname="Eve", fields={"ring_seconds": 1}), "user.ring_seconds"),
        (users.UserSpec(firstname="Eve", fields={"fwd_busy_enabled": True}), "user.fwd_busy"),
        (users.UserSpec(firstname="Eve", cti_login="eve", cti_password="short"), "user.cti_password"),
        (users.UserSpec(firstname="x" * 200), "user.firstname"),
        (users.UserSpec(firstname="Eve", fields={"nickname": "e"}), "user.nickname"),
    ],
)
def test_bad_values_are_refused_naming_the_field(conn, spec: users.UserSpec, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        users.create_user(conn, spec)
    assert err.value.field == field
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_conflicts_are_clear_and_leave_nothing_behind(pbx_db: PbxDatabase) -> None:
    with psycopg.connect(pbx_db.dsn()) as conn:
        users.create_user(conn, users.UserSpec(firstname="A", exten="1001", voicemail=True))
        conn.commit()
        with pytest.raises(Conflict, match="1001@internal"), conn.transaction():
            users.create_user(conn, users.UserSpec(firstname="B", exten="1001"))
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM lines), (SELECT count(*) FROM outbox)"
        ).fetchone()
        assert counts == (1, 1, 5)


def test_update_user(conn) -> None:
    created = users.create_user(conn, users.UserSpec(firstname="A", exten="1001"))
    changed = users.update_user(conn, users.find_user(conn, "1001"), {"dnd": "yes", "ring_seconds": "45"})
    assert changed == ["dnd", "ring_seconds"]
    assert conn.execute("SELECT dnd, ring_seconds FROM users WHERE id = %s", (created.id,)).fetchone() == (
        True,
        45,
    )
    with pytest.raises(ValidationError, match="fwd_noanswer"):
        users.update_user(conn, created.id, {"fwd_noanswer_enabled": True})
    users.update_user(conn, created.id, {"fwd_noanswer": "0612345678", "fwd_noanswer_enabled": True})
    assert _events(conn)[-2:] == ["user.updated", "user.updated"]


def test_find_and_delete(conn) -> None:
    created = users.create_user(
        conn,
        users.UserSpec(
            firstname="A", exten="1001", voicemail=True, cti_login="alice", cti_password="password1"
        ),
    )
    assert users.find_user(conn, "alice") == users.find_user(conn, created.uuid) == created.id
    with pytest.raises(NotFound):
        users.find_user(conn, "nobody")
    users.delete_user(conn, created.id)
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM lines), "
        "(SELECT count(*) FROM extensions WHERE type = 'user'), "
        "(SELECT count(*) FROM voicemails)"
    ).fetchone()
    assert counts == (0, 0, 0, 0)
    assert _events(conn)[-5:] == [
        "extension.deleted",
        "user_line.deleted",
        "line.deleted",
        "user.deleted",
        "voicemail.deleted",
    ]


def test_list_users_names_the_main_line(conn) -> None:
    created = users.create_user(conn, users.UserSpec(firstname="A", exten="1001"))
    [row] = user_list.list_users(conn)
    assert row["extensions"] == ["1001@internal"]
    assert row["lines"] == [created.line.name] and row["main_line"] == created.line.name
