"""AMIClient + AMIService over real loopback TCP against the AMI test server (and the Asterisk 20 traces)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial import unittest

from ctid.ami import (
    AMIActionError,
    AMIBackpressureError,
    AMIClient,
    AMIConfig,
    AMIConnectionLostError,
    AMIService,
    AMITimeoutError,
    EventList,
)
from testkit.ami.server import AMITestServer
from testkit.ami.traces import Trace

TRACE_DIR = Path(__file__).parent / "data" / "asterisk-traces"


def sleep(seconds: float) -> Deferred:
    return deferLater(reactor, seconds, lambda: None)


class ClientTestCase(unittest.TestCase):
    timeout = 60  # generous: a loaded 2-core CI machine

    def start_server(self, **kwargs: Any) -> AMITestServer:
        server = AMITestServer(**kwargs)
        server.start()
        self.addCleanup(server.stop)
        return server

    def start_client(self, server: AMITestServer, **overrides: Any) -> tuple[AMIClient, AMIService]:
        settings: dict[str, Any] = {
            "port": server.port,
            "username": server.username,
            "secret": server.secret,
            "ping_interval": 0.0,
            "action_timeout": 20.0,
            "backoff_initial": 0.05,
            "backoff_max": 0.4,
            **overrides,
        }
        self.events: list[dict[str, str]] = []
        client = AMIClient(AMIConfig(**settings), on_event=self.events.append)
        self.logged_in: list[Deferred] = []
        service = AMIService(client)
        client.add_connected_hook(self._connected)  # after the service's own hook (backoff reset)
        service.startService()
        self.addCleanup(service.stopService)
        return client, service

    def _connected(self, client: AMIClient) -> None:
        waiters, self.logged_in = self.logged_in, []
        for d in waiters:
            d.callback(client)

    def next_login(self, client: AMIClient) -> Deferred:
        d: Deferred = Deferred()
        self.logged_in.append(d)
        return d

    @inlineCallbacks
    def wait_for(self, check: Any, what: str, limit: float = 20.0) -> Any:
        for _ in range(int(limit / 0.01)):
            if check():
                return
            yield sleep(0.01)
        self.fail(f"timed out waiting for {what}")


class LoginAndActions(ClientTestCase):
    @inlineCallbacks
    def test_login_ping_and_errors(self) -> None:
        server = self.start_server(username="ctid", secret="s3cret")
        client, _ = self.start_client(server)
        yield self.next_login(client)
        pong = yield client.send_action("Ping")
        self.assertEqual(pong["Ping"], "Pong")
        with self.assertRaises(AMIActionError) as info:
            yield client.send_action("NoSuchAction")
        self.assertIn("Invalid/unknown command", str(info.exception))
        login = server.actions_named("Login")[0]
        self.assertEqual((login["Username"], login["Secret"]), ("ctid", "s3cret"))
        ids = [a.message["ActionID"] for a in server.actions]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(self.events[0]["Event"], "FullyBooted")
        self.assertEqual(server.send_event({"Event": "PeerStatus", "Peer": "PJSIP/1001"}), 1)
        yield self.wait_for(lambda: len(self.events) == 2, "the pushed event")
        self.assertEqual(self.events[1], {"Event": "PeerStatus", "Peer": "PJSIP/1001"})

    @inlineCallbacks
    def test_many_concurrent_actions_correlate(self) -> None:
        server = self.start_server()
        server.handlers["getvar"] = lambda conn, msg: conn.reply(
            msg, {"Response": "Success", "Variable": msg["Variable"], "Value": msg["Variable"].upper()}
        )
        client, _ = self.start_client(server)
        yield self.next_login(client)
        names = [f"var{i}" for i in range(300)]
        answers = yield Deferred.fromCoroutine(
            _gather([client.send_action("Getvar", {"Variable": n}) for n in names])
        )
        self.assertEqual([a["Value"] for a in answers], [n.upper() for n in names])


async def _gather(ds: list[Deferred]) -> list[Any]:
    return [await d for d in ds]


class TraceReplays(ClientTestCase):
    def replay_server(self, name: str) -> AMITestServer:
        return self.start_server(
            username="refadmin", secret="refadmin-secret", trace=Trace.load(TRACE_DIR, name)
        )

    @inlineCallbacks
    def test_01_core_actions_and_command_output(self) -> None:
        client, _ = self.start_client(self.replay_server("01-login-ping-logoff"))
        yield self.next_login(client)
        pong = yield client.send_action("Ping")
        self.assertEqual(pong["Timestamp"], "1795416615.918965")
        settings = yield client.send_action("CoreSettings")
        self.assertEqual(settings["AsteriskVersion"], "20.20.1")
        yield client.send_action("CoreStatus")
        output = yield client.command("core show version")
        self.assertTrue(output.startswith("Asterisk 20.20.1 built by root @ vm on a x86_64"))
        commands = yield client.send_action("ListCommands")
        self.assertIn("Priv: originate,all", commands["Originate"])
        with self.assertRaises(AMIActionError):
            yield client.send_action("NoSuchAction")
        yield self.wait_for(
            lambda: any(e["Event"] == "RequestBadFormat" for e in self.events), "RequestBadFormat"
        )
        self.assertEqual([e["Event"] for e in self.events[:2]], ["FullyBooted", "SuccessfulAuth"])

    @inlineCallbacks
    def test_03_originate_response_event_and_failed_originate(self) -> None:
        client, _ = self.start_client(self.replay_server("03-originate-local"))
        yield self.next_login(client)
        queued = yield client.send_action("Originate", {"Channel": "Local/wait@local-test", "Async": "true"})
        self.assertEqual(queued["Message"], "Originate successfully queued")
        yield self.wait_for(
            lambda: any(e["Event"] == "OriginateResponse" for e in self.events), "OriginateResponse"
        )
        [event] = [e for e in self.events if e["Event"] == "OriginateResponse"]
        self.assertEqual((event["ActionID"], event["Response"]), (queued["ActionID"], "Success"))
        with self.assertRaises(AMIActionError) as info:
            yield client.send_action("Originate", {"Channel": "Local/nosuch@local-test"})
        self.assertEqual(info.exception.response["Message"], "Originate failed")

    @inlineCallbacks
    def test_06_list_actions(self) -> None:
        client, _ = self.start_client(self.replay_server("06-pjsip-register"))
        yield self.next_login(client)
        endpoints = yield client.send_list_action("PJSIPShowEndpoints")
        self.assertIsInstance(endpoints, EventList)
        self.assertEqual([e["ObjectName"] for e in endpoints], ["1001", "1002", "1003"])
        self.assertEqual(endpoints.list_items, 3)
        contacts = yield client.send_list_action("PJSIPShowContacts")
        self.assertEqual((len(contacts), contacts.list_items), (3, 3))
        detail = yield client.send_list_action("PJSIPShowEndpoint", {"Endpoint": "1001"})
        self.assertEqual(
            [e["Event"] for e in detail],
            ["EndpointDetail", "AuthDetail", "TransportDetail", "AorDetail", "ContactStatusDetail"],
        )
        self.assertEqual(detail.list_items, 5)
        state = yield client.send_action("ExtensionState", {"Exten": "1001", "Context": "internal"})
        self.assertEqual(state["StatusText"], "Unknown")
        devices = yield client.send_list_action("DeviceStateList")
        self.assertEqual((len(devices), devices.list_items), (8, 8))
        self.assertEqual(devices.complete["Event"], "DeviceStateListComplete")  # type: ignore[index]
        # list items never reach the subscriber; the registration events do
        self.assertFalse(any("ActionID" in e for e in self.events))
        self.assertTrue(any(e["Event"] == "ContactStatus" for e in self.events))

    @inlineCallbacks
    def test_extension_state_list_is_collected(self) -> None:
        # No trace has it: the shape is Asterisk 20's documentation of ExtensionStateList / ExtensionStatus.
        server = self.start_server(username="ctid", secret="s3cret")
        hints = [
            [("Event", "ExtensionStatus"), ("Exten", exten), ("Context", "internal"), ("Hint", hint),
             ("Status", status), ("StatusText", text)]
            for exten, hint, status, text in [
                ("1001", "PJSIP/alice&PJSIP/alice-soft", "1", "InUse"),
                ("1002", "PJSIP/bob", "4", "Unavailable"),
            ]
        ]  # fmt: skip
        server.reply_list(
            "ExtensionStateList", hints, "ExtensionStateListComplete", "Extension Statuses will follow"
        )
        client, _ = self.start_client(server)
        yield self.next_login(client)
        states = yield client.send_list_action("ExtensionStateList")
        self.assertEqual(
            [(e["Exten"], e["StatusText"]) for e in states], [("1001", "InUse"), ("1002", "Unavailable")]
        )
        self.assertEqual(states.list_items, 2)
        self.assertEqual(states.complete["Event"], "ExtensionStateListComplete")  # type: ignore[index]
        self.assertFalse(any(e.get("Event") == "ExtensionStatus" for e in self.events))

    @inlineCallbacks
    def test_12_queue_lists_and_call_events(self) -> None:
        client, _ = self.start_client(self.replay_server("12-queue-call"))
        yield self.next_login(client)
        status = yield client.send_list_action("QueueStatus", {"Queue": "support"})
        self.assertEqual([e["Event"] for e in status], ["QueueParams", "QueueMember"])
        self.assertEqual(status.list_items, 2)
        summary = yield client.send_list_action("QueueSummary", {"Queue": "support"})
        self.assertEqual(summary[0]["LoggedIn"], "1")
        yield self.wait_for(lambda: any(e["Event"] == "AgentComplete" for e in self.events), "AgentComplete")
        names = [e["Event"] for e in self.events]
        self.assertLess(names.index("QueueCallerJoin"), names.index("AgentConnect"))

    @inlineCallbacks
    def test_07_call_events_arrive_in_order(self) -> None:
        client, _ = self.start_client(self.replay_server("07-sip-call-answer-hangup"))
        yield self.next_login(client)
        # everything up to the Logoff answer: all but the banner, the Login answer and the Goodbye
        yield self.wait_for(lambda: len(self.events) == 101 - 2, "the call's events")
        self.assertEqual(
            [e["Event"] for e in self.events if e["Event"] in ("DialBegin", "DialEnd")],
            ["DialBegin", "DialEnd"],
        )
        yield client.send_action("Logoff")  # Goodbye, then the server closes; the service reconnects
        yield self.next_login(client)
        self.assertEqual(client.logins, 2)


class Failures(ClientTestCase):
    @inlineCallbacks
    def test_auth_failure_backs_off_then_recovers(self) -> None:
        server = self.start_server(username="ctid", secret="right")
        client, service = self.start_client(server, secret="wrong", backoff_jitter=0.0)
        yield self.wait_for(lambda: len(service.delays) >= 3, "three refused logins")
        self.assertFalse(client.ready)
        self.assertGreaterEqual(min(client.login_failures, server.login_failures), 3)
        self.assertEqual(service.delays[:3], [0.05, 0.1, 0.2])  # grows, never reset by a refused login
        server.secret = "wrong"
        yield self.next_login(client)
        self.assertEqual(service.backoff.attempt, 0)

    @inlineCallbacks
    def test_reconnect_after_drop_relogs_in_and_fails_pending(self) -> None:
        server = self.start_server()
        server.silent.add("status")
        client, service = self.start_client(server)
        yield self.next_login(client)
        pending = client.send_action("Status")
        yield server.wait_for_action("Status")
        relogin = self.next_login(client)
        server.drop_connections()
        with self.assertRaises(AMIConnectionLostError):
            yield pending
        yield relogin
        self.assertEqual((client.logins, server.logins, len(server.connections)), (2, 2, 2))
        pong = yield client.send_action("Ping")
        self.assertEqual(pong["Response"], "Success")
        self.assertEqual(len(service.delays), 1)

    @inlineCallbacks
    def test_connection_refused_retries_until_server_appears(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = AMITestServer()
        client, service = self.start_client(server, port=port, backoff_jitter=0.0)
        yield self.wait_for(lambda: service.attempts >= 3, "reconnect attempts")
        self.assertEqual(service.delays[:2], [0.05, 0.1])
        server.start(port=port)
        self.addCleanup(server.stop)
        yield self.next_login(client)

    @inlineCallbacks
    def test_asterisk_down_is_retried_within_connect_retry_max(self) -> None:
        # An Asterisk restart: the connection drops, then connections are refused for a while. ctid must
        # be back within connect_retry_max of the manager reopening, not after a long backoff.
        server = self.start_server()
        client, service = self.start_client(
            server, backoff_max=30.0, connect_retry_max=0.2, backoff_jitter=0.0
        )
        yield self.next_login(client)
        yield server.stop_listening()
        server.drop_connections()
        yield self.wait_for(lambda: len(service.delays) >= 6, "six reconnect attempts")
        self.assertEqual(service.delays[:6], [0.05, 0.1, 0.2, 0.2, 0.2, 0.2])
        server.start(port=server.port)
        yield self.next_login(client)
        self.assertEqual(client.logins, 2)

    @inlineCallbacks
    def test_timeout_and_late_answer_dropped(self) -> None:
        server = self.start_server()

        def late(conn: Any, msg: dict[str, str]) -> None:
            reactor.callLater(0.3, conn.reply, msg, {"Response": "Success", "Late": "yes"})

        server.handlers["ping"] = late
        client, _ = self.start_client(server)
        yield self.next_login(client)
        with self.assertRaises(AMITimeoutError) as info:
            yield client.send_action("Ping", timeout=0.1)
        self.assertIn("within 0.1 s", str(info.exception))
        yield self.wait_for(lambda: client.late_dropped == 1, "the late answer")
        self.assertEqual(client.pending_count, 0)
        server.handlers.pop("ping")
        pong = yield client.send_action("Ping")
        self.assertNotIn("Late", pong)

    @inlineCallbacks
    def test_keepalive_drops_a_silent_peer(self) -> None:
        server = self.start_server()
        client, _ = self.start_client(server, ping_interval=0.1, action_timeout=0.2)
        yield self.next_login(client)
        server.silent.add("ping")
        relogin = self.next_login(client)
        yield server.wait_for_action("Ping", count=2)
        server.silent.clear()
        yield relogin  # the unanswered Ping dropped the connection; the service reconnected
        self.assertEqual(client.logins, 2)

    @inlineCallbacks
    def test_write_bound_when_asterisk_stops_reading(self) -> None:
        server = self.start_server()
        server.reply_with("UserEvent", {"Response": "Success"})
        client, _ = self.start_client(server, max_queued_bytes=64 * 1024, max_pending_actions=100_000)
        yield self.next_login(client)
        server.pause_reading()
        client._conn.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)  # type: ignore[union-attr]
        payload = "p" * 16_000
        accepted: list[Deferred] = []
        refused = None
        for _ in range(5000):  # kernel buffers + 64 KiB transport buffer + 64 KiB queue, a few MB at most
            d = client.send_action("UserEvent", {"UserEvent": "load", "Data": payload})
            failed: list[Any] = []
            d.addErrback(failed.append)
            if failed:
                refused = failed[0]
                break
            accepted.append(d)
            yield sleep(0)  # let the reactor write, as it would between events
        self.assertIsNotNone(refused, "the write queue never filled")
        self.assertIsInstance(refused.value, AMIBackpressureError)  # type: ignore[union-attr]
        self.assertLessEqual(client.queued_bytes, 64 * 1024)
        self.assertGreater(client.queued_bytes, 64 * 1024 - 16_200)
        server.resume_reading()
        answers = yield Deferred.fromCoroutine(_gather(accepted))
        self.assertTrue(all(a["Response"] == "Success" for a in answers))
        self.assertEqual(len(server.actions_named("UserEvent")), len(accepted))
        self.assertEqual((client.queued_bytes, client.pending_count), (0, 0))

    @inlineCallbacks
    def test_stop_service_closes_and_stops_reconnecting(self) -> None:
        server = self.start_server()
        client, service = self.start_client(server)
        yield self.next_login(client)
        yield service.stopService()
        self.assertEqual(client.state, "disconnected")
        yield sleep(0.3)
        self.assertEqual(len(server.connections), 1)
