"""AMIClient driven without a socket: a fake connection and a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from ctid.ami import (
    AMIActionError,
    AMIBackpressureError,
    AMIClient,
    AMIConfig,
    AMIConnectionLostError,
    AMIEncodeError,
    AMIListTooLongError,
    AMINotConnectedError,
    AMIParser,
    AMITimeoutError,
    EventList,
)
from ctid.ami.message import encode_message

BANNER = "Asterisk Call Manager/9.0.0"


class FakeConn:
    """Stands in for AMIProtocol: records writes and closes."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False
        self.aborted = False
        self._parser = AMIParser(expect_banner=False)
        self._seen: list[dict[str, str]] = []

    def write(self, data: bytes) -> None:
        self.written += data
        self._seen += self._parser.feed(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    @property
    def actions(self) -> list[dict[str, str]]:
        return self._seen


def result(d: Deferred) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "Deferred has not fired"
    return out[0]


def unfired(d: Deferred) -> bool:
    out: list[Any] = []
    d.addBoth(lambda r: out.append(r) or r)
    return not out


class Harness:
    def __init__(self, **overrides: Any) -> None:
        settings = {"username": "ctid", "secret": "pw", "ping_interval": 0.0, **overrides}
        self.config = AMIConfig(**settings)
        self.clock = Clock()
        self.events: list[dict[str, str]] = []
        self.client = AMIClient(self.config, on_event=self.events.append, clock=self.clock)
        self.conn = FakeConn()
        self.connected: list[AMIClient] = []
        self.client.add_connected_hook(self.connected.append)

    def deliver(self, *messages: dict[str, str]) -> None:
        for msg in messages:
            self.client.message_received(msg)

    def connect(self) -> None:
        self.client.connection_made(self.conn)  # type: ignore[arg-type]

    def login(self) -> None:
        self.connect()
        self.client.banner_received(BANNER)
        login = self.conn.actions[-1]
        self.deliver(
            {"Response": "Success", "ActionID": login["ActionID"], "Message": "Authentication accepted"}
        )
        assert self.client.ready

    def last_id(self) -> str:
        return self.conn.actions[-1]["ActionID"]

    def lose(self) -> None:
        self.client.connection_lost(Failure(ConnectionDone()))


def test_login_sequence_and_connected_hook() -> None:
    h = Harness(events="call,system")
    h.connect()
    assert h.client.state == "banner" and h.conn.written == b""
    h.client.banner_received(BANNER)
    [login] = h.conn.actions
    assert login["Action"] == "Login"
    assert (login["Username"], login["Secret"], login["Events"]) == ("ctid", "pw", "call,system")
    assert h.client.state == "login" and h.connected == []
    h.deliver({"Response": "Success", "ActionID": login["ActionID"], "Message": "Authentication accepted"})
    assert h.client.ready and h.client.logins == 1
    assert h.connected == [h.client]
    assert h.clock.getDelayedCalls() == []


def test_wrong_banner_aborts() -> None:
    h = Harness()
    h.connect()
    h.client.banner_received("SSH-2.0-OpenSSH_9.2")
    assert h.conn.aborted and h.conn.actions == []


def test_no_banner_times_out() -> None:
    h = Harness(login_timeout=2.0)
    h.connect()
    h.clock.advance(1.9)
    assert not h.conn.aborted
    h.clock.advance(0.2)
    assert h.conn.aborted


def test_login_refused() -> None:
    h = Harness()
    h.connect()
    h.client.banner_received(BANNER)
    h.deliver({"Response": "Error", "ActionID": h.last_id(), "Message": "Authentication failed"})
    assert h.client.login_failures == 1 and h.conn.aborted
    assert not h.client.ready and h.connected == []


def test_login_unanswered_times_out() -> None:
    h = Harness(login_timeout=3.0)
    h.connect()
    h.client.banner_received(BANNER)
    h.clock.advance(3.0)
    assert h.conn.aborted and not h.client.ready


def test_actions_correlate_by_action_id_in_any_order() -> None:
    h = Harness()
    h.login()
    d1 = h.client.send_action("Ping")
    id1 = h.last_id()
    d2 = h.client.send_action("CoreStatus", {"X": "1"})
    id2 = h.last_id()
    assert id1 != id2
    h.deliver({"Response": "Success", "ActionID": id2, "CoreCurrentCalls": "0"})
    assert unfired(d1)
    h.deliver({"Response": "Success", "ActionID": id1, "Ping": "Pong"})
    assert result(d1)["Ping"] == "Pong"
    assert result(d2)["CoreCurrentCalls"] == "0"
    assert h.client.pending_count == 0 and h.clock.getDelayedCalls() == []


def test_error_response_fails_with_action_error() -> None:
    h = Harness()
    h.login()
    d = h.client.send_action("NoSuchAction")
    h.deliver({"Response": "Error", "ActionID": h.last_id(), "Message": "Invalid/unknown command"})
    failure = result(d)
    assert isinstance(failure.value, AMIActionError)
    assert failure.value.response["Message"] == "Invalid/unknown command"


def test_list_action_collects_events_until_complete() -> None:
    h = Harness()
    h.login()
    d = h.client.send_action("DeviceStateList")
    aid = h.last_id()
    h.deliver(
        {
            "Response": "Success",
            "ActionID": aid,
            "EventList": "start",
            "Message": "Device State Changes will follow",
        },
        {"Event": "DeviceStateChange", "ActionID": aid, "Device": "PJSIP/1001", "State": "NOT_INUSE"},
        {"Event": "DeviceStateChange", "Device": "PJSIP/1002", "State": "INUSE"},  # unsolicited, interleaved
        {"Event": "DeviceStateChange", "ActionID": aid, "Device": "PJSIP/1002", "State": "NOT_INUSE"},
    )
    assert unfired(d)
    h.deliver(
        {"Event": "DeviceStateListComplete", "ActionID": aid, "EventList": "Complete", "ListItems": "2"}
    )
    listing = result(d)
    assert isinstance(listing, EventList)
    assert [e["Device"] for e in listing] == ["PJSIP/1001", "PJSIP/1002"]
    assert listing.list_items == 2 and listing.response["EventList"] == "start"
    assert listing.complete is not None and listing.complete["Event"] == "DeviceStateListComplete"
    assert h.events == [{"Event": "DeviceStateChange", "Device": "PJSIP/1002", "State": "INUSE"}]


def test_send_list_action_rejects_a_plain_response() -> None:
    h = Harness()
    h.login()
    d = h.client.send_list_action("Ping")
    h.deliver({"Response": "Success", "ActionID": h.last_id()})
    assert "without an event list" in str(result(d).value)


def test_originate_response_event_goes_to_subscriber() -> None:
    h = Harness()
    h.login()
    d = h.client.send_action("Originate", {"Channel": "Local/wait@local-test", "Async": "true"})
    aid = h.last_id()
    early = {"Event": "OriginateResponse", "ActionID": aid, "Response": "Success", "Reason": "4"}
    h.deliver(early)  # before the response: not part of any answer
    h.deliver({"Response": "Success", "ActionID": aid, "Message": "Originate successfully queued"})
    assert result(d)["Message"] == "Originate successfully queued"
    late = {**early, "Channel": "Local/wait@local-test-00000000;1"}
    h.deliver(late)
    assert h.events == [early, late]


def test_timeout_fails_and_late_answers_are_dropped() -> None:
    h = Harness(action_timeout=5.0)
    h.login()
    d = h.client.send_action("QueueStatus")
    aid = h.last_id()
    quick = h.client.send_action("Ping", timeout=1.0)
    h.clock.advance(1.0)
    assert isinstance(result(quick).value, AMITimeoutError)
    h.clock.advance(3.9)
    assert unfired(d)
    h.clock.advance(0.1)
    error = result(d).value
    assert isinstance(error, AMITimeoutError) and "QueueStatus" in str(error) and error.action_id == aid
    h.deliver(
        {"Response": "Success", "ActionID": aid, "EventList": "start"},
        {"Event": "QueueMember", "ActionID": aid, "Queue": "support"},
        {"Event": "QueueStatusComplete", "ActionID": aid, "EventList": "Complete", "ListItems": "1"},
    )
    assert h.events == [] and h.client.late_dropped == 3
    assert h.clock.getDelayedCalls() == []


def test_not_connected_and_not_logged_in() -> None:
    h = Harness()
    assert isinstance(result(h.client.send_action("Ping")).value, AMINotConnectedError)
    h.connect()
    assert isinstance(result(h.client.send_action("Ping")).value, AMINotConnectedError)


def test_reserved_and_invalid_headers_fail_without_sending() -> None:
    h = Harness()
    h.login()
    before = h.conn.written
    assert isinstance(result(h.client.send_action("Ping", {"ActionID": "mine"})).value, AMIEncodeError)
    assert isinstance(
        result(h.client.send_action("Hangup", {"Channel": "x\r\nAction: Y"})).value, AMIEncodeError
    )
    assert h.conn.written == before and h.client.pending_count == 0


def test_bound_on_pending_actions() -> None:
    h = Harness(max_pending_actions=3)
    h.login()
    ds = [h.client.send_action("Ping") for _ in range(3)]
    refused = h.client.send_action("Ping")
    assert isinstance(result(refused).value, AMIBackpressureError)
    assert all(unfired(d) for d in ds)
    h.lose()
    assert all(isinstance(result(d).value, AMIConnectionLostError) for d in ds)


def test_write_queue_while_transport_is_full() -> None:
    h = Harness(max_queued_bytes=1024)
    h.login()
    sent_before = len(h.conn.actions)
    h.client.writing_paused()
    payload = "x" * 250
    queued = [h.client.send_action("UserEvent", {"UserEvent": "t", "Data": payload}) for _ in range(3)]
    assert len(h.conn.actions) == sent_before  # nothing written while paused
    assert 900 < h.client.queued_bytes <= 1024
    refused = h.client.send_action("UserEvent", {"UserEvent": "t", "Data": payload})
    failure = result(refused)
    assert isinstance(failure.value, AMIBackpressureError) and "write queue full" in str(failure.value)
    queued[1].cancel()  # a cancelled queued action is never written
    assert isinstance(result(queued[1]).value, CancelledError)
    h.client.writing_resumed()
    written = h.conn.actions[sent_before:]
    assert len(written) == 2 and h.client.queued_bytes == 0
    for d, action in zip([queued[0], queued[2]], written, strict=True):
        h.deliver({"Response": "Success", "ActionID": action["ActionID"]})
        assert result(d)["Response"] == "Success"


def test_queued_action_timing_out_is_not_written() -> None:
    h = Harness()
    h.login()
    n = len(h.conn.actions)
    h.client.writing_paused()
    d = h.client.send_action("Ping", timeout=1.0)
    h.clock.advance(1.0)
    assert isinstance(result(d).value, AMITimeoutError)
    h.client.writing_resumed()
    assert len(h.conn.actions) == n and h.client.queued_bytes == 0


def test_disconnect_fails_pending_and_clears_timers() -> None:
    h = Harness(ping_interval=10.0)
    lost: list[Failure] = []
    h.client.add_disconnected_hook(lambda client, reason: lost.append(reason))
    h.login()
    d = h.client.send_action("Ping")
    h.client.writing_paused()
    q = h.client.send_action("Ping")
    h.lose()
    assert isinstance(result(d).value, AMIConnectionLostError)
    assert isinstance(result(q).value, AMIConnectionLostError)
    assert h.clock.getDelayedCalls() == [] and h.client.state == "disconnected" and len(lost) == 1
    assert h.client.queued_bytes == 0
    # a new connection works again
    h.conn = FakeConn()
    h.login()
    assert h.client.logins == 2 and len(h.connected) == 2


def test_cancel_drops_the_late_answer() -> None:
    h = Harness()
    h.login()
    d = h.client.send_action("Status")
    aid = h.last_id()
    d.cancel()
    assert isinstance(result(d).value, CancelledError)
    h.deliver({"Response": "Success", "ActionID": aid, "EventList": "start"})
    assert h.client.late_dropped == 1 and h.clock.getDelayedCalls() == []


def test_list_bound() -> None:
    h = Harness(max_list_items=2)
    h.login()
    d = h.client.send_action("CoreShowChannels")
    aid = h.last_id()
    h.deliver({"Response": "Success", "ActionID": aid, "EventList": "start"})
    for i in range(4):
        h.deliver({"Event": "CoreShowChannel", "ActionID": aid, "Channel": str(i)})
    assert isinstance(result(d).value, AMIListTooLongError)
    h.deliver(
        {"Event": "CoreShowChannelsComplete", "ActionID": aid, "EventList": "Complete", "ListItems": "4"}
    )
    assert h.events == []


def test_keepalive_ping() -> None:
    h = Harness(ping_interval=10.0, action_timeout=2.0)
    h.login()
    n = len(h.conn.actions)
    h.clock.advance(10.0)
    assert h.conn.actions[-1]["Action"] == "Ping" and len(h.conn.actions) == n + 1
    h.deliver({"Response": "Success", "ActionID": h.last_id(), "Ping": "Pong"})
    h.clock.advance(10.0)
    assert len(h.conn.actions) == n + 2 and not h.conn.aborted
    h.clock.advance(2.0)  # unanswered
    assert h.conn.aborted


def test_command_returns_output_text() -> None:
    h = Harness()
    h.login()
    d = h.client.command("core show version")
    assert h.conn.actions[-1]["Command"] == "core show version"
    h.deliver({"Response": "Success", "ActionID": h.last_id(), "Output": "Asterisk 20.20.1\nsecond"})
    assert result(d) == "Asterisk 20.20.1\nsecond"


def test_failing_event_handler_does_not_stop_dispatch() -> None:
    h = Harness()
    seen: list[str] = []

    def handler(msg: dict[str, str]) -> None:
        seen.append(msg["Event"])
        if msg["Event"] == "Boom":
            raise RuntimeError("handler bug")

    h.client.on_event = handler
    h.login()
    h.deliver({"Event": "Boom"}, {"Event": "Next"})
    assert seen == ["Boom", "Next"]


@pytest.mark.parametrize("count", [1, 5])
def test_second_connection_is_refused_while_one_is_active(count: int) -> None:
    h = Harness()
    h.login()
    others = [FakeConn() for _ in range(count)]
    for other in others:
        h.client.connection_made(other)  # type: ignore[arg-type]
    assert all(o.aborted for o in others) and h.client.ready


def test_encoded_login_is_byte_exact_like_the_trace() -> None:
    h = Harness(username="refadmin", secret="refadmin-secret")
    h.connect()
    h.client.banner_received(BANNER)
    aid = h.last_id()
    expected = encode_message(
        {"Action": "Login", "ActionID": aid, "Username": "refadmin", "Secret": "refadmin-secret"}
    )
    assert h.conn.written == expected


def test_remembered_timed_out_ids_are_bounded() -> None:
    h = Harness(max_pending_actions=5000)
    h.login()
    ds = [h.client.send_action("Ping", timeout=1.0) for _ in range(1500)]
    first_id = h.conn.actions[2]["ActionID"]
    h.clock.advance(1.0)
    assert all(isinstance(result(d).value, AMITimeoutError) for d in ds)
    assert len(h.client._dead) == 1024
    h.deliver({"Response": "Success", "ActionID": first_id})  # forgotten: dropped as unmatched, not counted
    h.deliver({"Response": "Success", "ActionID": h.last_id()})
    assert h.client.late_dropped == 1 and h.events == []
