"""Text that is not Unicode, over real sockets: a lone surrogate (a ``\\ud800`` escape without its pair, or
its UTF-8-like bytes) is refused as ``malformed``; the session goes on and nothing reaches Asterisk."""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from testkit.ctiharness import CTIHarness, check_schema, trace_events


class LoneSurrogates(CTIHarness):
    @inlineCallbacks
    def test_a_lone_surrogate_is_malformed_and_the_session_goes_on(self):
        logs = self.capture_logs()
        c = yield self.client()
        for line in (
            rb'{"class":"ping","id":"\ud800"}',
            rb'{"class":"ping","id":"x\udfff"}',
            rb'{"class":"ping","\udc80":1}',  # in a key
            b'{"class":"ping","id":"\xed\xa0\x80"}',  # a surrogate's bytes are not UTF-8 either
        ):
            c.transport.write(line + b"\n")
            r = yield c.wait_for(lambda m: m.get("code") == "malformed", past=False)
            self.assertIsNone(r["id"])
            check_schema(r)
            r = yield c.request("ping")
            self.assertEqual(r["class"], "response")
        # a good id is echoed, so that the client can match the error to its request
        c.transport.write(rb'{"class":"ping","id":7,"pad":["\ud83d\ude00","\ud83d"]}' + b"\n")
        r = yield c.wait_for(lambda m: m.get("id") == 7)
        self.assertEqual((r["code"], r["request"]), ("malformed", "ping"))
        self.assertIn("$.pad[1]", r["message"])
        self.assertFalse([line for line in logs if "Traceback" in line or "Unhandled" in line], logs)

    @inlineCallbacks
    def test_a_lone_surrogate_in_a_queue_pause_reason_never_reaches_asterisk(self):
        logs = self.capture_logs()
        bob = yield self.client("bob")
        line = b'{"class":"queue_pause","id":"%s","paused":true,"reason":"%s"}\n'
        bob.transport.write(line % (b"p1", rb"lunch \udc80"))
        r = yield bob.wait_for(lambda m: m.get("id") == "p1")
        self.assertEqual((r["class"], r["code"]), ("error", "malformed"))
        self.assertIn("$.reason", r["message"])
        bob.transport.write(line % (b"p2", rb"\ud800"))
        r = yield bob.wait_for(lambda m: m.get("id") == "p2")
        self.assertEqual(r["code"], "malformed")
        self.assertEqual(self.ami.actions_named("QueuePause"), [])
        # a proper pair is text: it reaches Asterisk as UTF-8
        bob.transport.write(line % (b"p3", rb"\ud83d\ude34"))
        r = yield bob.wait_for(lambda m: m.get("id") == "p3")
        self.assertEqual(r["class"], "response", r)
        (pause,) = self.ami.actions_named("QueuePause")
        self.assertEqual(pause["Reason"], "\U0001f634")
        self.assertFalse([line for line in logs if "Traceback" in line or "Unhandled" in line], logs)

    @inlineCallbacks
    def test_a_caller_name_that_is_not_utf8_reaches_clients_as_replacement_characters(self):
        logs = self.capture_logs()
        alice = yield self.client("alice", ["calls"])
        for fields in trace_events("07-sip-call-answer-hangup"):  # Latin-1 bytes, as a trunk may send
            if dict(fields)["Event"] == "HangupRequest":
                break
            self.ami.send_event([(k, "Jos\udce9" if k == "CallerIDName" else v) for k, v in fields])
        call = yield alice.wait_for(lambda m: m["class"] == "call" and m["call"]["channels"])
        check_schema(call)
        self.assertIn("Jos\ufffd", {c["callerid_name"] for c in call["call"]["channels"]})
        bob = yield self.client("bob")
        r = yield bob.request("subscribe", topics=["calls"])  # the snapshot too
        self.assertEqual(r["calls"][0]["channels"][0]["callerid_name"], "Jos\ufffd")
        self.assertFalse([line for line in logs if "Traceback" in line or "failed" in line], logs)
