"""The call state driven by the real Asterisk 20 recordings, event by event."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctid.state import CallTracker
from testkit.ami.traces import Trace, trace_names

TRACES = Path(__file__).parent / "data" / "asterisk-traces"


def events(name: str) -> list[dict[str, str]]:
    return [m.message for m in Trace.load(TRACES, name).messages if "Event" in m.message]


def replay(name: str, until=None) -> CallTracker:
    tracker = CallTracker()
    for msg in events(name):
        if until is not None and until(msg, tracker):
            break
        tracker.apply(msg)
    return tracker


def bridged_lines(tracker: CallTracker) -> list[set[str]]:
    out = []
    for bridge in tracker.bridges.values():
        out.append({tracker.channels[u].line for u in bridge.channels if u in tracker.channels})
    return out


@pytest.mark.parametrize("name", trace_names(TRACES))
def test_every_trace_ends_with_no_channel_and_no_call(name: str) -> None:
    tracker = replay(name)
    assert tracker.channels == {}
    assert tracker.calls == {}
    assert all(not b.channels for b in tracker.bridges.values())


def test_07_two_channels_in_one_call_while_it_lasts() -> None:
    seen = []

    def watch(msg, tracker):
        if msg["Event"] == "BridgeEnter":
            seen.append({k: len(c.channels) for k, c in tracker.calls.items()})
        return False

    tracker = replay("07-sip-call-answer-hangup", watch)
    assert tracker.calls == {}
    midway = replay("07-sip-call-answer-hangup", lambda m, t: m["Event"] == "HangupRequest")
    assert len(midway.calls) == 1
    (call,) = midway.calls.values()
    assert len(call.channels) == 2
    assert call.lines() == {"1001", "1002"}
    assert bridged_lines(midway) == [{"1001", "1002"}]


def test_07_device_states() -> None:
    tracker = replay("07-sip-call-answer-hangup")
    assert tracker.devices["PJSIP/1001"] == "NOT_INUSE"
    midway = replay("07-sip-call-answer-hangup", lambda m, t: m["Event"] == "HangupRequest")
    assert midway.devices["PJSIP/1002"] == "INUSE"


@pytest.mark.parametrize("name", ["10-sip-blind-transfer", "11-sip-attended-transfer"])
def test_transfer_ends_with_1001_bridged_to_1003(name: str) -> None:
    def before_final_hangup(msg, tracker):
        return msg["Event"] == "HangupRequest" and msg["Channel"].startswith("PJSIP/1001")

    tracker = replay(name, before_final_hangup)
    assert {"1001", "1003"} in bridged_lines(tracker)
    calls = [c for c in tracker.calls.values() if "1001" in c.lines()]
    assert len(calls) == 1
    assert calls[0].lines() == {"1001", "1003"}
    assert calls[0].transfers == 1
    assert "1002" not in {c.line for c in tracker.channels.values()}


def test_attended_transfer_notice_and_call_merge() -> None:
    tracker = replay("11-sip-attended-transfer", lambda m, t: m["Event"] == "MusicOnHoldStop")
    changes = tracker.drain()
    (notice,) = [n for n in changes.notices if n["kind"] == "attended_transfer"]
    assert notice["result"] == "Success"
    assert notice["call_id"] == "1795416663.110"
    target = tracker.channels["1795416666.123"]
    assert target.linkedid == "1795416663.110"


def test_blind_transfer_notice() -> None:
    tracker = replay("10-sip-blind-transfer")
    notices = tracker.drain().notices
    assert [n["kind"] for n in notices] == ["blind_transfer"]
    assert notices[0]["transferee"] == "1795416656.81"


def test_originate_response_notice() -> None:
    tracker = replay("03-originate-local")
    (notice,) = [n for n in tracker.drain().notices if n["kind"] == "originate"]
    assert notice["result"] == "Success"
    assert notice["action_id"] == "ref-2"


def test_12_queue_member_states() -> None:
    tracker = replay("12-queue-call")
    member = tracker.members[("support", "PJSIP/1002")]
    assert member.status == 1
    assert member.paused is False
    assert member.name == "Bob 1002"
    midway = replay("12-queue-call", lambda m, t: m["Event"] == "AgentConnect")
    assert midway.members[("support", "PJSIP/1002")].status == 2


def test_changes_are_coalesced_and_on_dirty_fires_once() -> None:
    fired = []
    tracker = CallTracker(on_dirty=lambda: fired.append(1))
    for msg in events("07-sip-call-answer-hangup"):
        tracker.apply(msg)
    assert fired == [1]
    changes = tracker.drain()
    assert not changes.calls
    assert list(changes.ended) == ["1795416641.58"] or len(changes.ended) == 1
    assert not tracker.drain()


def test_rename_and_local_optimization() -> None:
    tracker = CallTracker()
    base = {"ChannelStateDesc": "Up", "Linkedid": "1.1"}
    tracker.apply({"Event": "Newchannel", "Channel": "Local/a@x-0001;1", "Uniqueid": "1.1", **base})
    tracker.apply({"Event": "Newchannel", "Channel": "Local/a@x-0001;2", "Uniqueid": "1.2", **base})
    tracker.apply({"Event": "Newchannel", "Channel": "PJSIP/1001-01", "Uniqueid": "1.3", **base})
    tracker.apply(
        {"Event": "LocalOptimizationBegin", "LocalOneUniqueid": "1.1", "LocalTwoUniqueid": "1.2", "Id": "1"}
    )
    assert tracker.channels["1.1"].optimizing
    tracker.apply(
        {
            "Event": "LocalOptimizationEnd",
            "LocalOneUniqueid": "1.1",
            "LocalTwoUniqueid": "1.2",
            "Success": "Yes",
        }
    )
    assert not tracker.channels["1.1"].optimizing
    tracker.apply(
        {"Event": "Rename", "Channel": "PJSIP/1001-01", "Newname": "PJSIP/1002-02", "Uniqueid": "1.3"}
    )
    assert tracker.channels["1.3"].line == "1002"
    for uid in ("1.1", "1.2", "1.3"):
        tracker.apply({"Event": "Hangup", "Uniqueid": uid, "Channel": "x"})
    assert tracker.calls == {}


def test_resync_replaces_state_and_reports_ended_calls() -> None:
    tracker = replay("07-sip-call-answer-hangup", lambda m, t: m["Event"] == "HangupRequest")
    tracker.drain()
    tracker.resync(
        channels=[
            {
                "Event": "CoreShowChannel",
                "Channel": "PJSIP/1003-0001",
                "Uniqueid": "9.1",
                "Linkedid": "9.1",
                "ChannelStateDesc": "Up",
                "BridgeId": "b1",
            }
        ],
        devices=[{"Event": "DeviceStateChange", "Device": "PJSIP/1003", "State": "INUSE"}],
        members=[],
    )
    changes = tracker.drain()
    assert len(changes.ended) == 1
    assert list(changes.calls) == ["9.1"]
    assert changes.devices["PJSIP/1003"] == "INUSE"
    assert changes.devices["PJSIP/1001"] == "UNKNOWN"
    assert tracker.bridges["b1"].channels == {"9.1"}


def test_transfer_notices_name_every_party_as_it_was_before_the_transfer() -> None:
    (blind,) = replay("10-sip-blind-transfer").drain().notices
    assert (blind["lines"], blind["exten"]) == ({"1001", "1002"}, "1003")
    notices = replay("11-sip-attended-transfer").drain().notices
    (attended,) = [n for n in notices if n["kind"] == "attended_transfer"]
    assert attended["lines"] == {"1001", "1002", "1003"}


def test_a_transfer_of_unknown_channels_takes_the_call_from_the_event() -> None:
    tracker = CallTracker()
    tracker.apply(
        {
            "Event": "BlindTransfer",
            "Result": "Invalid",
            "TransfererChannel": "PJSIP/1002-00000001",
            "TransfererUniqueid": "9.2",
            "TransfererLinkedid": "9.1",
            "Extension": "1003",
        }
    )
    (notice,) = tracker.drain().notices
    assert (notice["call_id"], notice["result"], notice["lines"]) == ("9.1", "Invalid", {"1002"})
