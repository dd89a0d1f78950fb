"""Transfers reported to CTI clients, over real sockets: phone-side (the recorded BlindTransfer and
AttendedTransfer of Asterisk 20) and asked through CTI (Asterisk's BlindTransfer action)."""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from testkit.ctiharness import CTIHarness, check_schema, trace_events

BLIND = "10-sip-blind-transfer"
ATTENDED = "11-sip-attended-transfer"
BLIND_CALL = "1795416656.81"
ATTENDED_CALL = "1795416663.110"


def final_hangup(event: dict) -> bool:
    return event["Event"] == "HangupRequest" and event["Channel"].startswith("PJSIP/1001")


def index(messages: list[dict], pred) -> int:
    return next(i for i, m in enumerate(messages) if pred(m))


def is_transfer(m: dict) -> bool:
    return m["class"] == "transfer"


def shows_transfer(m: dict) -> bool:
    return m["class"] == "call" and m["call"]["transfers"] > 0


class Transfers(CTIHarness):
    @inlineCallbacks
    def clients(self):
        alice = yield self.client("alice", ["calls"])
        bob = yield self.client("bob", ["calls"])
        carol = yield self.client("carol", ["calls"])
        return alice, bob, carol

    @inlineCallbacks
    def test_phone_blind_transfer_reaches_every_party_before_the_outcome(self):
        alice, bob, _carol = yield self.clients()
        self.play(BLIND, until=lambda e: e["Event"] == "BlindTransfer")
        yield alice.wait_for(
            lambda m: m["class"] == "call" and all(ch["bridge"] for ch in m["call"]["channels"])
        )
        # one burst from the transfer on: Bob's channel is gone by the flush that reports it
        self.play(BLIND, start=lambda e: e["Event"] == "BlindTransfer", until=final_hangup)
        for c in (bob, alice):  # Bob, the transferer, too: his channel is gone by then
            event = yield c.wait_for(is_transfer)
            self.assertEqual(
                (event["call_id"], event["kind"], event["result"]), (BLIND_CALL, "blind_transfer", "Success")
            )
            yield c.wait_for(shows_transfer)
            self.assertLess(index(c.messages, is_transfer), index(c.messages, shows_transfer))
            self.assertEqual(event["exten"], "1003")
            for msg in c.messages:
                check_schema(msg)
        call = yield alice.wait_for(lambda m: shows_transfer(m) and len(m["call"]["channels"]) == 2)
        self.assertEqual({ch["line"] for ch in call["call"]["channels"]}, {"1001", "1003"})

    @inlineCallbacks
    def test_phone_attended_transfer_reaches_every_party_before_the_outcome(self):
        alice, bob, carol = yield self.clients()
        self.play(ATTENDED, until=final_hangup)
        for c in (alice, bob, carol):  # Bob transferred: his channels are gone by the flush
            event = yield c.wait_for(is_transfer)
            self.assertEqual(
                event,
                {
                    "class": "transfer",
                    "call_id": ATTENDED_CALL,
                    "kind": "attended_transfer",
                    "result": "Success",
                },
            )
        for c in (alice, carol):
            call = yield c.wait_for(shows_transfer)
            self.assertEqual({ch["line"] for ch in call["call"]["channels"]}, {"1001", "1003"})
            self.assertLess(index(c.messages, is_transfer), index(c.messages, shows_transfer))
        for c in (alice, bob, carol):
            for msg in c.messages:
                check_schema(msg)

    @inlineCallbacks
    def test_cti_blind_transfer_sends_response_then_transfer_then_outcome(self):
        def blind_transfer(conn, msg):
            # Asterisk answers the action, then reports the transfer (one session thread writes both).
            conn.reply(msg, [("Response", "Success"), ("Message", "Transfer succeeded")])
            self.play(BLIND, start=lambda e: e["Event"] == "BlindTransfer", until=final_hangup)

        self.ami.handlers["blindtransfer"] = blind_transfer
        self.play(BLIND, until=lambda e: e["Event"] == "BlindTransfer")
        alice, bob, _carol = yield self.clients()
        r = yield bob.request("transfer", call_id=BLIND_CALL, number="1003", mode="blind")
        self.assertEqual(r["class"], "response", r)
        (action,) = self.ami.actions_named("BlindTransfer")
        self.assertEqual((action["Channel"], action["Exten"]), ("PJSIP/1002-00000007", "1003"))
        for c in (alice, bob):
            event = yield c.wait_for(is_transfer)
            self.assertEqual(
                (event["call_id"], event["kind"], event["result"]), (BLIND_CALL, "blind_transfer", "Success")
            )
            yield c.wait_for(shows_transfer)
            self.assertLess(index(c.messages, is_transfer), index(c.messages, shows_transfer))
        self.assertLess(
            index(bob.messages, lambda m: m.get("id") == r["id"]), index(bob.messages, is_transfer)
        )
        gone = yield bob.wait_for(
            lambda m: (
                m["class"] == "call"
                and not m["ended"]
                and "1002" not in {ch["line"] for ch in m["call"]["channels"]}
            )
        )
        self.assertEqual(gone["call"]["call_id"], BLIND_CALL)

    @inlineCallbacks
    def test_cti_blind_transfer_refused_by_asterisk_is_an_error_and_a_failed_transfer(self):
        (recorded,) = [e for e in trace_events(BLIND) if dict(e)["Event"] == "BlindTransfer"]
        failed = [(k, "Fail" if k == "Result" else v) for k, v in recorded]

        def blind_transfer(conn, msg):
            conn.reply(msg, [("Response", "Error"), ("Message", "Transfer failed")])
            self.ami.send_event(failed)

        self.ami.handlers["blindtransfer"] = blind_transfer
        self.play(BLIND, until=lambda e: e["Event"] == "BlindTransfer")
        alice, bob, _carol = yield self.clients()
        r = yield bob.request("transfer", call_id=BLIND_CALL, number="1003", mode="blind")
        self.assertEqual((r["class"], r["code"]), ("error", "ami_error"))
        self.assertIn("Transfer failed", r["message"])
        for c in (alice, bob):
            event = yield c.wait_for(is_transfer)
            self.assertEqual((event["call_id"], event["result"]), (BLIND_CALL, "Fail"))
        self.assertFalse([m for m in alice.messages if shows_transfer(m)])

    @inlineCallbacks
    def test_cti_blind_transfer_of_a_call_not_bridged(self):
        self.play(BLIND, until=lambda e: e["Event"] == "BridgeCreate")  # 1002 answered, not bridged yet
        bob = yield self.client("bob")
        r = yield bob.request("transfer", call_id=BLIND_CALL, number="1003", mode="blind")
        self.assertEqual(r["code"], "not_bridged")
        self.assertEqual(self.ami.actions_named("BlindTransfer"), [])
