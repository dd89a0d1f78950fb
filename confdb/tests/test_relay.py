"""pbx-event-relay: configuration, backoff, the service against real servers, and pbx-admin outbox."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from confdb import config, events, outbox
from confdb.cli import main as pbx_admin
from confdb.config import ConfigError
from confdb.relay import main as relay_main
from confdb.relay import settings as relay_settings
from confdb.relay.service import Backoff, Link, Relay
from harness.rabbitmq import RabbitMQServer
from testkit.bus_events import EventQueue, wait_for
from testkit.pbxdb import PbxDatabase

BUS_URL = "amqp://pbx:secret@127.0.0.1:5672/%2F"


@pytest.fixture
def broker(rabbitmq: RabbitMQServer) -> RabbitMQServer:
    rabbitmq.start()  # an earlier test may have left it stopped
    return rabbitmq


@pytest.fixture
def events_queue(broker: RabbitMQServer) -> Iterator[EventQueue]:
    queue = EventQueue(broker.url)
    yield queue
    if broker.running:
        queue.delete()


def _write_config(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def _settings(pbx_db: PbxDatabase, url: str, exchange: str, **relay: Any) -> relay_settings.Settings:
    return relay_settings.check(
        config.merge(
            relay_settings.DEFAULTS,
            {
                "db": {"dsn": pbx_db.dsn()},
                "bus": {"url": url, "exchange": exchange, "publish_timeout": 2.0},
                "relay": {"poll_interval": 30.0, "max_backoff": 0.5} | relay,
            },
        )
    )


def _pending(pbx_db: PbxDatabase) -> int:
    with psycopg.connect(pbx_db.dsn()) as conn:
        return outbox.status(conn).pending


def _emit(pbx_db: PbxDatabase, count: int) -> None:
    with psycopg.connect(pbx_db.dsn()) as conn:
        for i in range(count):
            with conn.transaction():
                events.emit(conn, "user", "updated", id=i)


# -- configuration ----------------------------------------------------------------------------------


def test_configuration_layers_and_secret_files(tmp_path: Path) -> None:
    (tmp_path / "dsn").write_text("host=db user=pbx_writer\n")
    (tmp_path / "url").write_text(BUS_URL + "\n")
    config_file = _write_config(
        tmp_path / "config.yml",
        {
            "db": {"dsn_file": str(tmp_path / "dsn")},
            "bus": {"url_file": str(tmp_path / "url")},
            "relay": {"poll_interval": 2},
        },
    )
    (tmp_path / "conf.d").mkdir()
    _write_config(tmp_path / "conf.d" / "10-local.yml", {"relay": {"retention_days": 0}})
    settings = relay_settings.load(config_file, {"log_level": "debug"})
    assert (settings.dsn, settings.bus_url) == ("host=db user=pbx_writer", BUS_URL)
    assert (settings.poll_interval, settings.retention_days, settings.batch) == (2.0, 0.0, 500)
    assert (settings.exchange, settings.log_level) == ("pbx.config", "DEBUG")
    assert "secret" not in str(relay_settings.redacted(settings))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bus": {"url": BUS_URL}}, "db.dsn_file: cannot read"),
        ({"db": {"dsn": "x", "dsn_file": ""}, "bus": {"url": BUS_URL}}, None),
        ({"db": {"dsn": "x"}}, r"bus.url: not set \(set it, or bus.url_file\)"),
        ({"db": {"dsn": "x"}, "bus": {"url": "http://example.org/"}}, "bus.url: not a valid amqp:// URL"),
        (
            {"db": {"dsn": "x"}, "bus": {"url": BUS_URL, "publish_timeout": "soon"}},
            "bus.publish_timeout: expected a number",
        ),
        (
            {"db": {"dsn": "x"}, "bus": {"url": BUS_URL}, "relay": {"batch": 0}},
            "relay.batch: expected a number from 1 or more",
        ),
        (
            {"db": {"dsn": "x"}, "bus": {"url": BUS_URL}, "relay": {"batch": 2.5}},
            "relay.batch: expected a whole number",
        ),
        (
            {"db": {"dsn": "x"}, "bus": {"url": BUS_URL}, "relay": {"retention_days": -1}},
            "relay.retention_days",
        ),
        ({"db": {"dsn": "x"}, "bus": {"url": BUS_URL}, "relay": True}, "relay: must be a mapping"),
        ({"db": {"dsn": "x"}, "bus": {"url": BUS_URL}, "log_level": "loud"}, "log_level: expected one of"),
    ],
)
def test_bad_configuration_names_the_key(values: dict[str, Any], message: str | None) -> None:
    merged = config.merge(relay_settings.DEFAULTS, values)
    merged["db"]["dsn_file"] = values.get("db", {}).get("dsn_file", "/nonexistent/pbx_writer.dsn")
    if message is None:
        relay_settings.check(merged)
        return
    with pytest.raises(ConfigError, match=message):
        relay_settings.check(merged)


def test_command_line_exit_status_on_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert relay_main.main(["--config", str(tmp_path / "missing.yml")]) == 2
    assert "configuration error: " in capsys.readouterr().err
    config_file = _write_config(
        tmp_path / "config.yml", {"db": {"dsn": "host=x password=hush"}, "bus": {"url": BUS_URL}}
    )
    assert relay_main.main(["--config", str(config_file), "--check-config", "--poll-interval", "3"]) == 0
    shown = capsys.readouterr().out
    assert "poll_interval: 3.0" in shown and "hush" not in shown and "secret" not in shown
    with pytest.raises(SystemExit) as usage:
        relay_main.main(["--bogus"])
    assert usage.value.code == 2


def test_help_documents_keys_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        relay_main.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for key in (
        "db.dsn_file",
        "bus.url_file",
        "bus.publish_timeout",
        "relay.poll_interval",
        "relay.retention_days",
        "exit status:",
        "SIGTERM",
        "example:",
    ):
        assert key in text


# -- backoff and state logging -----------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(cap=5)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1, 2, 4, 5, 5]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_link_logs_state_changes_only(caplog: pytest.LogCaptureFixture) -> None:
    link = Link("RabbitMQ", cap=1)
    with caplog.at_level(logging.INFO, logger="pbx-event-relay"):
        for _ in range(5):
            link.failed(OSError("refused"))
        link.succeeded()
        link.succeeded()
    assert [(r.levelname, r.getMessage().split(",")[0]) for r in caplog.records] == [
        ("WARNING", "RabbitMQ unavailable"),
        ("INFO", "RabbitMQ available again"),
    ]


# -- the service ----------------------------------------------------------------------------------------


def _run_in_thread(relay: Relay) -> threading.Thread:
    thread = threading.Thread(target=relay.run, name="relay", daemon=True)
    thread.start()
    return thread


def test_relay_rides_out_a_rabbitmq_outage(
    pbx_db: PbxDatabase, broker: RabbitMQServer, events_queue: EventQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pbx-event-relay")
    relay = Relay(_settings(pbx_db, broker.url, events_queue.exchange, poll_interval=0.2))
    thread = _run_in_thread(relay)
    try:
        _emit(pbx_db, 2)
        assert wait_for(lambda: _pending(pbx_db) == 0, 20)
        broker.stop()
        try:
            _emit(pbx_db, 5)
            time.sleep(2)  # several failed attempts (max_backoff 0.5 s)
            assert _pending(pbx_db) == 5
        finally:
            broker.start()
        assert wait_for(lambda: _pending(pbx_db) == 0, 30)
    finally:
        relay.stop()
        thread.join(20)
    assert not thread.is_alive()
    assert [m.payload["data"]["id"] for m in events_queue.collect(7)] == [0, 1, 0, 1, 2, 3, 4]
    states = [r.getMessage() for r in caplog.records if "RabbitMQ" in r.getMessage()]
    assert len(states) == 2, states
    assert re.match(r"RabbitMQ unavailable, retrying with backoff \([1-5] events waiting\): ", states[0])
    assert states[1].startswith("RabbitMQ available again, published 5 pending events")


def test_relay_reconnects_to_postgresql(
    pbx_db: PbxDatabase, broker: RabbitMQServer, events_queue: EventQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pbx-event-relay")
    relay = Relay(_settings(pbx_db, broker.url, events_queue.exchange))  # polls every 30 s: NOTIFY only
    thread = _run_in_thread(relay)
    try:
        _emit(pbx_db, 1)
        assert wait_for(lambda: _pending(pbx_db) == 0, 20)
        with psycopg.connect(pbx_db.superuser_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'pbx-event-relay'"
            ).fetchall()
        assert killed == [(True,)]
        assert wait_for(
            lambda: any("PostgreSQL available again" in r.getMessage() for r in caplog.records), 20
        )
        _emit(pbx_db, 1)
        assert wait_for(lambda: _pending(pbx_db) == 0, 20)
    finally:
        relay.stop()
        thread.join(20)
    assert [m.payload["data"]["id"] for m in events_queue.collect(2)] == [0, 0]


def test_relay_purges_old_published_rows(
    pbx_db: PbxDatabase, broker: RabbitMQServer, events_queue: EventQueue
) -> None:
    _emit(pbx_db, 2)
    with psycopg.connect(pbx_db.dsn()) as conn:
        conn.execute(
            "UPDATE outbox SET published_at = now() - interval '8 days' "
            "WHERE id = (SELECT min(id) FROM outbox)"
        )
    relay = Relay(_settings(pbx_db, broker.url, events_queue.exchange, retention_days=7))
    assert relay.run(once=True)
    with psycopg.connect(pbx_db.dsn()) as conn:
        state = outbox.status(conn)
    assert (state.pending, state.published) == (0, 1)


# -- the installed commands, end to end -------------------------------------------------------------


def _relay_is_waiting(pbx_db: PbxDatabase) -> bool:
    """The relay connected, LISTENed and finished its first pass (its last statement is a COMMIT)."""
    with psycopg.connect(pbx_db.superuser_dsn, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT state, query FROM pg_stat_activity WHERE application_name = 'pbx-event-relay'"
        ).fetchall()
    return rows == [("idle", "COMMIT")]


def test_relay_process_publishes_commits_of_pbx_admin_at_once(
    pbx_db: PbxDatabase, broker: RabbitMQServer, events_queue: EventQueue, tmp_path: Path
) -> None:
    config_file = _write_config(
        tmp_path / "config.yml",
        {
            "db": {"dsn": pbx_db.dsn()},
            "bus": {"url": broker.url, "exchange": events_queue.exchange},
            "relay": {"poll_interval": 600},  # so that only the NOTIFY can wake it within the test
            "log_level": "info",
        },
    )
    relay = subprocess.Popen(
        [sys.executable, "-m", "confdb.relay", "--config", str(config_file)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: _relay_is_waiting(pbx_db) or relay.poll() is not None, 30)
        assert relay.poll() is None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_ADMIN_")}
        env["PBX_ADMIN_DSN"] = pbx_db.dsn()
        for i in range(3):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "confdb.cli.main",
                    "--config",
                    str(tmp_path / "none.yml"),
                    "user",
                    "add",
                    "--firstname",
                    f"P{i}",
                    "--exten",
                    str(3000 + i),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
        written = time.monotonic()
        with psycopg.connect(pbx_db.dsn()) as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM outbox ORDER BY id")]
        received = events_queue.collect(len(ids), timeout=15)
        assert [m.outbox_id for m in received] == ids
        assert time.monotonic() - written < 15
        assert sum(m.routing_key == "user.created" for m in received) == 3
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(20) == 0
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
    _, err = relay.communicate()
    assert "Traceback" not in err
    assert "stopped; " in err


def test_pbx_admin_outbox_status_and_flush(
    pbx_db: PbxDatabase,
    broker: RabbitMQServer,
    events_queue: EventQueue,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("PBX_ADMIN_BUS_URL", raising=False)
    config_file = _write_config(tmp_path / "config.yml", {"bus": {"exchange": events_queue.exchange}})
    base = ["--config", str(config_file), "--dsn", pbx_db.dsn()]
    _emit(pbx_db, 2)
    assert pbx_admin.main([*base, "--json", "outbox", "status"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["pending"], shown["published"], shown["last_published_at"]) == (2, 0, None)
    assert pbx_admin.main([*base, "outbox", "flush"]) == 1
    assert "bus.url is not set" in capsys.readouterr().err
    monkeypatch.setenv("PBX_ADMIN_BUS_URL", "amqp://pbx:x@127.0.0.1:1/%2F")
    assert pbx_admin.main([*base, "outbox", "flush", "--timeout", "0.5"]) == 1
    assert "events kept in the outbox" in capsys.readouterr().err
    monkeypatch.setenv("PBX_ADMIN_BUS_URL", broker.url)
    assert pbx_admin.main([*base, "--json", "outbox", "flush"]) == 0
    assert json.loads(capsys.readouterr().out) == {"published": 2}
    assert len(events_queue.collect(2)) == 2
    assert pbx_admin.main([*base, "--json", "outbox", "status"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["pending"], shown["published"]) == (0, 2)


def test_pbx_admin_write_publishes_at_once_when_the_bus_is_configured(
    pbx_db: PbxDatabase,
    broker: RabbitMQServer,
    events_queue: EventQueue,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    config_file = _write_config(tmp_path / "config.yml", {"bus": {"exchange": events_queue.exchange}})
    base = ["--config", str(config_file), "--dsn", pbx_db.dsn()]
    monkeypatch.setenv("PBX_ADMIN_BUS_URL", "amqp://pbx:x@127.0.0.1:1/%2F")
    assert pbx_admin.main([*base, "user", "add", "--firstname", "Down", "--exten", "4001"]) == 0
    err = capsys.readouterr().err
    assert "events kept in the outbox, the relay will publish them" in err
    assert "Traceback" not in err and "ERROR" not in err  # pika's own logging stays quiet
    monkeypatch.setenv("PBX_ADMIN_BUS_URL", broker.url)
    assert pbx_admin.main([*base, "user", "add", "--firstname", "Up", "--exten", "4002"]) == 0
    assert _pending(pbx_db) == 0
    received = events_queue.collect(8)
    assert [m.payload["data"].get("exten") for m in received if m.routing_key == "extension.created"] == [
        "4001",
        "4002",
    ]
