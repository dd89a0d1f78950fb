"""pbx-admin demo: a whole company through the writer functions, deterministic names, refusal on rerun."""

from __future__ import annotations

import csv
import random
import stat
from pathlib import Path
from typing import Any

import psycopg
import pytest

from confdb import demo, passwords
from confdb.cli.main import main
from confdb.writer import bulk_users
from testkit.pbxdb import PbxDatabase


@pytest.fixture
def conn(pbx_db: PbxDatabase):
    with psycopg.connect(pbx_db.dsn()) as connection:
        yield connection


def table_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    tables = (
        "users",
        "lines",
        "voicemails",
        "devices",
        "groups",
        "group_members",
        "queues",
        "queue_members",
        "agents",
        "trunks",
        "outcalls",
        "outcall_patterns",
        "schedules",
        "incalls",
        "phonebook_entries",
    )
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def test_demo_company(conn) -> None:
    report = demo.create_demo(
        conn, users_count=25, phonebook_count=40, seed=7, cti_users=3, hasher=bulk_users.placeholder_hashes
    )
    counts = table_counts(conn)
    assert counts["users"] == 25 and counts["voicemails"] == 25
    assert counts["lines"] == 25 - 1 + 1  # one shared phone, one second line
    assert report.counts["shared_lines"] == 1 and report.counts["multi_line_users"] == 1
    assert counts["groups"] == 2 and counts["group_members"] == 8
    assert counts["queues"] == 2 and counts["agents"] == 4 and counts["queue_members"] == 4 + 2 + 4
    assert counts["trunks"] == 1 and counts["outcalls"] == 1 and counts["outcall_patterns"] == 4
    assert counts["schedules"] == 1 and counts["incalls"] == 12
    assert counts["devices"] == 9  # the first ten users but one, who shares the phone of another
    assert counts["phonebook_entries"] == 40
    shared = conn.execute("SELECT count(*) FROM user_lines GROUP BY line_id HAVING count(*) > 1").fetchall()
    assert shared == [(2,)]
    assert conn.execute("SELECT min(exten), max(exten) FROM extensions WHERE type = 'user'").fetchone() == (
        "1000",
        "1024",
    )
    assert conn.execute("SELECT count(*) FROM users WHERE cti_login IS NOT NULL").fetchone() == (3,)
    assert conn.execute("SELECT count(*) FROM incalls WHERE schedule_id IS NOT NULL").fetchone() == (2,)
    # every generated secret is in the credentials, once per line
    secrets_ = [r["sip_secret"] for r in report.credentials if r["sip_secret"]]
    assert len(secrets_) == len(set(secrets_)) == 25
    assert sum(1 for r in report.credentials if r["cti_password"]) == 3


def test_names_follow_the_seed_and_secrets_do_not(pbx_db, pbx_cluster) -> None:
    from testkit.pbxdb import create_database, drop_database

    def run(seed: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[str]]:
        db = create_database(pbx_cluster)
        try:
            with psycopg.connect(db.dsn()) as conn:
                report = demo.create_demo(conn, users_count=6, phonebook_count=10, seed=seed, cti_users=0)
                names = conn.execute("SELECT firstname, lastname FROM users ORDER BY id").fetchall()
                numbers = conn.execute("SELECT number FROM phonebook_numbers ORDER BY id").fetchall()
                return names, numbers, [r["sip_secret"] for r in report.credentials]
        finally:
            drop_database(db)

    first, again, other = run(1), run(1), run(2)
    assert first[:2] == again[:2]
    assert first[:2] != other[:2]
    assert not (set(first[2]) - {""}) & (set(again[2]) - {""})


def test_demo_refuses_to_run_twice(conn) -> None:
    demo.create_demo(conn, users_count=2, phonebook_count=0, seed=1, cti_users=0)
    with pytest.raises(
        demo.DemoExists, match=r"demo data already exist in this database .*trunk demo-provider"
    ):
        demo.create_demo(conn, users_count=2, phonebook_count=0, seed=1, cti_users=0)


def test_demo_with_no_users(conn) -> None:
    report = demo.create_demo(conn, users_count=0, phonebook_count=3, seed=3)
    assert report.counts["users"] == 0 and report.counts["phonebook_entries"] == 3
    assert conn.execute("SELECT closed_dest_type FROM schedules").fetchone() == ("hangup",)


def test_phonebook_numbers_are_realistic() -> None:
    entries = demo.phonebook_entries(random.Random(5), 300, country="FR")
    normalized = [n for e in entries for _, _, n in e.numbers]
    assert all(n.isdigit() and 10 <= len(n) <= 13 for n in normalized)
    assert sum(n.startswith("33") for n in normalized) > len(normalized) * 0.7
    assert any(not n.startswith("33") for n in normalized)  # some contacts abroad
    assert any(e.company and not e.firstname for e in entries)  # some companies alone


def test_cli_writes_private_credentials_and_refuses_a_second_run(pbx_db, tmp_path: Path, capsys) -> None:
    base = ["--config", str(tmp_path / "absent.yml"), "--dsn", pbx_db.dsn()]
    creds = tmp_path / "demo.csv"
    args = ["demo", "--users", "5", "--phonebook", "5", "--seed", "1", "--cti-users", "4", "--no-progress"]
    assert main([*base, *args, "--credentials", str(creds)]) == 0
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    with creds.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with_cti = [r for r in rows if r["cti_password"]]
    assert len(with_cti) == 4
    with psycopg.connect(pbx_db.dsn()) as conn:
        stored = conn.execute(
            "SELECT cti_password_hash FROM users WHERE cti_login = %s", (with_cti[0]["cti_login"],)
        ).fetchone()
    assert stored and passwords.verify_password(with_cti[0]["cti_password"], stored[0])
    assert "users" in capsys.readouterr().out
    assert main([*base, *args, "--credentials", str(tmp_path / "again.csv")]) == 1
    assert "demo data already exist" in capsys.readouterr().err
    assert not (tmp_path / "again.csv").exists()


def test_cli_demo_publishes_its_events_at_once(pbx_db, rabbitmq, tmp_path: Path, monkeypatch, capsys) -> None:
    """A small demo with the bus set: committed, then its events published (no "outside any transaction")."""
    monkeypatch.setenv("PBX_ADMIN_BUS_URL", rabbitmq.url)
    base = ["--config", str(tmp_path / "absent.yml"), "--dsn", pbx_db.dsn()]
    args = ["demo", "--users", "3", "--phonebook", "3", "--seed", "1", "--cti-users", "0", "--no-progress"]
    assert main([*base, *args, "--credentials", str(tmp_path / "demo.csv")]) == 0
    assert "outbox" not in capsys.readouterr().err
    with psycopg.connect(pbx_db.dsn()) as conn:
        assert conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone() == (0,)
