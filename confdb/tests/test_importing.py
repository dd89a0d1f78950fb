"""CSV import: the bulk path, its row-by-row fallback, rejects, credentials, progress and dry runs."""

from __future__ import annotations

import csv
import hashlib
import io
import stat
from pathlib import Path
from typing import Any

import psycopg
import pytest

from confdb import importing, passwords
from confdb.cli.main import main
from confdb.progress import Progress
from confdb.writer import bulk_users, lines, users, voicemails
from testkit.pbxdb import PbxDatabase


@pytest.fixture
def conn(pbx_db: PbxDatabase):
    with psycopg.connect(pbx_db.dsn()) as connection:
        yield connection


def write_csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def cli(pbx_db: PbxDatabase, tmp_path: Path, *args: str) -> int:
    return main(["--config", str(tmp_path / "absent.yml"), "--dsn", pbx_db.dsn(), *args])


def counts(conn: psycopg.Connection[Any]) -> tuple[int, ...]:
    # extensions: the users' (a new PBX already has its feature codes)
    tables = ("users", "lines", "user_lines", "extensions WHERE type <> 'service'", "voicemails")
    row = conn.execute("SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables)).fetchone()
    assert row is not None
    return tuple(row)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_import_creates_users_with_everything_and_writes_credentials(pbx_db, conn, tmp_path, capsys) -> None:
    data = write_csv(
        tmp_path / "users.csv",
        ["firstname", "lastname", "exten", "voicemail", "email", "language"],
        [
            ["Alice", "Martin", "1001", "yes", "alice@example.com", "fr_FR"],
            ["Bruno", "Petit", "1002", "no", "", ""],
            ["Chloé", "Roux", "", "", "", ""],  # a user without extension: no line, no box
        ],
    )
    creds = tmp_path / "credentials.csv"
    assert cli(pbx_db, tmp_path, "import", "users", str(data), "--credentials", str(creds)) == 0
    assert counts(conn) == (3, 2, 2, 2, 1)
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    written = read_rows(creds)
    assert [r["exten"] for r in written] == ["1001", "1002"]
    alice = written[0]
    assert alice["row"] == "2" and alice["voicemail_pin"].isdigit() and written[1]["voicemail_pin"] == ""
    ha1, realm = conn.execute(
        "SELECT secret_ha1, realm FROM lines WHERE name = %s", (alice["line"],)
    ).fetchone()
    assert ha1 == hashlib.md5(f"{alice['sip_username']}:{realm}:{alice['sip_secret']}".encode()).hexdigest()
    assert conn.execute("SELECT pin, email FROM voicemails WHERE mailbox = '1001'").fetchone() == (
        alice["voicemail_pin"],
        "alice@example.com",
    )
    assert alice["sip_secret"] not in capsys.readouterr().out  # secrets never on the terminal
    main_flags = conn.execute("SELECT main_user, main_line FROM user_lines").fetchall()
    assert main_flags == [(True, True), (True, True)]


def test_events_are_the_ones_create_user_writes(conn) -> None:
    users.create_user(conn, users.UserSpec(firstname="Ref", exten="1000", voicemail=True))
    reference = conn.execute("SELECT routing_key, payload FROM outbox ORDER BY id").fetchall()
    conn.execute("DELETE FROM outbox")
    outcomes = bulk_users.create_users(conn, [users.UserSpec(firstname="Bulk", exten="1001", voicemail=True)])
    bulk = conn.execute("SELECT routing_key, payload FROM outbox ORDER BY id").fetchall()
    assert [r[0] for r in bulk] == [r[0] for r in reference]
    assert [sorted(r[1]["data"]) for r in bulk] == [sorted(r[1]["data"]) for r in reference]
    assert bulk[1][1]["data"]["uuid"] == outcomes[0].created.uuid
    assert {r[1]["version"] for r in bulk} == {1}


def test_row_with_conflicting_voicemail_leaves_nothing_behind(pbx_db, conn, tmp_path, capsys) -> None:
    voicemails.create_voicemail(conn, mailbox="1002", fullname="Old box")  # a box without user
    conn.commit()
    data = write_csv(
        tmp_path / "users.csv",
        ["firstname", "exten", "voicemail"],
        [["Alice", "1001", "yes"], ["Bruno", "1002", "yes"], ["Chloé", "1003", "yes"]],
    )
    rejects = tmp_path / "rejects.csv"
    rc = cli(
        pbx_db,
        tmp_path,
        "import",
        "users",
        str(data),
        "--credentials",
        str(tmp_path / "c.csv"),
        "--rejects",
        str(rejects),
    )
    assert rc == 3
    err = capsys.readouterr().err
    assert "row 3, column exten: voicemail box 1002@default already exists" in err
    assert counts(conn) == (2, 2, 2, 2, 3)
    assert conn.execute("SELECT count(*) FROM users WHERE firstname = 'Bruno'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM extensions WHERE exten = '1002'").fetchone() == (0,)
    refused = read_rows(rejects)
    assert refused == [
        {
            "firstname": "Bruno",
            "exten": "1002",
            "voicemail": "yes",
            "row": "3",
            "field": "exten",
            "reason": "voicemail box 1002@default already exists",
        }
    ]
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600


def test_corrected_rejects_file_imports_again(pbx_db, conn, tmp_path, capsys) -> None:
    data = write_csv(tmp_path / "users.csv", ["firstname", "exten"], [["Alice", "1001"], ["Bruno", "10x2"]])
    rejects = tmp_path / "rejects.csv"
    assert (
        cli(
            pbx_db,
            tmp_path,
            "import",
            "users",
            str(data),
            "--credentials",
            str(tmp_path / "c1.csv"),
            "--rejects",
            str(rejects),
        )
        == 3
    )
    assert "row 3, column exten: '10x2' is not an extension" in capsys.readouterr().err
    text = rejects.read_text().replace("10x2", "1002")
    rejects.write_text(text)
    assert (
        cli(pbx_db, tmp_path, "import", "users", str(rejects), "--credentials", str(tmp_path / "c2.csv")) == 0
    )
    assert counts(conn)[0] == 2


def test_duplicates_inside_the_file_are_refused_on_the_later_row(conn) -> None:
    data = importing.read_csv(
        io.StringIO(
            "firstname,exten,voicemail,cti_login,cti_password,context\n"
            "Alice,1001,yes,alice,long-password-1,\n"
            "Bruno,1001,no,,,\n"  # same extension
            "Chloé,1003,no,alice,long-password-2,\n"  # same login
            "David,1004,no,,,\n"
            "Emma,1001,no,,,nowhere\n"  # unknown context
        ),
        importing.USER_COLUMNS,
        ("firstname",),
    )
    report = importing.import_users(conn, data)
    assert report.created == 2
    assert [(r.row, r.column, r.reason) for r in report.rejects] == [
        (3, "exten", "extension 1001@internal is already used (by row 2 of this file)"),
        (4, "cti_login", "CTI login 'alice' is already used (by row 2 of this file)"),
        (6, "context", "context 'nowhere' does not exist; internal contexts: internal"),
    ]
    assert counts(conn) == (2, 2, 2, 2, 1)


def test_cti_passwords_are_hashed_in_parallel(conn) -> None:
    rows = "".join(f"U{i},{1000 + i},user{i},password-{i}\n" for i in range(5))
    data = importing.read_csv(
        io.StringIO("firstname,exten,cti_login,cti_password\n" + rows), importing.USER_COLUMNS
    )
    report = importing.import_users(conn, data)
    assert report.created == 5 and not report.rejects
    stored = dict(conn.execute("SELECT cti_login, cti_password_hash FROM users").fetchall())
    assert all(passwords.verify_password(f"password-{i}", stored[f"user{i}"]) for i in range(5))
    assert len(set(stored.values())) == 5  # salted


def test_bulk_failure_falls_back_to_row_by_row(conn, monkeypatch) -> None:
    """A conflict the pre-check cannot see (a concurrent writer) sinks a chunk, never the other rows."""
    users.create_user(conn, users.UserSpec(firstname="Taken", exten="1003", voicemail=True))
    real = users.find_conflicts
    calls = []

    def blind_first_time(conn_: Any, items: Any) -> users.Resolved:
        found = real(conn_, items)
        if not calls:
            found.problems.clear()  # as if another writer took 1003 after our check
        calls.append(len(items))
        return found

    monkeypatch.setattr(users, "find_conflicts", blind_first_time)
    specs = [users.UserSpec(firstname=f"U{i}", exten=str(1000 + i), voicemail=True) for i in range(8)]
    outcomes = bulk_users.create_users(conn, specs, chunk_size=8)
    refused = [(o.index, o.error) for o in outcomes if o.created is None]
    assert refused == [(3, "extension 1003@internal is already used by user 'Taken' (id 1)")]
    assert counts(conn) == (8, 8, 8, 8, 8)  # 7 imported + the one that was there
    assert len(calls) == 2  # the bulk pre-check, then create_user for the one refused row
    users_created = conn.execute("SELECT count(*) FROM outbox WHERE routing_key = 'user.created'").fetchone()
    assert users_created == (8,)


def test_dry_run_keeps_nothing(pbx_db, conn, tmp_path, capsys) -> None:
    data = write_csv(
        tmp_path / "users.csv",
        ["firstname", "exten", "voicemail", "cti_login", "cti_password"],
        [["Alice", "1001", "yes", "alice", "long-password"], ["Bruno", "1001", "no", "", ""]],
    )
    assert cli(pbx_db, tmp_path, "import", "users", str(data), "--dry-run") == 3
    out, err = capsys.readouterr()
    assert "would be created  1" in out and "row 3" in err
    assert counts(conn) == (0, 0, 0, 0, 0)
    assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


def test_credentials_file_is_required_and_never_overwritten(pbx_db, conn, tmp_path, capsys) -> None:
    data = write_csv(tmp_path / "users.csv", ["firstname", "exten"], [["Alice", "1001"]])
    assert cli(pbx_db, tmp_path, "import", "users", str(data)) == 1
    assert "--credentials FILE is required" in capsys.readouterr().err
    existing = tmp_path / "old.csv"
    existing.write_text("precious\n")
    assert cli(pbx_db, tmp_path, "import", "users", str(data), "--credentials", str(existing)) == 1
    assert "already exists" in capsys.readouterr().err
    assert existing.read_text() == "precious\n" and counts(conn)[0] == 0


def test_file_level_errors_write_nothing(pbx_db, conn, tmp_path, capsys) -> None:
    data = write_csv(tmp_path / "users.csv", ["firstname", "phone"], [["Alice", "1"]])
    assert cli(pbx_db, tmp_path, "import", "users", str(data), "--credentials", str(tmp_path / "c.csv")) == 1
    err = capsys.readouterr().err
    assert "unknown column 'phone'" in err and "known columns: firstname" in err
    assert not (tmp_path / "c.csv").exists()
    with pytest.raises(importing.ImportFileError, match="missing column 'firstname'"):
        importing.read_csv(io.StringIO("lastname\nMartin\n"), importing.USER_COLUMNS, ("firstname",))
    with pytest.raises(importing.ImportFileError, match="empty"):
        importing.read_csv(io.StringIO(""), importing.USER_COLUMNS)


def test_semicolons_extra_cells_and_bad_booleans(conn) -> None:
    data = importing.read_csv(
        io.StringIO("firstname;exten;voicemail\nAlice;1001;oui\nBruno;1002;no;surplus\nChloé;1003;yes\n"),
        importing.USER_COLUMNS,
    )
    report = importing.import_users(conn, data)
    assert [(r.row, r.column) for r in report.rejects] == [(2, "voicemail"), (3, "")]
    assert "has more cells than the header" in report.rejects[1].reason
    assert report.created == 1


def test_shared_line_column_joins_an_existing_line(conn) -> None:
    first = users.create_user(conn, users.UserSpec(firstname="Desk", exten="1000"))
    assert first.line is not None
    data = importing.read_csv(
        io.StringIO(f"firstname,exten,shared_line\nBruno,1001,{first.line.name}\nChloé,1002,nosuchline\n"),
        importing.USER_COLUMNS,
    )
    report = importing.import_users(conn, data)
    assert [(r.row, r.column, r.reason) for r in report.rejects] == [
        (3, "shared_line", "line 'nosuchline' does not exist")
    ]
    links = conn.execute(
        "SELECT user_id, main_user, main_line FROM user_lines WHERE line_id = %s ORDER BY user_id",
        (lines.line_id(conn, first.line.name),),
    ).fetchall()
    assert [(main_user, main_line) for _, main_user, main_line in links] == [(True, True), (False, True)]
    assert report.credentials == []  # nothing generated for Bruno: no new line, no box


def test_progress_lines_when_not_a_terminal(conn) -> None:
    stream = io.StringIO()
    rows = "".join(f"U{i},{1000 + i}\n" for i in range(30))
    data = importing.read_csv(io.StringIO("firstname,exten\n" + rows), importing.USER_COLUMNS)
    importing.import_users(conn, data, progress=Progress(stream, "lines", prefix="import users"))
    lines_ = stream.getvalue().splitlines()
    assert "import users: checking: 0% (0/30)" in lines_
    assert "import users: writing: 100% (30/30)" in lines_
    assert all("\r" not in line for line in lines_)


def test_progress_bar_when_forced(pbx_db, tmp_path, capsys) -> None:
    data = write_csv(tmp_path / "users.csv", ["firstname", "exten"], [["Alice", "1001"]])
    assert (
        cli(
            pbx_db,
            tmp_path,
            "import",
            "users",
            str(data),
            "--credentials",
            str(tmp_path / "c.csv"),
            "--progress",
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "\rimport users: writing [" in err and "100%" in err


def test_import_phonebook(pbx_db, conn, tmp_path, capsys) -> None:
    data = write_csv(
        tmp_path / "contacts.csv",
        ["display_name", "firstname", "lastname", "company", "office", "mobile", "fax", "email"],
        [
            [
                "",
                "Jeanne",
                "Roche",
                "Acme",
                "01 23 45 67 89",
                "06 12 34 56 78; +33 7 11 22 33 44",
                "",
                "j@acme.example",
            ],
            ["", "", "", "Globex", "+44 20 7946 0958", "", "", ""],
            ["Bad", "", "", "", "01 23 AB", "", "", ""],
            ["", "", "", "", "", "", "", ""],
        ],
    )
    assert cli(pbx_db, tmp_path, "import", "phonebook", str(data)) == 3
    err = capsys.readouterr().err
    assert "row 4, column office: '01 23 AB' is not a phone number" in err
    assert "row 5, column display_name" in err
    numbers_ = conn.execute(
        "SELECT e.display_name, n.kind, n.normalized FROM phonebook_numbers n "
        "JOIN phonebook_entries e ON e.id = n.entry_id ORDER BY n.id"
    ).fetchall()
    assert numbers_ == [
        ("Jeanne Roche", "office", "33123456789"),
        ("Jeanne Roche", "mobile", "33612345678"),
        ("Jeanne Roche", "mobile", "33711223344"),
        ("Globex", "office", "442079460958"),
    ]


def test_bulk_path_stays_fast(conn) -> None:
    """A smaller version of bench/run admin.import_10k, to catch a lost fast path (generous bound)."""
    import time

    specs = [users.UserSpec(firstname=f"U{i}", exten=str(10000 + i), voicemail=True) for i in range(2000)]
    started = time.monotonic()
    outcomes = bulk_users.create_users(conn, specs)
    assert all(o.created for o in outcomes)
    assert time.monotonic() - started < 10
    assert counts(conn) == (2000,) * 5
