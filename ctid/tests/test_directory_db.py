"""ctid's read model against a real, migrated PBX database (role pbx_ctid); the bus is in test_bus.py."""

from __future__ import annotations

import queue
import time
from typing import Any

import psycopg
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from confdb import passwords
from confdb.read import ctid as queries
from confdb.writer import agents, lines, queues, users
from ctid.db import Database, DirectorySync
from ctid.directory import Directory


def seed(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        alice = users.create_user(
            conn,
            users.UserSpec("Alice", "Smith", exten="1001", cti_login="alice", cti_password="alice-password"),
        )
        bob = users.create_user(conn, users.UserSpec("Bob", exten="1002"))
        second = lines.create_line(conn, name="alice-soft")
        lines.associate(conn, alice.id, second.id)
        queues.create_queue(conn, "support", "Support")
        agent = agents.create_agent(conn, "7001", "Alice", user_id=alice.id)
        queues.add_member(conn, "support", agent_id=agent)
    return {"alice": alice, "bob": bob, "soft": second}


def test_read_queries_with_the_ctid_role(pbx_db) -> None:
    made = seed(pbx_db.dsn())
    with psycopg.connect(pbx_db.dsn("pbx_ctid")) as conn:
        rows = {r["id"]: r for r in queries.users(conn)}
        alice = rows[made["alice"].id]
        assert alice["cti_login"] == "alice"
        assert passwords.verify_password("alice-password", alice["cti_password_hash"])
        assert alice["lines"] == [made["alice"].line.name, "alice-soft"]  # main line first
        assert alice["exten"] == "1001"
        assert alice["context"] == "internal"
        assert rows[made["bob"].id]["cti_login"] is None
        assert [r["id"] for r in queries.users(conn, [made["bob"].id])] == [made["bob"].id]
        assert queries.users_of_lines(conn, [made["soft"].id]) == [made["alice"].id]
        (agent,) = queries.agents(conn)
        assert agent["queues"] == ["support"] and agent["user_id"] == made["alice"].id
        # the role cannot read line secrets
        try:
            conn.execute("SELECT secret_ha1 FROM lines")
        except psycopg.errors.InsufficientPrivilege:
            pass
        else:
            raise AssertionError("pbx_ctid can read line secrets")


class SyncRun:
    """``run`` for DirectorySync without a reactor: the query runs at once on a real connection."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.queries = 0
        self.broken = False

    def __call__(self, fn) -> Deferred:
        self.queries += 1
        if self.broken:
            return fail(psycopg.OperationalError("database down"))
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return succeed(fn(conn))


def test_directory_sync_refreshes_only_what_events_name(pbx_db) -> None:
    made = seed(pbx_db.dsn())
    clock = Clock()
    directory = Directory()
    changes: list[set[int]] = []
    run = SyncRun(pbx_db.dsn("pbx_ctid"))
    sync = DirectorySync(directory, run, changes.append, clock=clock, debounce=0.05)
    sync.request_full()
    clock.advance(0)
    assert directory.by_login["alice"].lines[1] == "alice-soft"
    assert directory.agents_by_user[made["alice"].id].queues == ("support",)
    assert directory.users_of_line("alice-soft") == {made["alice"].id}
    changes.clear()
    full_queries = run.queries

    with psycopg.connect(pbx_db.dsn()) as conn:
        users.update_user(conn, made["bob"].id, {"firstname": "Robert"})
    for _ in range(50):  # a burst of events for one user: one query
        sync.config_event("user.updated", {"data": {"id": made["bob"].id, "fields": ["firstname"]}})
    clock.advance(0.05)
    assert run.queries == full_queries + 1
    assert directory.users[made["bob"].id].name == "Robert"
    assert changes == [{made["bob"].id}]

    # a line deleted: its users are found from memory (the DB no longer links them)
    with psycopg.connect(pbx_db.dsn()) as conn:
        conn.execute("DELETE FROM user_lines WHERE line_id = %s", [made["soft"].id])
        conn.execute("DELETE FROM lines WHERE id = %s", [made["soft"].id])
    sync.config_event("line.deleted", {"data": {"id": made["soft"].id, "name": "alice-soft"}})
    clock.advance(0.05)
    assert directory.by_login["alice"].lines == (made["alice"].line.name,)
    assert directory.users_of_line("alice-soft") == set()

    # the database fails: the directory is kept, the work is retried with a backoff
    run.broken = True
    sync.config_event("user.deleted", {"data": {"id": made["bob"].id}})
    clock.advance(0.05)
    assert made["bob"].id in directory.users
    assert sync.failures == 1
    run.broken = False
    with psycopg.connect(pbx_db.dsn()) as conn:
        users.delete_user(conn, made["bob"].id)
    clock.advance(1.0)
    assert made["bob"].id not in directory.users
    sync.config_event("vendor.thing", {"data": {}})  # unknown objects are ignored
    sync.config_event("user.updated", {"data": "garbage"})
    assert not clock.getDelayedCalls()


class PumpReactor:
    def __init__(self) -> None:
        self.calls: queue.Queue = queue.Queue()

    def callFromThread(self, f, *args, **kw) -> None:
        self.calls.put((f, args, kw))

    def pump(self, timeout: float = 10.0) -> None:
        f, args, kw = self.calls.get(timeout=timeout)
        f(*args, **kw)


def test_database_runs_queries_in_its_pool_with_a_statement_timeout(pbx_db) -> None:
    seed(pbx_db.dsn())
    reactor = PumpReactor()
    db = Database(pbx_db.dsn("pbx_ctid"), pool_size=1, statement_timeout_ms=200, reactor=reactor)
    db.start()
    try:
        results: list = []
        db.run(queries.users).addBoth(results.append)
        reactor.pump()
        assert [u["cti_login"] for u in results[0]] == ["alice", None]
        db.run(lambda conn: conn.execute("SELECT pg_sleep(2)")).addBoth(results.append)
        started = time.monotonic()
        reactor.pump()
        assert time.monotonic() - started < 1.5
        assert isinstance(results[1].value, psycopg.errors.QueryCanceled)
    finally:
        db.stop()
