"""Failure paths against a real PostgreSQL: stopped, frozen (SIGSTOP), a source too slow, no database,
malformed input, a peer that hangs up. Every session still ends with AGID_STATUS and a decision."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from harness.postgres import PostgresServer
from testkit.agid_db import Data, call, env_for, populate, servers
from testkit.fastagi import FakeAsterisk, LineSocket, ServerThread, Step
from testkit.pbxdb import PbxDatabase

#: Slack over a budget for a loaded 2-core machine.
SLACK = 1.0

DECISIONS = {
    "incoming_user": ("AGID_ACTION", "DEFAULT"),
    "incoming_did": ("AGID_DEST_TYPE", "default"),
    "outgoing_user": ("AGID_OUT_ACTION", "DEFAULT"),
    "incoming_queue": ("AGID_QUEUE_ACTION", "DEFAULT"),
    "check_schedule": ("AGID_SCHEDULE_STATE", "unknown"),
}
ARGS = {
    "incoming_user": ("1",),
    "incoming_did": ("0140000001", "incall"),
    "outgoing_user": ("0612345678",),
    "incoming_queue": ("support",),
    "check_schedule": ("office",),
}


@pytest.fixture
def data(pbx_db: PbxDatabase) -> Data:
    return populate(pbx_db)


@pytest.fixture
def agid() -> Iterator[Callable[..., ServerThread]]:
    yield from servers()


def timed(server: ServerThread, script: str, *args: str, **env: Any) -> tuple[dict[str, str], float]:
    start = time.monotonic()
    transcript = call(server, env_for(script, *args, **env))
    elapsed = time.monotonic() - start
    assert transcript.closed_by_server
    return transcript.variables(), elapsed


def assert_degraded(server: ServerThread, budget: float) -> None:
    for script, (variable, default) in DECISIONS.items():
        out, elapsed = timed(server, script, *ARGS[script])
        assert out["AGID_STATUS"] == "OK", script
        assert (out[variable], out["AGID_DEGRADED"]) == (default, "1"), script
        assert out["AGID_CAUSE"].startswith("database unavailable"), script
        assert elapsed < budget + SLACK, (script, elapsed)
    out, elapsed = timed(server, "reverse_lookup", "0123456789")
    assert (out["AGID_STATUS"], out["AGID_DEGRADED"], out["AGID_LOOKUP_NAME"]) == ("OK", "1", "")
    assert "CALLERID(name)" not in out
    assert elapsed < budget + SLACK


def test_database_frozen(postgres: PostgresServer, pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    server = agid(pbx_db, db_timeout=0.3, lookup_budget=0.2)
    assert timed(server, "incoming_user", str(data.alice))[0]["AGID_ACTION"] == "DIAL"  # warm pool
    postgres.freeze()
    try:
        assert_degraded(server, 0.3)
        # many at once: all bounded, none waits for another
        results: list[tuple[dict[str, str], float]] = []
        threads = [
            threading.Thread(target=lambda: results.append(timed(server, "incoming_user", "1")))
            for _ in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(results) == 20
        assert all(out["AGID_ACTION"] == "DEFAULT" and out["AGID_STATUS"] == "OK" for out, _ in results)
        assert max(elapsed for _, elapsed in results) < 0.3 + 2 * SLACK
    finally:
        postgres.thaw()
    # back to normal once thawed
    server.wait_until(lambda: timed(server, "incoming_user", "1")[0]["AGID_ACTION"] == "DIAL", timeout=20)


def test_database_stopped_then_back(
    postgres: PostgresServer, pbx_db: PbxDatabase, data: Data, agid: Any
) -> None:
    server = agid(pbx_db, db_timeout=0.3, lookup_budget=0.2, db_retry_interval=0.2)
    assert timed(server, "check_schedule", "office")[0]["AGID_SCHEDULE_STATE"] == "open"
    postgres.stop()
    try:
        assert_degraded(server, 0.3)
    finally:
        postgres.start()
    server.wait_until(
        lambda: timed(server, "check_schedule", "office")[0]["AGID_SCHEDULE_STATE"] == "open", 30
    )


def test_no_database_configured(agid: Any) -> None:
    server = agid(None)
    assert server.context.db is None
    assert_degraded(server, 0.0)


def test_source_timeout_is_bounded(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    """The phonebook table is locked by a writer: its source times out, the others still answer."""
    server = agid(pbx_db, lookup_budget=0.2, db_timeout=0.5, lookup_cache_ttl=0.001)
    with psycopg.connect(pbx_db.dsn()) as writer:
        writer.execute("LOCK TABLE phonebook_numbers IN ACCESS EXCLUSIVE MODE")
        out, elapsed = timed(server, "reverse_lookup", "1001")  # an internal user: found at once
        assert (out["AGID_LOOKUP_SOURCE"], out["CALLERID(name)"]) == ("users", "Alice Martin")
        out, elapsed = timed(server, "reverse_lookup", "0123456789")
        assert (out["AGID_STATUS"], out["AGID_DEGRADED"], out["AGID_LOOKUP_NAME"]) == ("OK", "1", "")
        assert elapsed < 0.2 + SLACK
        writer.rollback()
    out, _ = timed(server, "reverse_lookup", "0123456789")
    assert out["CALLERID(name)"] == "ACME Support"


def test_handler_error_logged_with_channel_and_handler(
    pbx_db: PbxDatabase, agid: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = agid(pbx_db)
    with caplog.at_level(logging.ERROR, logger="agid"):
        out, _ = timed(server, "incoming_user", "not-a-number", channel="PJSIP/trunk-0000002a")
        server.wait_idle()
    assert out == {"AGID_STATUS": "FAILED"}
    record = next(r for r in caplog.records if "incoming_user" in r.getMessage())
    assert "PJSIP/trunk-0000002a" in record.getMessage()
    assert "BadInput" in record.getMessage()


@pytest.mark.parametrize(
    "script", ["incoming_user", "incoming_did", "outgoing_user", "check_schedule", "incoming_queue"]
)
def test_malformed_environment_and_input(pbx_db: PbxDatabase, agid: Any, script: str) -> None:
    server = agid(pbx_db)
    out, _ = timed(server, script, "x" * 300 + "\x7f")
    assert out == {"AGID_STATUS": "FAILED"}
    # an environment with a hole in agi_arg_N does not run the handler
    env = env_for(script, "1").replace(b"agi_arg_1:", b"agi_arg_2:")
    assert call(server, env).status == "FAILED"


def test_peer_hangs_up(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    server = agid(pbx_db)
    # HANGUP arrives with the first reply: the decision and the status are still set (dead channel)
    transcript = FakeAsterisk(server.address, timeout=20).run(
        env_for("incoming_user", str(data.dave)), [Step(None, b"HANGUP\n200 result=0\n")]
    )
    assert transcript.closed_by_server
    assert transcript.variables()["AGID_ACTION"] == "FORWARD"
    assert transcript.status == "OK"
    # the peer vanishes in the middle (reset): nothing more is sent, the server stays healthy
    peer = LineSocket(server.address, timeout=20)
    peer.send(env_for("incoming_user", str(data.alice)))
    assert peer.readline()
    peer.reset()
    server.wait_idle()
    assert server.server.stats.lost >= 1
    assert timed(server, "incoming_user", str(data.alice))[0]["AGID_STATUS"] == "OK"
