"""pbx-admin group, queue, agent, schedule, incall, trunk and outcall, end to end on a real database."""

from __future__ import annotations

import io
from pathlib import Path

import psycopg
import pytest

from confdb.cli import main as cli
from testkit.admin_cli import Admin, make_admin
from testkit.pbxdb import PbxDatabase

SUBCOMMANDS = {
    "group": ["add", "set", "delete", "list", "show", "members", "add-member", "set-member", "remove-member"],
    "queue": ["add", "set", "delete", "list", "show", "members", "add-member", "set-member", "remove-member"],
    "agent": ["add", "set", "delete", "list", "show"],
    "schedule": ["add", "set", "delete", "list", "show"],
    "incall": ["add", "set", "delete", "list", "show"],
    "trunk": ["add", "set", "delete", "list", "show"],
    "outcall": ["add", "set", "set-trunks", "add-pattern", "remove-pattern", "delete", "list", "show"],
    "user": ["add", "set", "delete", "list", "show", "add-line", "remove-line", "reset-secret"],
    "line": ["add", "set", "delete", "list", "show", "reset-secret"],
    "device": ["add", "set", "delete", "list", "show", "attach", "detach"],
    "phonebook": ["add", "set", "delete", "list", "show", "search", "lookup", "renormalize"],
}


