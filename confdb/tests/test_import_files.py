"""CSV import of files as they come from elsewhere: wrong encoding, stray quotes, short rows, cells a
spreadsheet would run; and exit statuses telling all, some and none apart."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import psycopg
import pytest

from confdb.cli.main import main
from testkit.pbxdb import PbxDatabase


@pytest.fixture
def conn(pbx_db: PbxDatabase):
    with psycopg.connect(pbx_db.dsn()) as connection:
        yield connection


def run(pbx_db: PbxDatabase, tmp_path: Path, data: Path, *extra: str) -> int:
    argv = ["--config", str(tmp_path / "absent.yml"), "--dsn", pbx_db.dsn(), "import", "users", str(data)]
    return main([*argv, *extra])


def users(conn: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in conn.execute("SELECT firstname FROM users ORDER BY id")]


def test_a_file_not_in_utf8_is_refused_naming_the_line(pbx_db, conn, tmp_path, capsys) -> None:
    data = tmp_path / "users.csv"
    data.write_bytes("firstname,exten\nAlice,1001\nChlo\xe9,1002\n".encode("latin-1"))
    assert run(pbx_db, tmp_path, data, "--credentials", str(tmp_path / "c.csv")) == 1
    err = capsys.readouterr().err
    assert "users.csv, line 3: not UTF-8 text (byte 0xe9 at byte 5 of the line)" in err
    assert "iconv -f WINDOWS-1252 -t UTF-8" in err and err.count("\n") == 1
    assert users(conn) == [] and not (tmp_path / "c.csv").exists()


def test_a_bom_is_not_counted_in_the_line(pbx_db, conn, tmp_path, capsys) -> None:
    data = tmp_path / "users.csv"
    data.write_bytes(b"\xef\xbb\xbffirstname\n\xff\n")
    assert run(pbx_db, tmp_path, data, "--dry-run") == 1
    assert "line 2: not UTF-8 text (byte 0xff at byte 1 of the line)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'firstname,exten\nAlice,1001\n"Bruno,1002\nChloé,1003\nDavid,1004\n',
            "line 3: a quote opened on this line is never closed",
        ),
        (
            'firstname,exten\nAlice,1001\n"Bruno,1002\nChloé,1003"\nDavid,1004\n',
            "line 3: a quote opened on this line closes only on line 4",
        ),
        ('firstname,exten\nAlice,1001\n"Bru"no,1002\n', "line 3: ',' expected after '\"'"),
    ],
)
def test_a_stray_quote_refuses_the_file_naming_the_line(
    pbx_db, conn, tmp_path, capsys, text, message
) -> None:
    data = tmp_path / "users.csv"
    data.write_text(text, encoding="utf-8")
    assert run(pbx_db, tmp_path, data, "--credentials", str(tmp_path / "c.csv")) == 1
    err = capsys.readouterr().err
    assert message in err and "nothing was imported" in err, err
    assert users(conn) == []


def test_a_row_with_missing_cells_is_refused_like_one_with_too_many(pbx_db, conn, tmp_path, capsys) -> None:
    data = tmp_path / "users.csv"
    data.write_text(
        "firstname,lastname,exten\nAlice,Martin,1001\nBruno,1002\nChloé,Roux,1003,extra\nDavid,Petit,1004,\n",
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.csv"
    code = run(pbx_db, tmp_path, data, "--credentials", str(tmp_path / "c.csv"), "--rejects", str(rejects))
    assert code == 3
    err = capsys.readouterr().err
    assert "row 3: has 2 cells, the header has 3 columns: a cell or a delimiter is missing" in err
    assert "row 4: has more cells than the header has columns" in err
    assert users(conn) == ["Alice", "David"]  # an empty extra cell is no harm
    with rejects.open(newline="", encoding="utf-8") as handle:
        assert [r["row"] for r in csv.DictReader(handle)] == ["3", "4"]


def test_credentials_never_hold_a_formula(pbx_db, conn, tmp_path) -> None:
    data = tmp_path / "users.csv"
    hostile = ["=cmd|' /C calc'!A0", "+1+2", "-cmd", "@SUM(A1)"]
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["firstname", "lastname", "exten"])
        writer.writerows([[name, "Ok", str(1001 + i)] for i, name in enumerate(hostile)])
        writer.writerow(["Plain", "-dash", "+3312"])
    credentials = tmp_path / "c.csv"
    assert run(pbx_db, tmp_path, data, "--credentials", str(credentials)) == 0
    with credentials.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["firstname"] for r in rows] == [*("'" + h for h in hostile), "Plain"]
    assert (rows[-1]["lastname"], rows[-1]["exten"]) == ("'-dash", "'+3312")
    for row in rows:
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values()), row
    assert users(conn)[0] == hostile[0]  # the database keeps the name as given
    assert credentials.read_text(encoding="utf-8").startswith('"row","firstname"')  # every cell quoted


@pytest.mark.parametrize(
    ("rows", "status"),
    [
        ([["Alice", "1001"], ["Bruno", "1002"]], 0),  # all imported
        ([["Alice", "1001"], ["Bruno", "10x2"]], 3),  # some
        ([["Alice", "10x1"], ["Bruno", "10x2"]], 1),  # none
        ([], 0),  # nothing to do
    ],
)
def test_exit_status_tells_all_some_and_none_apart(pbx_db, conn, tmp_path, capsys, rows, status) -> None:
    data = tmp_path / "users.csv"
    data.write_text("firstname,exten\n" + "".join(f"{a},{b}\n" for a, b in rows), encoding="utf-8")
    assert run(pbx_db, tmp_path, data, "--dry-run") == status
    assert run(pbx_db, tmp_path, data, "--credentials", str(tmp_path / "c.csv")) == status
    assert len(users(conn)) == sum(1 for _, exten in rows if exten.isdigit())


def test_help_documents_the_exit_statuses(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    out = capsys.readouterr().out
    assert "0  every row imported" in out and "3  some rows imported" in out and "1  nothing imported" in out
