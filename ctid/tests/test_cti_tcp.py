"""ctid over real sockets: the AMI test server on one side, real CTI clients on the other."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

from twisted.internet.defer import inlineCallbacks

from testkit.cticlient import connect
from testkit.ctiharness import PASSWORD, CTIHarness, check_schema, sleep


class CTIOverSockets(CTIHarness):
    # -- login

    @inlineCallbacks
    def test_login_success_and_failure(self):
        c = yield self.client()
        r = yield c.request("login", login="alice", password="wrong-password")
        self.assertEqual((r["class"], r["code"]), ("error", "login_failed"))
        r = yield c.request("login", login="nobody", password=PASSWORD)
        self.assertEqual(r["code"], "login_failed")
        r = yield c.request("login", login="dan", password=PASSWORD)  # disabled
        self.assertEqual(r["code"], "login_failed")
        r = yield c.request("login", login="alice", password=PASSWORD, version=2)
        self.assertEqual(r["code"], "unsupported_version")
        r = yield c.request("login", login="alice", password=PASSWORD)
        self.assertEqual(r["class"], "response")
        self.assertEqual(r["user"]["lines"], ["1001"])
        r = yield c.request("login", login="alice", password=PASSWORD)
        self.assertEqual(r["code"], "already_logged_in")
        for msg in c.messages:
            check_schema(msg)

    @inlineCallbacks
    def test_failed_logins_are_rate_limited_per_address(self):
        c = yield self.client()
        for _ in range(5):
            r = yield c.request("login", login="alice", password="bad-password")
            self.assertEqual(r["code"], "login_failed")
        r = yield c.request("login", login="alice", password=PASSWORD)
        self.assertEqual(r["code"], "rate_limited")
        self.assertGreater(r["retry_after"], 0)
        other = yield self.client()  # same address: limited too
        r = yield other.request("login", login="bob", password=PASSWORD)
        self.assertEqual(r["code"], "rate_limited")
        check_schema(r)

    @inlineCallbacks
    def test_requests_before_login_and_bad_requests(self):
        c = yield self.client()
        r = yield c.request("dial", number="1002")
        self.assertEqual(r["code"], "not_logged_in")
        r = yield c.request("ping")
        self.assertEqual(r["class"], "response")
        c.transport.write(b'{"class": "login", "login": \n')
        r = yield c.wait_for(lambda m: m.get("code") == "malformed")
        self.assertIsNone(r["id"])
        c.transport.write(b"[1, 2]\n")
        yield c.wait_for(lambda m: m.get("code") == "malformed" and "object" in m["message"])
        r = yield c.request("teleport")
        self.assertEqual(r["code"], "unknown_class")
        yield c.request("login", login="alice", password=PASSWORD)
        r = yield c.request("dial", number="1002; Action: Hangup")
        self.assertEqual(r["code"], "invalid_request")
        self.assertIn("$.number", r["message"])
        r = yield c.request("dial", number="1002", extra=1)
        self.assertEqual(r["code"], "invalid_request")
        for msg in c.messages:
            check_schema(msg)

    @inlineCallbacks
    def test_login_timeout_closes(self):
        self.daemon.hub.config = type(self.daemon.hub.config)(login_timeout=0.2)
        c = yield self.client()
        r = yield c.wait_for(lambda m: m.get("code") == "timeout")
        check_schema(r)
        yield c.lost_d

    # -- events

    @inlineCallbacks
    def test_presence_and_calls_pushed_to_subscribers_only(self):
        alice = yield self.client("alice", ["presence", "calls"])
        carol = yield self.client("carol", ["calls"])
        quiet = yield self.client("bob")  # logged in, not subscribed
        self.play("07-sip-call-answer-hangup", lambda e: e["Event"] == "HangupRequest")
        call = yield alice.wait_for(
            lambda m: (
                m["class"] == "call"
                and len({c["line"] for c in m["call"]["channels"]}) == 2
                and all(c["bridge"] for c in m["call"]["channels"])
            )
        )
        self.assertEqual({c["line"] for c in call["call"]["channels"]}, {"1001", "1002"})
        yield alice.wait_for(
            lambda m: (
                m["class"] == "presence"
                and {"user_id": 2, "name": "Bob 1002", "status": "in_use"} in m["users"]
            )
        )
        self.play("07-sip-call-answer-hangup", lambda e: False)  # the whole trace again: ends the call
        yield alice.wait_for(lambda m: m["class"] == "call" and m["ended"])
        r = yield quiet.request("ping")
        self.assertEqual(r["class"], "response")
        self.assertEqual([m["class"] for m in quiet.messages], ["welcome", "response", "response"])
        self.assertFalse([m for m in carol.messages if m["class"] == "call"])
        for msg in alice.messages:
            check_schema(msg)

    @inlineCallbacks
    def test_subscribe_snapshot(self):
        self.play("07-sip-call-answer-hangup", lambda e: e["Event"] == "HangupRequest")
        yield sleep(0.2)
        bob = yield self.client("bob")
        r = yield bob.request("subscribe", topics=["presence", "calls", "queues"])
        check_schema(r)
        self.assertEqual(len(r["calls"]), 1)
        self.assertEqual(len(r["presence"]), 4)
        self.assertEqual(r["members"][0]["user_ids"], [2])

    # -- commands

    @inlineCallbacks
    def test_dial_originates_from_main_line_and_reports_result(self):
        def originate(conn, msg):
            conn.reply(msg, [("Response", "Success"), ("Message", "Originate successfully queued")])
            conn.send(
                [
                    ("Event", "OriginateResponse"),
                    ("ActionID", msg["ActionID"]),
                    ("Response", "Success"),
                    ("Channel", "PJSIP/1001-00000001"),
                    ("Context", "internal"),
                    ("Exten", "1002"),
                    ("Reason", "4"),
                    ("Uniqueid", msg["ChannelId"]),
                    ("CallerIDNum", "1002"),
                    ("CallerIDName", "1002"),
                ]
            )

        self.ami.handlers["originate"] = originate
        alice = yield self.client("alice")
        r = yield alice.request("dial", number="1002")
        self.assertEqual(r["class"], "response", r)
        action = self.ami.actions_named("Originate")[0]
        self.assertEqual(action["Channel"], "PJSIP/1001")
        self.assertEqual(action["Exten"], "1002")
        self.assertEqual(action["Context"], "internal")
        self.assertEqual(action["Async"], "true")
        self.assertEqual(action["ChannelId"], r["call_id"])
        result = yield alice.wait_for(lambda m: m["class"] == "originate_result")
        self.assertEqual((result["call_id"], result["result"]), (r["call_id"], "Success"))
        check_schema(result)

    @inlineCallbacks
    def test_dial_refused_by_asterisk(self):
        self.ami.reply_with("Originate", [("Response", "Error"), ("Message", "Originate failed")])
        alice = yield self.client("alice")
        r = yield alice.request("dial", number="1002")
        self.assertEqual(r["code"], "ami_error")
        self.assertIn("Originate failed", r["message"])

    @inlineCallbacks
    def test_blind_transfer_is_asterisks_blind_transfer_of_the_users_channel(self):
        self.play("10-sip-blind-transfer", lambda e: e["Event"] == "Unhold")
        bob = yield self.client("bob")
        yield sleep(0.1)
        carol = yield self.client("carol")
        r = yield carol.request("transfer", call_id="1795416656.81", number="1003", mode="blind")
        self.assertEqual(r["code"], "no_such_call")  # not carol's call
        r = yield carol.request("hangup", call_id="1795416656.81")
        self.assertEqual(r["code"], "no_such_call")
        r = yield bob.request("transfer", call_id="1795416656.81", number="1003", mode="blind")
        self.assertEqual(r["class"], "response", r)
        (transfer,) = self.ami.actions_named("BlindTransfer")
        self.assertEqual(transfer["Channel"], "PJSIP/1002-00000007")
        self.assertEqual((transfer["Exten"], transfer["Context"]), ("1003", "internal"))
        self.assertEqual(self.ami.actions_named("Redirect"), [])

    @inlineCallbacks
    def test_attended_transfer_and_hangup(self):
        self.play("11-sip-attended-transfer", lambda e: e["Event"] == "Hold")
        bob = yield self.client("bob")
        yield sleep(0.1)
        r = yield bob.request("transfer", call_id="1795416663.110", number="1003", mode="attended")
        self.assertEqual(r["class"], "response", r)
        (atxfer,) = self.ami.actions_named("Atxfer")
        self.assertEqual(atxfer["Channel"], "PJSIP/1002-0000000a")
        r = yield bob.request("hangup", call_id="1795416663.110")
        self.assertEqual(r["class"], "response", r)
        (hangup,) = self.ami.actions_named("Hangup")
        self.assertEqual(hangup["Channel"], "PJSIP/1002-0000000a")

    @inlineCallbacks
    def test_queue_pause_and_agent_login(self):
        bob = yield self.client("bob")
        r = yield bob.request("queue_pause", queue="support", paused=True, reason="lunch")
        self.assertEqual(r["class"], "response", r)
        (pause,) = self.ami.actions_named("QueuePause")
        self.assertEqual(
            (pause["Interface"], pause["Paused"], pause["Queue"]), ("PJSIP/1002", "true", "support")
        )
        r = yield bob.request("agent_login")
        self.assertEqual(r["queues"], ["support", "sales"])
        self.assertEqual({a["Queue"] for a in self.ami.actions_named("QueueAdd")}, {"support", "sales"})
        r = yield bob.request("agent_logout")
        self.assertEqual(len(self.ami.actions_named("QueueRemove")), 2)
        alice = yield self.client("alice")
        r = yield alice.request("agent_login")
        self.assertEqual(r["code"], "not_an_agent")

    # -- AMI failures

    @inlineCallbacks
    def test_ami_cut_and_restored_mid_call(self):
        alice = yield self.client("alice", ["calls", "presence"])
        self.play("07-sip-call-answer-hangup", lambda e: e["Event"] == "HangupRequest")
        yield alice.wait_for(lambda m: m["class"] == "call" and len(m["call"]["channels"]) == 2)
        # Asterisk keeps the call while the AMI connection is down: the resync lists it.
        tracker = self.daemon.tracker
        self.channels = [
            [
                ("Event", "CoreShowChannel"),
                ("Channel", c.name),
                ("Uniqueid", c.uniqueid),
                ("Linkedid", c.linkedid),
                ("ChannelStateDesc", "Up"),
                ("BridgeId", c.bridge or ""),
            ]
            for c in tracker.channels.values()
        ]
        self.ami.drop_connections()
        r = yield alice.request("dial", number="1002")
        self.assertEqual(r["code"], "ami_unavailable")
        yield self.ami.wait_for_action("CoreShowChannels", 2)
        yield sleep(0.3)
        self.assertEqual(len(tracker.calls), 1)
        self.assertFalse([m for m in alice.messages if m["class"] == "call" and m["ended"]])
        # Asterisk restarted meanwhile: the call is gone, and clients learn it within 2 s.
        self.channels = []
        self.ami.drop_connections()
        yield self.ami.wait_for_action("CoreShowChannels", 3)
        ended = yield alice.wait_for(lambda m: m["class"] == "call" and m["ended"], timeout=2.0)
        check_schema(ended)
        self.assertEqual(tracker.calls, {})


class SlowAndHostileClients(CTIHarness):
    cti_overrides = {"max_output_bytes": 65536, "max_message_bytes": 4096, "max_errors": 5}  # noqa: RUF012

    @inlineCallbacks
    def test_a_client_that_stops_reading_is_dropped_and_others_carry_on(self):
        alice = yield self.client("alice", ["presence"])
        slow = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(slow.close)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b'{"class":"login","id":1,"login":"bob","password":"%s"}\n' % PASSWORD.encode())
        hub = self.daemon.hub
        for _ in range(100):
            if any(s.user and s.user.id == 2 for s in hub.sessions):
                break
            yield sleep(0.05)
        slow.sendall(b'{"class":"subscribe","id":2,"topics":["presence"]}\n')
        for _ in range(100):
            if len(hub.presence_subs) == 2:
                break
            yield sleep(0.05)
        big = {"class": "presence", "users": [{"user_id": i, "status": "available"} for i in range(2000)]}
        alice.keep = False
        for _ in range(400):  # ~20 MB for a client that reads nothing
            hub.broadcast(list(hub.presence_subs), big)
            if len(hub.presence_subs) < 2:
                break
            yield sleep(0)
        for _ in range(100):
            if len(hub.presence_subs) < 2:
                break
            yield sleep(0.05)
        self.assertEqual(len(hub.presence_subs), 1)
        r = yield alice.request("ping")
        self.assertEqual(r["class"], "response")

    @inlineCallbacks
    def test_garbage_is_answered_then_disconnected_others_unaffected(self):
        alice = yield self.client("alice")
        bad = yield self.client()
        bad.transport.write(b"\x00\xff garbage\n{not json}\n\n\r\n" + b"x" * 10000 + b"\nmore\n" * 10)
        errors = yield bad.wait_for(lambda m: m.get("code") == "too_many_errors")
        check_schema(errors)
        yield bad.lost_d
        codes = [m.get("code") for m in bad.messages if m["class"] == "error"]
        self.assertIn("too_large", codes)
        self.assertIn("malformed", codes)
        r = yield alice.request("ping")
        self.assertEqual(r["class"], "response")

    @inlineCallbacks
    def test_oversized_message_is_refused_and_the_session_continues(self):
        c = yield self.client()
        c.transport.write(b'{"class":"ping","pad":"' + b"a" * 5000)
        c.transport.write(b'"}\n')
        r = yield c.wait_for(lambda m: m.get("code") == "too_large")
        check_schema(r)
        r = yield c.request("ping")
        self.assertEqual(r["class"], "response")


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate for localhost/127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cti.crt", directory / "cti.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class CTIOverTLS(CTIHarness):
    def setUp(self):
        from twisted.internet import ssl

        directory = Path(tempfile.mkdtemp(prefix="ctid-tls-"))
        self.addCleanup(shutil.rmtree, directory, True)
        cert_file, key_file = self_signed(directory)
        self.cti_overrides = {"tls_cert": str(cert_file), "tls_key": str(key_file)}
        trust = ssl.Certificate.loadPEM(cert_file.read_bytes())
        self.client_tls = ssl.optionsForClientTLS("localhost", trustRoot=trust)
        return super().setUp()

    @inlineCallbacks
    def test_login_and_presence_over_tls(self):
        alice = yield self.client("alice", ["presence"])
        self.assertTrue(alice.transport.getPeerCertificate() is not None)
        r = yield alice.request("ping")
        self.assertEqual(r["class"], "response")

    @inlineCallbacks
    def test_a_plain_text_client_gets_nothing_from_a_tls_port(self):
        plain = yield connect(self.port)
        plain.transport.write(b'{"class": "ping", "id": 1}\n')
        yield plain.lost_d
        self.assertEqual(plain.messages, [])
