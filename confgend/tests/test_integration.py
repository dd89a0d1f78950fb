"""The whole daemon against real PostgreSQL and RabbitMQ and an AMI peer, over real sockets: a write
becomes an event, the event a regeneration, the changed file an AMI reload; PostgreSQL frozen means the
last good copy is served."""

from __future__ import annotations

import logging
import socket
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from confdb import outbox
from confdb.writer import users
from confgend import client
from confgend.config import DEFAULTS, validate
from confgend.main import Daemon
from testkit.ami.server_threaded import ThreadedAMITestServer

SECRET = "confgend-test-secret-0123456789"


def settings_for(pbx_db, rabbitmq, ami_port: int, tmp: Path, **db):
    (tmp / "ami.secret").write_text(SECRET + "\n")
    from confdb.config import merge

    raw = merge(
        DEFAULTS,
        {
            "listen": {"port": 0},
            "generation_timeout": 1.5,
            "db": {
                "dsn": pbx_db.dsn("pbx_confgend"),
                "pool_timeout": 1.0,
                "statement_timeout_ms": 1000,
                **db,
            },
            "cache": {"directory": str(tmp / "cache")},
            "bus": {"url": rabbitmq.url if rabbitmq else None, "coalesce_seconds": 0.1, "min_interval": 0.5},
            "ami": {"port": ami_port, "secret_file": str(tmp / "ami.secret"), "timeout": 2.0},
        },
    )
    return validate(raw)


class DaemonTest(unittest.TestCase):
    @pytest.fixture(autouse=True)
    def _servers(self, pbx_db, rabbitmq, postgres) -> None:
        self.pbx_db, self.rabbitmq, self.postgres = pbx_db, rabbitmq, postgres

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="confgend-it-"))
        self.ami = ThreadedAMITestServer(username="confgend", secret=SECRET)
        self.ami.start()
        self.addCleanup(self.ami.stop)
        self.ami.reply_with("Reload", {"Response": "Success", "Message": "Module Reloaded"})
        self.daemon = Daemon(settings_for(self.pbx_db, self.rabbitmq, self.ami.port, self.tmp), reactor)
        self.addCleanup(self.daemon.stop)
        self.daemon.start()
        self.port = self.daemon.port.getHost().port

    def fetch(self, name: str, timeout: float = 5) -> defer.Deferred[bytes]:
        return threads.deferToThread(client.fetch, name, "127.0.0.1", self.port, 1, timeout)

    def write_user(self, exten: str) -> None:
        with psycopg.connect(self.pbx_db.dsn()) as conn:
            users.create_user(conn, users.UserSpec(firstname=f"User{exten}", exten=exten))
        with psycopg.connect(self.pbx_db.dsn()) as conn:
            outbox.publish_pending(conn, self.rabbitmq.url)

    def idle(self) -> None:
        """Wait until the reloader has nothing running or scheduled."""
        reloader = self.daemon.reloader
        deadline = time.monotonic() + 15
        while reloader.running or reloader.timer is not None or not reloader.rounds:
            if time.monotonic() > deadline:
                raise TimeoutError("the reloader never went idle")
            time.sleep(0.05)

    @defer.inlineCallbacks
    def test_write_event_reload(self):
        yield threads.deferToThread(self.daemon.listener.connected.wait, 10)
        before = yield self.fetch("asterisk/pjsip.conf")
        self.assertIn(b"[pbx-endpoint](!)", before)
        yield threads.deferToThread(self.idle)  # the start-up resync round (empty cache: all files)
        resync = len(self.ami.actions_named("Reload"))
        yield threads.deferToThread(self.write_user, "1234")
        yield threads.deferToThread(self.ami.wait_for_action, "Reload", resync + 1, 10)
        yield threads.deferToThread(time.sleep, 1.0)
        yield threads.deferToThread(self.idle)
        modules = [a.get("Module") for a in self.ami.actions_named("Reload")[resync:]]
        # a user with a line and an extension: pjsip.conf and extensions.conf changed, nothing else
        self.assertEqual(sorted(modules), ["pbx_config.so", "res_pjsip.so"])
        after = yield self.fetch("asterisk/extensions.conf")
        self.assertIn(b"exten => 1234,1,Gosub(pbx-user", after)

    def pooled_setting(self, name: str) -> str:
        with self.daemon.dbpool.connection() as conn:
            return conn.execute(f"SHOW {name}").fetchone()[0]

    @defer.inlineCallbacks
    def test_frozen_database_serves_the_last_good_copy(self):
        timeout = yield threads.deferToThread(self.pooled_setting, "statement_timeout")
        self.assertEqual(timeout, "1s")  # db.statement_timeout_ms, on every pooled connection
        good = yield self.fetch("asterisk/extensions.conf")
        raw_cached = (self.tmp / "cache/asterisk/extensions.conf").read_bytes()
        self.assertEqual(good, raw_cached)
        self.postgres.freeze()
        try:
            started = time.monotonic()
            again = yield self.fetch("asterisk/extensions.conf", timeout=10)
            self.assertLess(time.monotonic() - started, 5)
        finally:
            self.postgres.thaw()
        self.assertEqual(again, good)
        fresh = yield self.fetch("asterisk/extensions.conf")
        self.assertEqual(fresh, good)

    @defer.inlineCallbacks
    def test_a_postgres_restart_is_not_a_database_down(self):
        """After a restart every pooled connection is stale: confgend tries once more on a new one instead of
        serving its last good copy (and holding retries off) for a while."""
        yield self.fetch("asterisk/pjsip.conf")
        self.postgres.stop(mode="fast")
        self.postgres.start()
        for name in (b"asterisk/pjsip.conf\n", b"asterisk/extensions.conf\n", b"asterisk/queues.conf\n"):
            raw = yield threads.deferToThread(raw_request, self.port, name)
            self.assertTrue(raw.startswith(b"OK ") and b" fresh\n" in raw[:40], (name, raw[:40]))

    @defer.inlineCallbacks
    def test_asterisk_down_then_back_gets_the_reload(self):
        """AMI refused: the round keeps the files as changed and retries; once Asterisk is back it gets the
        reload of what changed while it was away."""
        yield threads.deferToThread(self.daemon.listener.connected.wait, 10)
        yield threads.deferToThread(self.ami.wait_for_action, "Reload", 1, 10)  # the start-up resync
        port = self.ami.port
        self.ami.stop()
        rounds = self.daemon.reloader.rounds
        yield threads.deferToThread(self.write_user, "1235")
        yield threads.deferToThread(time.sleep, 1.0)
        self.assertGreater(self.daemon.reloader.rounds, rounds)  # it tried, against a closed port
        back = ThreadedAMITestServer(username="confgend", secret=SECRET)
        back.reply_with("Reload", {"Response": "Success", "Message": "Module Reloaded"})
        back.start(port)
        self.addCleanup(back.stop)
        yield threads.deferToThread(back.wait_for_action, "Reload", 2, 15)
        modules = {a.get("Module") for a in back.actions_named("Reload")}
        self.assertTrue({"res_pjsip.so", "pbx_config.so"} <= modules, modules)

    @defer.inlineCallbacks
    def test_database_down_after_a_restart_serves_the_cached_copy(self):
        """The last good copy survives a restart (cache on disk) and is served while PostgreSQL refuses
        connections; a file never generated is an ERR, which the client turns into its own copy or exit 1."""
        good = yield self.fetch("asterisk/pjsip.conf")
        yield self.daemon.stop()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))  # bound, never listening: "connection refused"
            dead = f"host=127.0.0.1 port={sock.getsockname()[1]} dbname=pbx user=pbx_confgend"
            settings = settings_for(self.pbx_db, None, self.ami.port, self.tmp, dsn=dead)
            daemon = Daemon(settings, reactor)
            self.addCleanup(daemon.stop)
            daemon.start()
            self.port = daemon.port.getHost().port
            records: list[logging.LogRecord] = []
            handler = logging.Handler()
            handler.emit = records.append  # type: ignore[method-assign]
            logging.getLogger("confgend.service").addHandler(handler)
            self.addCleanup(logging.getLogger("confgend.service").removeHandler, handler)
            started = time.monotonic()
            raw = yield threads.deferToThread(raw_request, self.port, b"asterisk/pjsip.conf\n")
            self.assertLess(time.monotonic() - started, 5)  # the client's own timeout
            self.assertEqual(raw, b"OK %d cached\n" % len(good) + good)
            self.assertTrue(any("serving the last good copy" in r.getMessage() for r in records), records)
            with self.assertRaises(client.Failed) as failed:
                yield self.fetch("asterisk/queues.conf")
            self.assertIn("no last good copy", str(failed.exception))
            # files that need no database are still fresh
            manager = yield threads.deferToThread(raw_request, self.port, b"asterisk/modules.conf\n")
            self.assertTrue(manager.startswith(b"OK ") and b" fresh\n" in manager[:40], manager[:40])


