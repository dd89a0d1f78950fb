"""The PostgreSQL harness: real connections, real passwords, freeze/thaw, persistence."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from harness.postgres import PostgresServer


@pytest.fixture
def private_pg() -> Iterator[PostgresServer]:
    base = Path(tempfile.mkdtemp(prefix="pbx-test-pg-own-"))
    server = PostgresServer(base)
    try:
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def test_superuser_over_unix_socket(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.superuser_dsn()) as conn:
        row = conn.execute("SELECT current_user, inet_server_port(), version()").fetchone()
    assert row is not None
    user, port, version = row
    assert user == "postgres"
    assert port is None  # unix socket
    assert version.startswith("PostgreSQL 15.")
    assert any(postgres.socket_dir.glob(".s.PGSQL.*"))


def test_role_password_is_checked_over_tcp(postgres: PostgresServer, fresh_db: str) -> None:
    role = f"r_{fresh_db}"[:60]
    postgres.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 's3cret: x/y@z'").format(sql.Identifier(role)))
    try:
        with psycopg.connect(postgres.dsn(role, "s3cret: x/y@z", fresh_db)) as conn:
            row = conn.execute("SELECT current_user, current_database(), inet_server_port()").fetchone()
        assert row == (role, fresh_db, postgres.port)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(postgres.dsn(role, "wrong", fresh_db))
    finally:
        postgres.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_fresh_db_is_new_and_empty(postgres: PostgresServer, fresh_db: str) -> None:
    with psycopg.connect(postgres.superuser_dsn(fresh_db)) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        conn.execute("CREATE TABLE t (id int)")
    assert tables == (0,)


def test_freeze_times_out_clients_and_thaw_recovers(postgres: PostgresServer, fresh_db: str) -> None:
    dsn = postgres.superuser_dsn(fresh_db)
    held = psycopg.connect(dsn, autocommit=True)
    result: list[object] = []
    postgres.freeze()
    try:
        query = threading.Thread(target=lambda: result.append(held.execute("SELECT 42").fetchone()))
        query.start()
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=2)
        assert 1.5 < time.monotonic() - started < 10
        assert query.is_alive() and not result
    finally:
        postgres.thaw()
    query.join(timeout=10)
    assert result == [(42,)]
    with psycopg.connect(dsn, connect_timeout=2) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    held.close()


def test_data_survive_stop_and_start(private_pg: PostgresServer) -> None:
    private_pg.start()
    private_pg.execute("CREATE TABLE kept (v text)")
    private_pg.execute("INSERT INTO kept VALUES ('yes')")
    private_pg.stop()
    assert not private_pg.running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(private_pg.superuser_dsn(), connect_timeout=2)
    private_pg.start()
    with psycopg.connect(private_pg.superuser_dsn()) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [("yes",)]


def test_start_failure_reports_log_tail(private_pg: PostgresServer) -> None:
    private_pg.settings["shared_buffers"] = "not-a-size"
    with pytest.raises(RuntimeError, match=r"(?s)pg_ctl start failed.*shared_buffers"):
        private_pg.start()


def test_no_other_local_user_reaches_the_superuser(postgres: PostgresServer) -> None:
    """The unix socket, where the superuser is trusted, is its owner's only (a superuser can run programs:
    COPY ... TO PROGRAM)."""
    socket_file = postgres.socket_dir / f".s.PGSQL.{postgres.port}"
    assert socket_file.stat().st_mode & 0o077 == 0
    if os.geteuid() == 0:  # try it as another user
        denied = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             "/usr/bin/psql", postgres.superuser_dsn(), "-Atc", "SELECT 1"],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied
