"""The single writer: only pbx_writer (and the owner) can change data; daemons read what they need."""

from __future__ import annotations

import psycopg
import pytest

from confdb import roles
from testkit.pbxdb import PbxDatabase

WRITES = {
    "INSERT": "INSERT INTO contexts (name, type) VALUES ('intruder', 'internal')",
    "UPDATE": "UPDATE contexts SET description = 'changed'",
    "DELETE": "DELETE FROM context_includes",
}


@pytest.mark.parametrize("role", roles.READERS)
@pytest.mark.parametrize("verb", sorted(WRITES))
def test_read_only_roles_cannot_write(pbx_db: PbxDatabase, role: str, verb: str) -> None:
    with psycopg.connect(pbx_db.dsn(role)) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(WRITES[verb])


@pytest.mark.parametrize("role", roles.READERS)
def test_read_only_roles_cannot_write_any_table(pbx_db: PbxDatabase, role: str) -> None:
    with psycopg.connect(pbx_db.superuser_dsn) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            for privilege in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"):
                allowed = conn.execute(
                    "SELECT has_table_privilege(%s, %s, %s)", (role, table, privilege)
                ).fetchone()
                assert allowed == (False,), f"{role} has {privilege} on {table}"
            assert conn.execute(
                "SELECT has_any_column_privilege(%s, %s, 'UPDATE')", (role, table)
            ).fetchone() == (False,)


@pytest.mark.parametrize("role", roles.READERS)
def test_read_only_roles_cannot_create_objects(pbx_db: PbxDatabase, role: str) -> None:
    with psycopg.connect(pbx_db.dsn(role)) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE sneaky (id int)")


def test_readers_see_only_their_columns(pbx_db: PbxDatabase) -> None:
    with psycopg.connect(pbx_db.dsn("pbx_agid")) as conn:
        conn.execute("SELECT id, callerid_name FROM users")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT cti_password_hash FROM users")
    with psycopg.connect(pbx_db.dsn("pbx_agid")) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT secret_ha1 FROM lines")
    with psycopg.connect(pbx_db.dsn("pbx_ctid")) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM phonebook_entries")
    with psycopg.connect(pbx_db.dsn("pbx_confgend")) as conn:
        conn.execute("SELECT secret_ha1, realm FROM lines")


def test_confgend_cannot_read_the_cti_password_hash_and_still_loads_its_snapshot(pbx_db: PbxDatabase) -> None:
    """pbx_confgend reads users column by column: the CTI hash (and any column its snapshot does not read)
    is refused, and the snapshot, which runs as that role, still loads."""
    from confdb.read.confgend import load_snapshot
    from confdb.writer import users

    with psycopg.connect(pbx_db.dsn()) as conn:
        users.create_user(conn, users.UserSpec(firstname="Grant", exten="1901"))
    with psycopg.connect(pbx_db.dsn("pbx_confgend")) as conn:
        for column in ("cti_password_hash", "cti_login", "*"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT {column} FROM users")
            conn.rollback()
        snap = load_snapshot(conn)
    assert "Grant" in {u.firstname for u in snap.users}


def test_every_reader_grant_names_a_real_table_and_column(pbx_db: PbxDatabase) -> None:
    with psycopg.connect(pbx_db.superuser_dsn) as conn:
        for role, grants in roles.READ_GRANTS.items():
            for table, columns in grants.items():
                assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None, (
                    role,
                    table,
                )
                if columns != roles.ALL:
                    for column in columns:
                        ok = conn.execute(
                            "SELECT has_column_privilege(%s, %s, %s, 'SELECT')", (role, table, column)
                        ).fetchone()
                        assert ok == (True,), (role, table, column)


def test_writer_can_write_but_not_alter_schema(pbx_db: PbxDatabase) -> None:
    with psycopg.connect(pbx_db.dsn(roles.WRITER)) as conn:
        conn.execute(WRITES["INSERT"])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE contexts")


def test_ensure_roles_is_idempotent_and_keeps_passwords(pbx_db: PbxDatabase, tmp_path) -> None:
    cluster = pbx_db.cluster
    again = roles.ensure_roles(cluster.server.superuser_dsn("postgres"), pbx_db.name, cluster.secrets_dir)
    assert again == cluster.passwords
    secret_file = roles.password_file(cluster.secrets_dir, roles.WRITER)
    assert secret_file.stat().st_mode & 0o777 == 0o600
    roles.apply_grants(pbx_db.dsn(roles.OWNER))
    roles.apply_grants(pbx_db.dsn(roles.OWNER))
    with psycopg.connect(pbx_db.dsn("pbx_agid")) as conn:
        conn.execute("SELECT id FROM users")
