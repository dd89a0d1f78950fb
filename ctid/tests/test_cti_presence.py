"""Presence (phone status) over real sockets, from what Asterisk sends: DeviceStateChange events (live and
as DeviceStateList items), for users with several lines and lines shared by several users."""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from ctid.directory import Agent, User
from testkit.ctiharness import HASH, USERS, CTIHarness, check_schema, device, sleep

# Erin has two lines; Frank shares Erin's second one.
ERIN = User(5, "Erin", "erin", HASH, True, ("2001", "2002"), "2001", context="internal")
FRANK = User(6, "Frank", "frank", HASH, True, ("2002",), "2002", context="internal")


def statuses(msg: dict) -> dict[int, str]:
    return {u["user_id"]: u["status"] for u in msg["users"]}


class Presence(CTIHarness):
    def setUp(self):
        d = super().setUp()

        def more_users(result):
            self.daemon.directory.replace_all([*USERS, ERIN, FRANK], [Agent(1, "7001", 2, ("support",))])
            self.daemon.hub.directory_changed({5, 6})
            return result

        return d.addCallback(more_users)

    @inlineCallbacks
    def expect(self, client, wanted: dict[int, str]):
        """Wait until the presence events received so far give these statuses."""
        seen: dict[int, str] = {}

        def done(msg: dict) -> bool:
            if msg["class"] == "presence":
                seen.update(statuses(msg))
            return all(seen.get(uid) == status for uid, status in wanted.items())

        yield client.wait_for(done, timeout=5.0)

    @inlineCallbacks
    def test_every_device_state_of_several_and_shared_lines(self):
        alice = yield self.client("alice", ["presence"])
        steps = [
            # (device states sent, expected statuses of Erin (5) and Frank (6))
            ([("2001", "NOT_INUSE"), ("2002", "NOT_INUSE")], {5: "available", 6: "available"}),
            ([("2001", "RINGING")], {5: "ringing", 6: "available"}),
            ([("2002", "INUSE")], {5: "ringing", 6: "in_use"}),  # the busiest line wins
            ([("2001", "NOT_INUSE")], {5: "in_use", 6: "in_use"}),
            ([("2002", "ONHOLD")], {5: "on_hold", 6: "on_hold"}),  # a shared line: both users
            ([("2002", "RINGINUSE")], {5: "ringing", 6: "ringing"}),
            ([("2002", "BUSY")], {5: "in_use", 6: "in_use"}),
            ([("2002", "NOT_INUSE"), ("2001", "UNAVAILABLE")], {5: "available", 6: "available"}),
            ([("2002", "UNAVAILABLE")], {5: "unavailable", 6: "unavailable"}),
            ([("2001", "INVALID"), ("2002", "UNKNOWN")], {5: "unknown", 6: "unknown"}),
        ]
        for states, wanted in steps:
            for line, state in states:
                self.ami.send_event(device(f"PJSIP/{line}", state))
            yield self.expect(alice, wanted)
        for msg in alice.messages:
            check_schema(msg)

    @inlineCallbacks
    def test_ringing_and_on_hold_from_the_recorded_calls(self):
        alice = yield self.client("alice", ["presence"])
        # trace 11: 1001 calls 1002 (ringing), 1002 answers and holds 1001 (1001's line: ONHOLD)
        self.play("11-sip-attended-transfer", until=lambda e: e["Event"] == "DialState")
        yield self.expect(alice, {1: "in_use", 2: "ringing"})
        self.play(
            "11-sip-attended-transfer",
            start=lambda e: e["Event"] == "DialState",
            until=lambda e: e["Event"] == "Newchannel" and e["Channel"].startswith("PJSIP/1002-0000000b"),
        )
        yield self.expect(alice, {1: "on_hold", 2: "in_use"})

    @inlineCallbacks
    def test_subscribe_snapshot_and_resync_from_device_state_list(self):
        self.devices = [
            device("PJSIP/1001", "NOT_INUSE"),
            device("PJSIP/2001", "UNAVAILABLE"),
            device("PJSIP/2002", "RINGING"),
            device("Queue:support_avail", "NOT_INUSE"),
        ]
        self.ami.drop_connections()  # a reconnection: the lists again
        yield self.ami.wait_for_action("DeviceStateList", 2)
        bob = yield self.client("bob")
        for _ in range(50):
            r = yield bob.request("subscribe", topics=["presence"])
            got = {p["user_id"]: p["status"] for p in r["presence"]}
            if got.get(5) == "ringing":
                break
            yield sleep(0.05)
        self.assertEqual(
            got, {1: "available", 2: "unknown", 3: "unknown", 4: "unknown", 5: "ringing", 6: "ringing"}
        )
        check_schema(r)
