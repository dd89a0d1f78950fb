"""pbx-admin's commands in one shape: list/show/add/set/delete per object, structured JSON anywhere, the user
commands an administrator expects (show, set of extension and voicemail, filters, reset-secret by user),
and lines. Over a real database, with the writer's validation, transaction and events."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from confdb.cli import main as cli
from testkit.admin_cli import Admin, make_admin
from testkit.pbxdb import PbxDatabase


@pytest.fixture
def admin(pbx_db: PbxDatabase, tmp_path: Path, capsys, monkeypatch) -> Admin:
    return make_admin(pbx_db, tmp_path, capsys, monkeypatch)


def _keys(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        keys = [r[0] for r in conn.execute("SELECT routing_key FROM outbox ORDER BY id")]
        conn.execute("DELETE FROM outbox")
    return keys


def _company(admin: Admin) -> None:
    """One object of every type, linked the usual way."""
    admin("user", "add", "--firstname", "Alice", "--lastname", "Martin", "--exten", "1001", "--voicemail")
    admin("user", "add", "--firstname", "Bruno", "--exten", "1002", "--no-line")
    admin("group", "add", "sales", "--exten", "2000")
    admin("group", "add-member", "sales", "1001")
    admin("queue", "add", "support", "--exten", "3000")
    admin("agent", "add", "8001", "--firstname", "Carol")
    admin("queue", "add-member", "support", "--agent", "8001")
    admin("schedule", "add", "office", "--period", "mon-fri 09:00-18:00", "--period", "sat 09:00-12:00")
    admin("incall", "add", "0412345678", "group:sales", "--schedule", "office")
    admin("trunk", "add", "carrier", "--host", "192.0.2.10", "--identify", "192.0.2.10,198.51.100.0/24")
    admin("outcall", "add", "national", "--trunk", "carrier", "--pattern", "_0XXXXXXXXX strip=1 prefix=+33")
    admin("device", "add", "00:04:13:2a:3b:4c", "--model", "D785")
    line = admin.json("user", "show", "1001")["main_line"]
    admin("device", "attach", "00:04:13:2a:3b:4c", line)
    admin("phonebook", "add", "--company", "Acme", "--office", "01 23 45 67 89")


# (command, reference for show, a list field that must be a JSON array)
OBJECTS = [
    ("user", "1001", "extensions"),
    ("line", "1001", "codecs"),
    ("group", "sales", "extensions"),
    ("queue", "support", "extensions"),
    ("agent", "8001", "queues"),
    ("schedule", "office", "periods"),
    ("incall", "0412345678", None),
    ("trunk", "carrier", "identify"),
    ("outcall", "national", "patterns"),
    ("device", "00:04:13:2a:3b:4c", "lines"),
    ("phonebook", None, "numbers"),
]


def test_every_object_lists_and_shows_the_same_structured_json(admin: Admin) -> None:
    _company(admin)
    for command, ref, list_field in OBJECTS:
        rows = admin.json(command, "list")
        assert isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows), command
        row = rows[0]  # Alice, her line, the only group, ...
        shown = admin.json(command, "show", str(row["id"]) if ref is None else ref)
        assert shown == row, command  # show prints exactly a row of list
        assert isinstance(shown["id"], int), command
        if list_field:
            assert isinstance(shown[list_field], list) and shown[list_field], (command, list_field)
    user = admin.json("user", "show", "1001")
    assert user["extensions"] == ["1001@internal"] and user["lines"] == [user["main_line"]]
    assert (user["mailbox"], user["enabled"], user["dnd"], user["cti_login"]) == ("1001", True, False, None)
    group = admin.json("group", "show", "sales")
    assert (group["members"], group["ring_in_use"]) == (1, False)
    outcall = admin.json("outcall", "show", "national")
    assert outcall["trunks"] == ["carrier"]
    assert outcall["patterns"] == [{"pattern": "_0XXXXXXXXX", "strip": 1, "prefix": "+33", "callerid": None}]


def test_json_before_or_after_the_command(admin: Admin) -> None:
    admin("user", "add", "--firstname", "Alice", "--exten", "1001")
    before = json.loads(admin("--json", "user", "list"))
    after = json.loads(admin("user", "list", "--json"))
    assert before == after and before[0]["extensions"] == ["1001@internal"]
    assert json.loads(admin("user", "--json", "show", "1001")) == before[0]
    assert "1001@internal" in admin("user", "list")  # no --json: a table


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _leaves(sub, (*path, name)) or [((*path, name), sub)]
    return found


def test_every_action_takes_json_after_it() -> None:
    leaves = _leaves(cli.build_parser())
    assert len(leaves) > 60
    for path, parser in leaves:
        assert "--json" in parser._option_string_actions, path


def test_text_tables_join_lists_and_mark_the_main_line(admin: Admin) -> None:
    admin("user", "add", "--firstname", "Alice", "--exten", "1001")
    line = admin.json("user", "show", "1001")["main_line"]
    table = admin("user", "list")
    assert f"{line}*" in table and "1001@internal" in table and "[" not in table


# -- users -------------------------------------------------------------------------------------------------


def test_user_list_filters_and_pages(admin: Admin) -> None:
    for i, (first, last) in enumerate([("Alice", "Martin"), ("Bruno", "Martinez"), ("Chloé", "Roux")]):
        admin("user", "add", "--firstname", first, "--lastname", last, "--exten", str(1001 + i))
    names = lambda *argv: [u["firstname"] for u in admin.json("user", "list", *argv)]  # noqa: E731
    assert names("--name", "MARTIN") == ["Alice", "Bruno"]
    assert names("--name", "alice martin") == ["Alice"]
    assert names("--name", "%") == []  # a LIKE wildcard is a character like any other
    assert names("--exten", "1003") == ["Chloé"]
    assert names("--exten", "1003", "--context", "incall") == []
    assert names("--context", "internal", "--limit", "2") == ["Alice", "Bruno"]
    assert names("--limit", "2", "--offset", "2") == ["Chloé"]
    err = admin("user", "list", "--limit", "0", status=1)
    assert "limit: 0 is out of range" in err


def test_user_set_changes_extension_context_voicemail_and_email(admin: Admin, pbx_db: PbxDatabase) -> None:
    admin("user", "add", "--firstname", "Alice", "--exten", "1001")
    with psycopg.connect(pbx_db.superuser_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO contexts (name, type) VALUES ('branch', 'internal')")
    _keys(pbx_db.dsn())

    changed = admin.json("user", "set", "1001", "--exten", "1005", "--context", "branch")
    assert changed["changed"] == ["callerid_num", "exten", "lines"]
    user = admin.json("user", "show", "1005")
    assert (user["extensions"], user["callerid_num"]) == (["1005@branch"], "1005")
    assert admin.json("line", "show", "1005")["context"] == "branch"  # the user's own line moved too
    assert "extension.deleted" in _keys(pbx_db.dsn())

    created = admin.json("user", "set", "1005", "--voicemail", "yes", "--email", "alice@example.com")
    assert created["changed"] == ["voicemail"] and len(created["voicemail_pin"]) >= 4
    assert (admin.json("user", "show", "1005")["mailbox"], admin.json("user", "show", "1005")["email"]) == (
        "1005",
        "alice@example.com",
    )
    assert admin.json("user", "set", "1005", "--voicemail-pin", "4321", "--email", "")["changed"] == [
        "email",
        "pin",
    ]
    with psycopg.connect(pbx_db.dsn()) as conn:
        assert conn.execute("SELECT pin, email FROM voicemails").fetchone() == ("4321", None)
    assert "voicemail.updated" in _keys(pbx_db.dsn())

    admin("user", "set", "1005", "--voicemail", "no")
    assert admin.json("user", "show", "1005")["mailbox"] is None
    err = admin("user", "set", "1005", "--voicemail-pin", "1234", status=1)
    assert err.startswith("pbx-admin: user.voicemail: the user has no voicemail box")
    admin("user", "set", "1005", "--no-exten")
    assert admin.json("user", "show", "1")["extensions"] == []


def test_user_set_is_one_transaction(admin: Admin, pbx_db: PbxDatabase) -> None:
    admin("user", "add", "--firstname", "Alice", "--exten", "1001")
    admin("group", "add", "sales", "--exten", "2000")
    _keys(pbx_db.dsn())
    err = admin("user", "set", "1001", "--firstname", "Alicia", "--exten", "2000", status=1)
    assert "user.exten: extension 2000@internal is already used by ring group 'sales'" in err
    user = admin.json("user", "show", "1001")
    assert (user["firstname"], user["extensions"]) == ("Alice", ["1001@internal"])  # nothing kept
    assert _keys(pbx_db.dsn()) == []


def test_reset_secret_by_extension_login_or_line(admin: Admin, pbx_db: PbxDatabase, monkeypatch) -> None:
    monkeypatch.setenv("CTI_PW", "long-password")
    argv = ["--cti-login", "alice", "--cti-password-env", "CTI_PW", "--no-line"]
    admin("user", "add", "--firstname", "Alice", "--exten", "1001", *argv)
    admin("user", "add-line", "alice", admin.json("line", "add")["line"])
    second = admin.json("line", "add", "--user", "1001")["line"]
    main = admin.json("user", "show", "1001")["main_line"]

    def ha1(name: str) -> str:
        with psycopg.connect(pbx_db.dsn()) as conn:
            return conn.execute("SELECT secret_ha1 FROM lines WHERE name = %s", (name,)).fetchone()[0]

    for ref, argv, target in [
        ("1001", [], main),
        ("alice", [], main),
        ("1001", ["--line", second], second),
        (second, [], second),
    ]:
        out = admin.json("user", "reset-secret", ref, *argv)
        assert out["line"] == target
        assert ha1(target) == hashlib.md5(f"{target}:pbx:{out['sip_secret']}".encode()).hexdigest()
    assert admin.json("line", "reset-secret", "1001")["line"] == main
    err = admin("user", "reset-secret", "9999", status=1)
    assert "no line is named '9999', and no user has it" in err


def test_line_commands(admin: Admin, pbx_db: PbxDatabase) -> None:
    admin("user", "add", "--firstname", "Alice", "--exten", "1001")
    admin("user", "add", "--firstname", "Bruno", "--exten", "1002")
    alice_line = admin.json("user", "show", "1001")["main_line"]
    admin("user", "add-line", "1002", alice_line)
    [line] = [r for r in admin.json("line", "list", "--user", "1002") if r["name"] == alice_line]
    assert [u["name"] for u in line["users"]] == ["Alice", "Bruno"] and line["main_user"] == line["users"][0][
        "id"
    ]
    assert "Alice*" in admin("line", "list")

    _keys(pbx_db.dsn())
    out = admin.json("line", "set", alice_line, "--codecs", "opus,alaw", "--max-contacts", "3")
    assert out["changed"] == ["codecs", "max_contacts"] and _keys(pbx_db.dsn()) == ["line.updated"]
    assert admin.json("line", "show", alice_line)["codecs"] == ["opus", "alaw"]
    err = admin("line", "set", alice_line, "--codecs", "mp3", status=1)
    assert err.startswith("pbx-admin: line.codecs:")
    err = admin("line", "set", alice_line, "--context", "nowhere", status=1)
    assert err.startswith("pbx-admin: line.context: context 'nowhere' does not exist")

    admin("line", "delete", alice_line)
    assert admin.json("user", "show", "1001")["lines"] == []
    assert _keys(pbx_db.dsn())[-1] == "line.deleted"
