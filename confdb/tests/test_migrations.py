"""Upgrading from every earlier revision with data present loses no rows; downgrades work where offered."""

from __future__ import annotations

import psycopg
import pytest

from confdb import migrate, roles
from testkit.pbxdb import PbxCluster, PbxDatabase, create_database, drop_database

# Rows valid at each revision, inserted once the database reached it. Cumulative: later revisions'
# data reference earlier rows.
DATA: dict[str, list[str]] = {
    "0001_core": [
        "INSERT INTO voicemails (id, mailbox, fullname, pin) VALUES (1, '1001', 'Alice Martin', '1234')",
        "INSERT INTO users (id, firstname, lastname, callerid_name, callerid_num, voicemail_id) "
        "VALUES (1, 'Alice', 'Martin', 'Alice Martin', '1001', 1), (2, 'Bob', '', 'Bob', '1002', NULL)",
        "INSERT INTO lines (id, name, auth_username, secret_ha1, realm, context_id) SELECT 1, 'abc', 'abc', "
        "md5('x'), 'pbx', id FROM contexts WHERE name = 'internal'",
        "INSERT INTO user_lines VALUES (1, 1, true, true), (2, 1, false, true)",
        "INSERT INTO extensions (context_id, exten, type, user_id) SELECT id, '1001', 'user', 1 FROM contexts "
        "WHERE name = 'internal'",
        "INSERT INTO extensions (context_id, exten, type, service) SELECT id, '*98', 'service', 'voicemail_own' "
        "FROM contexts WHERE name = 'services'",
    ],
    "0002_call_distribution": [
        "INSERT INTO agents (id, number, firstname) VALUES (1, '8001', 'Agent')",
        "INSERT INTO queues (id, name, display_name) VALUES (1, 'support', 'Support')",
        "INSERT INTO queue_members (queue_id, user_id) VALUES (1, 1)",
        "INSERT INTO queue_members (queue_id, agent_id, penalty) VALUES (1, 1, 2)",
        "INSERT INTO groups (id, name, display_name) VALUES (1, 'sales', 'Sales')",
        "INSERT INTO group_members (group_id, user_id) VALUES (1, 1), (1, 2)",
        "INSERT INTO extensions (context_id, exten, type, queue_id) SELECT id, '3000', 'queue', 1 FROM contexts "
        "WHERE name = 'internal'",
    ],
    "0003_routing": [
        "INSERT INTO schedules (id, name, closed_dest_type, closed_dest_id) VALUES (1, 'office', 'voicemail', 1)",
        "INSERT INTO schedule_periods (schedule_id, weekdays, start_time, end_time) "
        "VALUES (1, '{1,2,3,4,5}', '09:00', '18:00')",
        "INSERT INTO trunks (id, name, host, context_id, identify_match) SELECT 1, 'provider', 'sip.example.com', "
        "id, '{192.0.2.0/24}' FROM contexts WHERE name = 'incall'",
        "INSERT INTO incalls (did, context_id, dest_type, dest_id, schedule_id) SELECT '0123456789', id, 'user', "
        "1, 1 FROM contexts WHERE name = 'incall'",
        "INSERT INTO outcalls (id, name, context_id) SELECT 1, 'national', id FROM contexts WHERE name = 'outcall'",
        "INSERT INTO outcall_patterns (outcall_id, pattern, strip, prefix) VALUES (1, '_0[1-9]XXXXXXXX', 0, '')",
        "INSERT INTO outcall_trunks (outcall_id, trunk_id, position) VALUES (1, 1, 1)",
    ],
    "0004_directory_devices": [
        "INSERT INTO phonebook_entries (id, display_name, company) VALUES (1, 'Jean Dupont', 'ACME')",
        "INSERT INTO phonebook_numbers (entry_id, kind, number, normalized) "
        "VALUES (1, 'office', '01 23 45 67 89', '33123456789')",
        "INSERT INTO devices (id, mac, model) VALUES (1, '00:11:22:33:44:55', 'T46S')",
        "UPDATE lines SET device_id = 1, device_position = 1",
    ],
    "0005_outbox": [
        "INSERT INTO outbox (routing_key, payload) VALUES ('user.created', '{\"data\": {\"id\": 1}}')",
    ],
    "0006_feature_codes": [],  # data only: the usual codes, where the PBX has none for the service
}
# Rows a revision adds by itself (its data migration), per table: (table, condition of those rows).
ADDED_ROWS = {"0006_feature_codes": ("extensions", "type = 'service' AND exten IN ('*99', '*43')")}


def _empty_database(cluster: PbxCluster) -> PbxDatabase:
    return create_database(cluster, template="template0")


def _counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def test_data_covers_every_revision() -> None:
    assert list(DATA) == migrate.revisions()


@pytest.mark.parametrize("start", migrate.revisions()[:-1])
def test_upgrade_from_each_revision_keeps_every_row(pbx_cluster: PbxCluster, start: str) -> None:
    db = _empty_database(pbx_cluster)
    owner = db.dsn(roles.OWNER)
    try:
        for revision in migrate.revisions()[: migrate.revisions().index(start) + 1]:
            migrate.upgrade(owner, revision)
            with psycopg.connect(owner) as conn:
                for statement in DATA[revision]:
                    conn.execute(statement)
        before = _counts(owner)
        assert sum(before.values()) > 0
        migrate.upgrade(owner)
        after = _counts(owner)
        assert migrate.current(owner) == migrate.head()
        applied = migrate.revisions()[migrate.revisions().index(start) + 1 :]
        with psycopg.connect(owner) as conn:
            for table, condition in (ADDED_ROWS[r] for r in applied if r in ADDED_ROWS):
                after[table] -= conn.execute(f"SELECT count(*) FROM {table} WHERE {condition}").fetchone()[0]
        for table, count in before.items():
            assert after[table] == count, (
                f"{table}: {count} rows before the upgrade from {start}, {after[table]} after"
            )
        with psycopg.connect(owner) as conn:
            assert conn.execute("SELECT firstname FROM users WHERE id = 1").fetchone() == ("Alice",)
    finally:
        drop_database(db)


def test_downgrade_to_base_and_back(pbx_cluster: PbxCluster) -> None:
    db = _empty_database(pbx_cluster)
    owner = db.dsn(roles.OWNER)
    try:
        migrate.upgrade(owner)
        for revision in reversed(["base", *migrate.revisions()[:-1]]):
            migrate.downgrade(owner, revision)
            assert migrate.current(owner) == (None if revision == "base" else revision)
        migrate.upgrade(owner)
        assert migrate.current(owner) == migrate.head()
    finally:
        drop_database(db)


def test_downgrade_keeps_rows_of_surviving_tables(pbx_cluster: PbxCluster) -> None:
    db = _empty_database(pbx_cluster)
    owner = db.dsn(roles.OWNER)
    try:
        for revision in migrate.revisions():
            migrate.upgrade(owner, revision)
            with psycopg.connect(owner) as conn:
                for statement in DATA[revision]:
                    conn.execute(statement)
        migrate.downgrade(owner, "0001_core")
        counts = _counts(owner)
        assert counts["users"] == 2
        assert counts["lines"] == 1
        # the queue's extension goes with the queues table; the usual feature codes (*99, *43) stay
        assert counts["extensions"] == 4
    finally:
        drop_database(db)
