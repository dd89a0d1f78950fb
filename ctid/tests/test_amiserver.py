"""The AMI test server against the real Asterisk 20 recordings, over TCP."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.trial import unittest

from testkit.ami.server import AMITestServer
from testkit.ami.traces import Trace, TraceReplay, trace_names

TRACE_DIR = Path(__file__).parent / "data" / "asterisk-traces"


class RawClient(Protocol):
    """Writes bytes, collects every byte until the server closes."""

    def __init__(self, send: bytes) -> None:
        self.send = send
        self.received = b""
        self.done: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.send)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object = None) -> None:
        self.done.callback(self.received)


class ServerTest(unittest.TestCase):
    timeout = 30

    def start(self, **kwargs: object) -> AMITestServer:
        server = AMITestServer(**kwargs)  # type: ignore[arg-type]
        server.start()
        self.addCleanup(server.stop)
        return server

    @inlineCallbacks
    def exchange(self, server: AMITestServer, send: bytes):  # type: ignore[no-untyped-def]
        client = RawClient(send)
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port), client)
        received = yield client.done
        return received

    @inlineCallbacks
    def test_every_trace_replays_byte_for_byte(self) -> None:
        names = trace_names(TRACE_DIR)
        self.assertEqual(len(names), 14)
        for name in names:
            trace = Trace.load(TRACE_DIR, name)
            server = AMITestServer(username="refadmin", secret="refadmin-secret", trace=trace)
            server.start()
            try:
                sent = (TRACE_DIR / f"{name}.ami-sent.raw").read_bytes()
                received = yield self.exchange(server, sent)
                self.assertEqual(received, (TRACE_DIR / f"{name}.ami.raw").read_bytes(), name)
                self.assertEqual([a.message for a in server.actions], trace.actions, name)
            finally:
                yield server.stop()

    @inlineCallbacks
    def test_generic_login_failure_matches_asterisk(self) -> None:
        server = self.start(username="refadmin", secret="right")
        sent = (TRACE_DIR / "02a-login-failure.ami-sent.raw").read_bytes()
        received = yield self.exchange(server, sent)
        self.assertEqual(received, (TRACE_DIR / "02a-login-failure.ami.raw").read_bytes())
        self.assertEqual((server.login_failures, server.logins), (1, 0))

    @inlineCallbacks
    def test_generic_session_matches_asterisk_answers(self) -> None:
        server = self.start(username="refadmin", secret="refadmin-secret")
        sent = (TRACE_DIR / "02b-action-before-login.ami-sent.raw").read_bytes()
        received = yield self.exchange(server, sent)
        recorded = (TRACE_DIR / "02b-action-before-login.ami.raw").read_bytes()
        # permission denied twice, the login answer, then FullyBooted (Asterisk adds SuccessfulAuth too)
        self.assertEqual(received[:200], recorded[:200])
        self.assertTrue(
            received.endswith(
                b"Response: Goodbye\r\nActionID: ref-4\r\nMessage: Thanks for all the fish.\r\n\r\n"
            )
        )
        self.assertEqual([a.authenticated for a in server.actions], [False, False, False, True])

    @inlineCallbacks
    def test_scripted_replies_and_recording(self) -> None:
        server = self.start(username="u", secret="s")
        server.reply_with("Reload", {"Response": "Success", "Message": "Module Reloaded"})
        server.reply_list(
            "CoreShowChannels",
            [{"Event": "CoreShowChannel", "Channel": "PJSIP/1001-00000001"}],
            "CoreShowChannelsComplete",
        )
        send = (
            b"Action: Login\r\nUsername: u\r\nSecret: s\r\n\r\n"
            b"Action: Reload\r\nActionID: r1\r\nModule: res_pjsip.so\r\n\r\n"
            b"Action: CoreShowChannels\r\nActionID: c1\r\n\r\n"
            b"Action: Logoff\r\n\r\n"
        )
        received = yield self.exchange(server, send)
        self.assertIn(b"Response: Success\r\nActionID: r1\r\nMessage: Module Reloaded\r\n\r\n", received)
        self.assertIn(
            b"Event: CoreShowChannelsComplete\r\nActionID: c1\r\nEventList: Complete\r\nListItems: 1\r\n\r\n",
            received,
        )
        self.assertTrue(
            received.startswith(b"Asterisk Call Manager/9.0.0\r\nResponse: Success\r\nMessage: Auth")
        )
        [reload] = server.actions_named("reload")
        self.assertEqual(reload["Module"], "res_pjsip.so")
        found = yield server.wait_for_action("Logoff")
        self.assertEqual(found, {"Action": "Logoff"})

    @inlineCallbacks
    def test_booting_then_booted_then_shutdown(self) -> None:
        server = self.start(username="u", secret="s")
        server.booted = False
        server.reply_list("QueueStatus", [], "QueueStatusComplete")
        client = RawClient(
            b"Action: Login\r\nUsername: u\r\nSecret: s\r\n\r\nAction: QueueStatus\r\nActionID: q1\r\n\r\n"
        )
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port), client)
        for _ in range(500):
            if b"ActionID: q1" in client.received:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertNotIn(b"FullyBooted", client.received)  # logged in while the modules load
        self.assertIn(b"ActionID: q1\r\nMessage: Invalid/unknown command: QueueStatus.", client.received)
        self.assertEqual(server.boot(), 1)
        client.transport.write(b"Action: QueueStatus\r\nActionID: q2\r\n\r\n")
        yield server.wait_for_action("QueueStatus", 2)
        self.assertEqual(server.shutdown(restart=True), 1)
        received = yield client.done
        after_boot = received.split(b"Event: FullyBooted\r\n", 1)[1]
        self.assertIn(b"Event: QueueStatusComplete\r\nActionID: q2\r\n", after_boot)
        self.assertTrue(
            received.endswith(
                b"Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n"
            )
        )
        self.assertFalse(server.booted)

    @inlineCallbacks
    def test_wait_for_action_times_out(self) -> None:
        server = self.start()
        with self.assertRaises(TimeoutError):
            yield server.wait_for_action("Never", timeout=0.05)


def test_replay_waits_for_the_matching_action() -> None:
    trace = Trace.load(TRACE_DIR, "05-fastagi-hangup-during-agi")
    replay = TraceReplay(trace)
    assert replay.advance() == b""  # the first message answers Login
    assert replay.expects("login") and not replay.expects("Originate")
    data, answer = replay.match("c-1")
    assert answer is not None and answer["Message"] == "Authentication accepted"
    assert data.startswith(b"Response: Success\r\nActionID: c-1\r\n")
    data, answer = replay.match("c-2")
    assert answer is not None and answer["Message"] == "Originate successfully queued"
    assert replay.expected_action == "Hangup" and not replay.finished
    assert b"ActionID: ref-" not in data
    data, _ = replay.match(None)  # an action sent without ActionID gets answers without one
    assert b"Message: Channel Hungup\r\n" in data or b"Response: Success\r\n" in data
    replay.match("c-4")
    assert replay.finished and replay.expected_action is None
