"""The daemon's request path over real sockets (trial: the reactor runs; blocking clients run in threads)."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from twisted.internet import defer, reactor, threads
from twisted.internet.task import deferLater
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest

from confgend import client
from confgend.protocol import ConfgenFactory
from confgend.service import ConfigService
from testkit.confgend.fakes import FakeEngine


def raw_request(port: int, data: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


class ServerTest(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="confgend-test-"))
        self.engine = FakeEngine(self.dir / "cache")
        self.pool = ThreadPool(minthreads=1, maxthreads=8, name="test")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.service = ConfigService(reactor, self.pool, self.engine)
        self.factory = ConfgenFactory(self.service, reactor, max_connections=50, idle_timeout=2)
        self.listening = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.listening.stopListening)
        self.port = self.listening.getHost().port

    def fetch(self, name: str) -> defer.Deferred[bytes]:
        return threads.deferToThread(client.fetch, name, "127.0.0.1", self.port, 2, 5)

    @defer.inlineCallbacks
    def test_serves_a_file(self):
        data = yield self.fetch("asterisk/pjsip.conf")
        self.assertEqual(data, self.engine.content)
        raw = yield threads.deferToThread(raw_request, self.port, b"asterisk/pjsip.conf\r\n")
        self.assertEqual(raw, b"OK %d fresh\n" % len(self.engine.content) + self.engine.content)

    @defer.inlineCallbacks
    def test_concurrent_requests_share_one_generation(self):
        self.engine.release.clear()
        fetches = [self.fetch("asterisk/pjsip.conf") for _ in range(6)]  # the reactor's pool has 10 threads
        reactor.callLater(0.5, self.engine.release.set)
        results = yield defer.gatherResults(fetches)
        self.assertEqual(set(results), {self.engine.content})
        self.assertEqual(self.engine.calls, 1)
        self.assertEqual(self.service.generations, 1)
        yield self.fetch("asterisk/pjsip.conf")  # a later request generates again
        self.assertEqual(self.engine.calls, 2)

    @defer.inlineCallbacks
    def test_failure_serves_the_last_good_copy(self):
        good = yield self.fetch("asterisk/queues.conf")
        self.engine.fail = RuntimeError("database on fire")
        raw = yield threads.deferToThread(raw_request, self.port, b"asterisk/queues.conf\n")
        self.assertEqual(raw, b"OK %d cached\n" % len(good) + good)
        self.flushLoggedErrors(RuntimeError)

    @defer.inlineCallbacks
    def test_database_down_serves_copies_at_once_for_a_while(self):
        import psycopg

        good = yield self.fetch("asterisk/pjsip.conf")
        self.engine.fail = psycopg.OperationalError("connection refused")
        first = yield threads.deferToThread(raw_request, self.port, b"asterisk/pjsip.conf\n")
        self.assertEqual(first, b"OK %d cached\n" % len(good) + good)
        calls = self.engine.calls
        second = yield threads.deferToThread(raw_request, self.port, b"asterisk/pjsip.conf\n")
        self.assertEqual(second, first)
        self.assertEqual(self.engine.calls, calls)  # not even tried: the database failed a moment ago
        self.service.db_down_until = 0  # the window is over: the database is tried again
        self.engine.fail = None
        fresh = yield self.fetch("asterisk/pjsip.conf")
        self.assertEqual((fresh, self.engine.calls), (good, calls + 1))

    @defer.inlineCallbacks
    def test_failure_without_a_copy_is_an_error(self):
        self.engine.fail = RuntimeError("database on fire")
        raw = yield threads.deferToThread(raw_request, self.port, b"asterisk/agents.conf\n")
        self.assertTrue(raw.startswith(b"ERR asterisk/agents.conf: generation failed"), raw)
        self.flushLoggedErrors(RuntimeError)

    @defer.inlineCallbacks
    def test_bad_requests(self):
        for request, answer in [
            (b"asterisk/nothing.conf\n", b"ERR unknown file"),
            (b"../etc/passwd\n", b"ERR bad request"),
            (b"x" * 300, b"ERR request too long"),
            (b"\xff\xfe\n", b"ERR bad request"),
        ]:
            raw = yield threads.deferToThread(raw_request, self.port, request)
            self.assertTrue(raw.startswith(answer), (request[:20], raw))

    @defer.inlineCallbacks
    def test_silent_client_is_dropped(self):
        self.factory.idle_timeout = 0.2
        raw = yield threads.deferToThread(raw_request, self.port, b"")
        self.assertEqual(raw, b"ERR timeout waiting for the request\n")

    @defer.inlineCallbacks
    def test_a_late_generation_is_not_what_asterisk_has(self):
        """Too slow: the client got the last good copy; the generation that ends later refreshes the
        cache but must not count as served (the reloader would think Asterisk has it)."""
        served: list[bytes] = []
        self.service.on_served.append(lambda reply: served.append(reply.data))
        old = yield self.fetch("asterisk/voicemail.conf")
        self.assertEqual(served, [old])
        self.service.deadline = 0.3
        self.engine.release.clear()
        self.engine.content = b"[general]\nnew = 1\n"
        raw = yield threads.deferToThread(raw_request, self.port, b"asterisk/voicemail.conf\n")
        self.assertEqual(raw, b"OK %d cached\n" % len(old) + old)
        self.engine.release.set()
        for _ in range(100):  # the generation ends in its thread, then delivers on the reactor
            if self.service.last_good["asterisk/voicemail.conf"] == self.engine.content:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(self.service.last_good["asterisk/voicemail.conf"], self.engine.content)
        self.assertEqual(served, [old, old])  # not the late one
        self.flushLoggedErrors()