def test_building_the_daemon_starts_nothing(tmp_path: Path) -> None:
    """The constructor only wires (a bad setting fails there, before anything runs); start() listens and
    starts the workers and the pool; stop() undoes it, and a daemon never started stops too."""
    from twisted.internet.testing import MemoryReactor

    fake = MemoryReactor()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # never listening: the pool gets "connection refused"
        dead = f"host=127.0.0.1 port={sock.getsockname()[1]} dbname=pbx user=pbx_confgend"
        (tmp_path / "ami.secret").write_text(SECRET + "\n")
        raw = merge_settings(dead, tmp_path)
        daemon = Daemon(raw, fake)
        assert fake.tcpServers == [] and daemon.port is None
        assert not daemon.threads.started and daemon.dbpool.closed
        daemon.start()
        assert [(port, host) for port, _factory, _backlog, host in fake.tcpServers] == [(0, "127.0.0.1")]
        assert daemon.threads.started and not daemon.dbpool.closed
        daemon.stop()
        assert daemon.dbpool.closed and not daemon.threads.started
        never = Daemon(raw, fake)
        never.stop()
        assert len(fake.tcpServers) == 1


def merge_settings(dsn: str, tmp: Path):
    from confdb.config import merge

    return validate(
        merge(
            DEFAULTS,
            {
                "listen": {"port": 0},
                "db": {"dsn": dsn, "pool_timeout": 1.0},
                "cache": {"directory": str(tmp / "cache")},
                "bus": {"url": None},
                "ami": {"secret_file": str(tmp / "ami.secret")},
            },
        )
    )


def raw_request(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
