"""pbx-admin's refusals: one short line naming the field, quoting at most a cut of the value, naming who
holds what is taken."""

from __future__ import annotations

from pathlib import Path

import pytest

from confdb import validation
from confdb.cli import main as cli
from testkit.admin_cli import Admin, make_admin
from testkit.pbxdb import PbxDatabase

HUGE = "9" * 65536


@pytest.fixture
def admin(pbx_db: PbxDatabase, tmp_path: Path, capsys, monkeypatch) -> Admin:
    return make_admin(pbx_db, tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize(
    "argv",
    [
        ["user", "add", "--firstname", "A", "--exten", "1" + "x" * 65535],
        ["user", "add", "--firstname", "A", "--cti-login", "Ä" * 65536, "--cti-password-env", "PW"],
        ["user", "add", "--firstname", "A", "--ring-seconds", HUGE[:4000]],
        ["user", "show", HUGE],
        ["user", "list", "--name", "x" * 65536],
        ["incall", "add", "_0X" + "a" * 65536, "hangup"],
        ["incall", "add", "100", "number:" + "x" * 65536],
        ["schedule", "add", "office", "--period", "x" * 65536],
        ["outcall", "add", "national", "--trunk", "t" * 65536],
        ["queue", "show", "q" * 65536],
    ],
)
def test_errors_quote_a_cut_of_the_value(admin: Admin, argv: list[str], monkeypatch) -> None:
    monkeypatch.setenv("PW", "long-password")
    err = admin(*argv, status=1)
    assert len(err) < 700 and err.count("\n") == 1, (len(err), err[:300])


def test_usage_errors_quote_a_cut_of_the_value(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["import", "x" * 65536, "f.csv"])  # argparse's own message: invalid choice: 'xxx...'
    err = capsys.readouterr().err
    assert done.value.code == 2 and "invalid choice" in err and len(err) < 1200, len(err)


def test_shown_cuts_after_60_characters() -> None:
    assert validation.shown("abc") == "'abc'"
    assert validation.shown("x" * 100) == "'" + "x" * 59 + "…"


def test_a_context_error_names_its_field(admin: Admin) -> None:
    err = admin("user", "add", "--firstname", "A", "--exten", "1001", "--context", "nowhere", status=1)
    assert err == "pbx-admin: user.context: context 'nowhere' does not exist; internal contexts: internal\n"
    err = admin("user", "add", "--firstname", "A", "--exten", "1001", "--context", "incall", status=1)
    assert err == "pbx-admin: user.context: context 'incall' is of type incall, not internal\n"
    err = admin("group", "add", "sales", "--exten", "2000", "--context", "outcall", status=1)
    assert err.startswith("pbx-admin: group.context: context 'outcall' is of type outcall")
    err = admin("incall", "add", "100", "hangup", "--context", "internal", status=1)
    assert err.startswith("pbx-admin: incall.context: context 'internal' is of type internal")


def test_an_outcall_option_error_never_uses_the_text_as_field_name(admin: Admin) -> None:
    admin("trunk", "add", "t", "--host", "192.0.2.1", "--identify", "192.0.2.1")
    err = admin("outcall", "add", "o", "--trunk", "t", "--pattern", "_0XX colour=blue", status=1)
    assert err.startswith("pbx-admin: outcall_pattern.options: 'colour=blue' is not one of strip=N"), err
    err = admin("outcall", "add", "o", "--trunk", "t", "--pattern", "_0XX strip=1 strip=2", status=1)
    assert err.startswith("pbx-admin: outcall_pattern.strip: 'strip=2' is not one of"), err


def test_a_taken_extension_names_its_owner(admin: Admin) -> None:
    admin("user", "add", "--firstname", "Alice", "--lastname", "Martin", "--exten", "1001")
    admin("group", "add", "sales", "--exten", "2000")
    admin("queue", "add", "support", "--exten", "3000")
    for argv, owner in [
        (["user", "add", "--firstname", "B", "--exten", "2000"], "ring group 'sales'"),
        (["user", "add", "--firstname", "B", "--exten", "3000"], "queue 'support'"),
        (["group", "add", "other", "--exten", "1001"], "user 'Alice Martin' (id 1)"),
        (["queue", "set", "support", "--exten", "2000"], "ring group 'sales'"),
    ]:
        err = admin(*argv, status=1)
        exten = argv[-1]
        assert err == f"pbx-admin: {argv[0]}.exten: extension {exten}@internal is already used by {owner}\n"


def test_settings_of_one_run_never_leak_into_the_next(
    pbx_db: PbxDatabase, tmp_path: Path, monkeypatch
) -> None:
    """The environment's bus URL of one run stays out of the defaults (config.load copies them)."""
    monkeypatch.setenv("PBX_ADMIN_BUS_URL", "amqp://pbx:x@127.0.0.1:1/%2F")
    args = cli.build_parser().parse_args(["--config", str(tmp_path / "absent.yml"), "outbox", "status"])
    assert cli.load_settings(args)["bus"]["url"]
    monkeypatch.delenv("PBX_ADMIN_BUS_URL")
    assert cli.load_settings(args)["bus"]["url"] == ""