@pytest.fixture
def admin(pbx_db: PbxDatabase, tmp_path: Path, capsys, monkeypatch) -> Admin:
    return make_admin(pbx_db, tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_subcommand_has_help_with_a_description(command: str, capsys) -> None:
    for action in [None, *SUBCOMMANDS[command]]:
        argv = [command, "--help"] if action is None else [command, action, "--help"]
        with pytest.raises(SystemExit) as done:
            cli.main(argv)
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: pbx-admin " + " ".join(argv[:-1]))
        description = out.split("\n\n")[1]
        assert description[0].isupper() and not description.startswith(("positional", "options")), out


def test_help_shows_examples(capsys) -> None:
    for command in SUBCOMMANDS:
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert f"pbx-admin {command} " in capsys.readouterr().out.split("examples:")[1]


def _outbox(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT routing_key FROM outbox ORDER BY id")]


def test_call_distribution_from_the_command_line(admin: Admin, pbx_db: PbxDatabase) -> None:
    admin(
        "user",
        "add",
        "--firstname",
        "Alice",
        "--exten",
        "1001",
        "--voicemail",
        "--cti-login",
        "alice",
        "--cti-password-env",
        "NOPE",
        status=1,
    )  # the variable is not set: refused before any write
    admin("user", "add", "--firstname", "Alice", "--exten", "1001", "--voicemail")
    admin("user", "add", "--firstname", "Bob", "--exten", "1002")

    created = admin.json(
        "group", "add", "sales", "--display-name", "Sales", "--exten", "2000", "--strategy", "linear"
    )
    assert created["name"] == "sales" and created["exten"] == "2000"
    admin("group", "add-member", "sales", "1002")
    admin("group", "add-member", "sales", "1001", "--position", "0")
    assert [m["exten"] for m in admin.json("group", "members", "sales")] == ["1001", "1002"]
    admin("group", "set-member", "sales", "1001", "--position", "9")
    admin("group", "set", "sales", "--ring-seconds", "20", "--ring-in-use")
    [group] = admin.json("group", "list")
    assert (group["ring_seconds"], group["ring_in_use"], group["members"]) == (20, True, 2)

    admin("queue", "add", "support", "--exten", "3000", "--announce-position", "--member-timeout", "20")
    admin("agent", "add", "8001", "--firstname", "Carol", "--user", "1002")
    admin("queue", "add-member", "support", "--user", "1001", "--penalty", "1")
    admin("queue", "add-member", "support", "--agent", "8001")
    admin("queue", "set-member", "support", "--agent", "8001", "--penalty", "3")
    members = admin.json("queue", "members", "support")
    assert [(m["kind"], m["number"], m["penalty"]) for m in members] == [
        ("user", "1001", 1),
        ("agent", "8001", 3),
    ]
    table = admin("queue", "list")
    assert table.splitlines()[0].split()[:4] == ["NAME", "DISPLAY_NAME", "STRATEGY", "EXTENSIONS"]
    assert "3000@internal" in table
    assert admin.json("agent", "list")[0]["queues"] == ["support"]
    admin("queue", "remove-member", "support", "--agent", "8001")
    admin("agent", "set", "8001", "--no-user", "--wrapup-seconds", "5")
    admin("agent", "delete", "8001")
    admin("queue", "set", "support", "--no-exten")
    admin("queue", "delete", "support")
    admin("group", "remove-member", "sales", "1002")
    keys = _outbox(pbx_db.dsn())
    assert {
        "group.created",
        "group_member.created",
        "group_member.updated",
        "group.updated",
        "queue.created",
        "queue_member.created",
        "queue_member.updated",
        "queue_member.deleted",
        "agent.created",
        "agent.updated",
        "agent.deleted",
        "queue.updated",
        "queue.deleted",
        "group_member.deleted",
    } <= set(keys)


def test_routing_from_the_command_line(admin: Admin, pbx_db: PbxDatabase, monkeypatch) -> None:
    admin("user", "add", "--firstname", "Alice", "--exten", "1001", "--voicemail")
    admin("queue", "add", "support", "--exten", "3000")

    admin(
        "schedule",
        "add",
        "office",
        "--timezone",
        "Europe/Paris",
        "--period",
        "mon-fri 09:00-18:00",
        "--period",
        "sat 09:00-12:00",
        "--closed",
        "voicemail:1001",
    )
    [schedule] = admin.json("schedule", "list")
    assert (schedule["periods"], schedule["closed"]) == (
        ["mon-fri 09:00-18:00", "sat 09:00-12:00"],
        "voicemail:1001",
    )

    admin("incall", "add", "0412345678", "user:1001", "--schedule", "office")
    admin("incall", "add", "_04123457XX", "queue:support", "--callerid-name-prefix", "SUPPORT")
    admin("incall", "set", "0412345678", "--destination", "number:+33612345678", "--no-schedule")
    incalls = {row["did"]: row for row in admin.json("incall", "list")}
    assert incalls["0412345678"]["destination"] == "number:+33612345678"
    assert incalls["0412345678"]["schedule"] is None
    assert incalls["_04123457XX"]["destination"] == "queue:support"

    monkeypatch.setenv("PROVIDER_PW", "s3cret-Pass")
    admin(
        "trunk",
        "add",
        "provider",
        "--host",
        "sip.example.com",
        "--register",
        "--auth-username",
        "0412345678",
        "--password-env",
        "PROVIDER_PW",
    )
    admin("trunk", "add", "backup", "--host", "192.0.2.10", "--identify", "192.0.2.10,198.51.100.0/24")
    admin(
        "outcall",
        "add",
        "national",
        "--trunk",
        "provider",
        "--trunk",
        "backup",
        "--pattern",
        "_0XXXXXXXXX strip=1 prefix=+33",
    )
    admin("outcall", "add-pattern", "national", "_00.", "--strip", "2", "--prefix", "+")
    admin("outcall", "set-trunks", "national", "backup", "provider")
    admin("outcall", "set", "national", "--ring-seconds", "45")
    [outcall] = admin.json("outcall", "list")
    assert outcall["trunks"] == ["backup", "provider"]
    assert outcall["patterns"] == [
        {"pattern": "_00.", "strip": 2, "prefix": "+", "callerid": None},
        {"pattern": "_0XXXXXXXXX", "strip": 1, "prefix": "+33", "callerid": None},
    ]
    assert "_00. strip=2 prefix=+; _0XXXXXXXXX strip=1 prefix=+33" in admin("outcall", "list")
    trunk_list = admin("trunk", "list")
    assert "s3cret" not in trunk_list and "provider" in trunk_list
    with psycopg.connect(pbx_db.dsn()) as conn:
        stored = conn.execute("SELECT auth_password FROM trunks WHERE name = 'provider'").fetchone()[0]
        assert stored == "s3cret-Pass"
        assert "s3cret" not in conn.execute("SELECT string_agg(payload::text, ' ') FROM outbox").fetchone()[0]

    err = admin("trunk", "delete", "provider", status=1)
    assert "trunk 'provider' is used by outcall national" in err
    admin("outcall", "remove-pattern", "national", "_00.")
    admin("outcall", "delete", "national")
    admin("trunk", "delete", "provider")
    admin("incall", "delete", "_04123457XX")
    admin("schedule", "delete", "office")
    assert admin.json("schedule", "list") == []


def test_password_from_a_prompt_on_standard_input(admin: Admin, pbx_db: PbxDatabase, monkeypatch) -> None:
    admin("trunk", "add", "carrier", "--host", "192.0.2.10", "--identify", "192.0.2.10")
    monkeypatch.setattr("sys.stdin", io.StringIO("pr0mpted-Pass\n"))
    admin("trunk", "set", "carrier", "--auth-username", "me", "--password-prompt")
    with psycopg.connect(pbx_db.dsn()) as conn:
        assert conn.execute("SELECT auth_password FROM trunks").fetchone()[0] == "pr0mpted-Pass"
    admin("trunk", "set", "carrier", "--clear-auth")
    assert admin.json("trunk", "list")[0]["has_password"] is False


def test_no_password_option_on_the_command_line(admin: Admin, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["trunk", "add", "t", "--host", "h", "--password", "secret"])
    assert done.value.code == 2
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["incall", "add", "0412345678", "user:9999"], "no user has extension, CTI login, UUID or id '9999'"),
        (["incall", "add", "04 12", "hangup"], "incall.did:"),
        (["incall", "add", "100", "fax:1"], "incall.destination: 'fax:1' is not a destination"),
        (["queue", "add", "support", "--strategy", "roundrobin"], "queue.strategy:"),
        (["queue", "add-member", "nope", "--user", "1"], "queue 'nope' does not exist"),
        (["group", "add", "sales", "--ring-seconds", "2"], "group.ring_seconds: 2 is out of range [5, 600]"),
        (["schedule", "add", "office", "--period", "mon-fri 18:00-09:00"], "schedule.periods:"),
        (["schedule", "add", "office", "--timezone", "Nowhere/City"], "schedule.timezone:"),
        (["trunk", "add", "t", "--host", "sip.example.com"], "trunk.identify: the trunk neither registers"),
        (
            [
                "trunk",
                "add",
                "t",
                "--host",
                "sip.example.com",
                "--register",
                "--auth-username",
                "me",
                "--password-env",
                "UNSET_PW_VARIABLE",
            ],
            "environment variable UNSET_PW_VARIABLE is not set",
        ),
        (["outcall", "add", "national", "--trunk", "ghost"], "trunk 'ghost' does not exist"),
        (
            ["outcall", "add", "national", "--trunk", "t", "--pattern", "_0XX strip=9"],
            "outcall_pattern.strip:",
        ),
        (["agent", "add", "80a", "--firstname", "A"], "agent.number:"),
        (["queue", "set", "nope"], "nothing to change"),
    ],
)
def test_refusals_are_one_clear_line(admin: Admin, argv: list[str], message: str, monkeypatch) -> None:
    monkeypatch.delenv("UNSET_PW_VARIABLE", raising=False)
    err = admin(*argv, status=1)
    assert err.startswith("pbx-admin: ") and message in err and err.count("\n") == 1, err


def test_deleting_a_user_routed_to_from_an_incall_is_refused(admin: Admin) -> None:
    admin("user", "add", "--firstname", "Alice", "--exten", "1001")
    admin("incall", "add", "0412345678", "user:1001")
    err = admin("user", "delete", "1001", status=1)
    assert "is the destination of incall 0412345678" in err
    assert admin.json("user", "list")[0]["extensions"] == ["1001@internal"]  # nothing was half-deleted
