"""Asterisk's boot, restart and shutdown as ctid sees them over AMI, with real CTI clients.

Asterisk's manager accepts logins while modules still load: the actions of late modules (DeviceStateList,
QueueStatus) are unknown until then, and FullyBooted comes at the end of the boot (right after the login
when Asterisk is already up). The AMI test server plays this (`booted`, `boot_gated`, `boot`, `shutdown`).
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from testkit.ctiharness import CTIHarness, check_schema, device, member, sleep

LISTS = ("CoreShowChannels", "DeviceStateList", "QueueStatus")


def channel(name: str, uniqueid: str, linkedid: str, state: str = "Up") -> list[tuple[str, str]]:
    """A CoreShowChannel item."""
    return [
        ("Event", "CoreShowChannel"),
        ("Channel", name),
        ("ChannelState", "6"),
        ("ChannelStateDesc", state),
        ("CallerIDNum", "1001"),
        ("CallerIDName", "Alice 1001"),
        ("Uniqueid", uniqueid),
        ("Linkedid", linkedid),
        ("BridgeId", ""),
        ("Application", "Dial"),
    ]


def member_event(m: dict, interface: str) -> bool:
    return m["class"] == "queue_member" and m["interface"] == interface


class BootingAsterisk(CTIHarness):
    booted = False

    def script(self) -> None:
        self.devices = [device("PJSIP/1001", "NOT_INUSE"), device("PJSIP/1002", "INUSE")]
        self.members = [member("support", "PJSIP/1002", "Agent 7001")]

    def asked(self, name: str) -> int:
        return len(self.ami.actions_named(name))

    @inlineCallbacks
    def test_login_during_boot_waits_for_fully_booted_then_resyncs_within_2s(self):
        alice = yield self.client("alice", ["presence", "queues"])
        self.ami.send_event(device("PJSIP/1003", "RINGING"))  # events during the boot apply at once
        yield alice.wait_for(lambda m: m["class"] == "presence" and {3: "ringing"}.items() <= _st(m).items())
        yield sleep(0.3)
        self.assertEqual([self.asked(n) for n in LISTS], [0, 0, 0])  # nothing asked before FullyBooted
        r = yield alice.request("dial", number="1002")
        self.assertEqual(
            (r["code"], r["message"]), ("ami_unavailable", "Asterisk is starting or stopping; retry shortly")
        )
        self.assertEqual(self.ami.actions_named("Originate"), [])
        self.ami.boot()
        booted_at = reactor.seconds()
        yield alice.wait_for(
            lambda m: m["class"] == "presence" and {1: "available", 2: "in_use"}.items() <= _st(m).items(),
            timeout=2.0,
        )
        joined = yield alice.wait_for(lambda m: member_event(m, "PJSIP/1002"), timeout=2.0)
        self.assertLess(reactor.seconds() - booted_at, 2.0)
        self.assertEqual(joined["member"]["user_ids"], [2])
        self.assertEqual([self.asked(n) for n in LISTS], [1, 1, 1])  # each once: none failed
        self.assertTrue(self.daemon.sync.in_sync)
        for msg in alice.messages:
            check_schema(msg)

    @inlineCallbacks
    def test_no_fully_booted_resyncs_after_the_boot_timeout_then_again_at_fully_booted(self):
        # e.g. an AMI user without the 'system' read class: FullyBooted never comes
        logs = self.capture_logs()
        self.daemon.sync.boot_timeout = 0.4  # the timer starts at the next login
        self.ami.boot_gated = set()
        self.ami.drop_connections()
        yield self.ami.wait_for_logins(2)
        yield sleep(0.2)
        self.assertEqual(self.asked("CoreShowChannels"), 0)
        yield self.ami.wait_for_action("QueueStatus", timeout=2.0)
        self.assertTrue(any("no FullyBooted within 0.4 s" in line for line in logs), logs)
        self.ami.boot()  # FullyBooted after all: everything is asked again
        yield self.ami.wait_for_action("QueueStatus", 2, timeout=2.0)
        self.assertEqual([self.asked(n) for n in LISTS], [2, 2, 2])


class AsteriskUp(CTIHarness):
    sync_overrides = {"retry_initial": 0.05}  # noqa: RUF012

    def script(self) -> None:
        self.members = [member("support", "PJSIP/1002", "Agent 7001")]
        self.queue_refusals = 0  # how many QueueStatus the second connection gets refused

        def queue_status(conn, msg):
            if conn.index == 1 and self.queue_refusals > 0:
                self.queue_refusals -= 1
                conn.unknown_command(msg, "QueueStatus")
            else:
                self._list(conn, msg, "members", "QueueStatusComplete")

        self.ami.handlers["queuestatus"] = queue_status

    @inlineCallbacks
    def test_a_failed_list_is_asked_again_with_a_log_line_per_failure(self):
        logs = self.capture_logs()
        self.queue_refusals = 2
        self.members = [member("support", "PJSIP/1001", "Agent 7002")]
        self.ami.drop_connections()
        yield self.ami.wait_for_action("QueueStatus", 4, timeout=5.0)  # 1 at setUp, then 3
        yield self.ami.wait_for_action("CoreShowChannels", 2)
        for _ in range(100):
            if self.daemon.sync.in_sync:
                break
            yield sleep(0.02)
        self.assertIn(("support", "PJSIP/1001"), self.daemon.tracker.members)
        self.assertNotIn(("support", "PJSIP/1002"), self.daemon.tracker.members)
        # only the failed part is asked again
        self.assertEqual([len(self.ami.actions_named(n)) for n in LISTS], [2, 2, 4])
        failures = [line for line in logs if "resync: QueueStatus failed" in line]
        self.assertEqual(len(failures), 2, logs)
        self.assertIn("Invalid/unknown command", failures[0])
        self.assertIn("asking again in 0.05 s", failures[0])
        self.assertIn("asking again in 0.1 s", failures[1])
        self.assertEqual(self.daemon.sync.list_failures, 2)

    @inlineCallbacks
    def test_shutdown_ends_the_calls_and_refuses_commands(self):
        alice = yield self.client("alice", ["calls", "presence"])
        self.play("07-sip-call-answer-hangup", lambda e: e["Event"] == "HangupRequest")
        call = yield alice.wait_for(lambda m: m["class"] == "call" and len(m["call"]["channels"]) == 2)
        self.ami.shutdown(restart=True, cleanly=False, close=False)  # the connection stays a moment
        ended = yield alice.wait_for(lambda m: m["class"] == "call" and m["ended"], timeout=2.0)
        self.assertEqual(ended["call"]["call_id"], call["call"]["call_id"])
        yield alice.wait_for(
            lambda m: m["class"] == "presence" and {1: "unknown", 2: "unknown"}.items() <= _st(m).items()
        )
        r = yield alice.request("hangup", call_id=call["call"]["call_id"])
        self.assertEqual(r["code"], "no_such_call")
        r = yield alice.request("dial", number="1002")
        self.assertEqual(r["code"], "ami_unavailable")
        self.assertEqual(self.ami.actions_named("Originate"), [])

    @inlineCallbacks
    def test_asterisk_restart_reports_the_true_state_within_2s_of_fully_booted(self):
        alice = yield self.client("alice")
        r = yield alice.request("subscribe", topics=["calls", "presence", "queues"])
        self.assertEqual([m["interface"] for m in r["members"]], ["PJSIP/1002"])
        self.play("07-sip-call-answer-hangup", lambda e: e["Event"] == "HangupRequest")
        old = yield alice.wait_for(lambda m: m["class"] == "call" and len(m["call"]["channels"]) == 2)
        # Asterisk restarts: Shutdown, the connection closes, connections are refused for a while
        yield self.ami.stop_listening()
        self.ami.shutdown(restart=True)
        yield alice.wait_for(lambda m: m["class"] == "call" and m["ended"], timeout=2.0)
        # what Asterisk will list once up again: a new call of Alice's, Alice (not Bob) in the queue
        self.channels = [channel("PJSIP/1001-00000010", "1795500000.1", "1795500000.1")]
        self.devices = [device("PJSIP/1001", "INUSE"), device("PJSIP/1002", "NOT_INUSE")]
        self.members = [member("support", "PJSIP/1001", "Agent 7002")]
        yield sleep(0.5)
        self.ami.start(port=self.ami.port)  # the manager is up, the modules still load
        yield self.ami.wait_for_logins(2, timeout=3.0)
        yield sleep(0.3)
        self.assertEqual(len(self.ami.actions_named("QueueStatus")), 1)
        self.ami.boot()
        booted_at = reactor.seconds()
        new = yield alice.wait_for(
            lambda m: m["class"] == "call" and m["call"]["call_id"] == "1795500000.1", timeout=2.0
        )
        yield alice.wait_for(lambda m: member_event(m, "PJSIP/1002") and m["removed"], timeout=2.0)
        added = yield alice.wait_for(
            lambda m: member_event(m, "PJSIP/1001") and not m["removed"], timeout=2.0
        )
        yield alice.wait_for(
            lambda m: m["class"] == "presence" and {1: "in_use", 2: "available"}.items() <= _st(m).items(),
            timeout=2.0,
        )
        self.assertLess(reactor.seconds() - booted_at, 2.0)
        self.assertEqual(added["member"]["user_ids"], [1])
        self.assertEqual([c["line"] for c in new["call"]["channels"]], ["1001"])
        self.assertNotIn(old["call"]["call_id"], self.daemon.tracker.calls)
        for msg in alice.messages:
            check_schema(msg)


def _st(msg: dict) -> dict[int, str]:
    return {u["user_id"]: u["status"] for u in msg["users"]}
