"""An internal call between two demo users, through our Asterisk, the generated dialplan and agid."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from harness.cti import CtiClient
from harness.fullpbx import FullPbx
from harness.sipphone import SipPhones

pytestmark = pytest.mark.calls

CALLER, CALLEE = "1001", "1002"
NORMAL_CLEARING = 16


def test_internal_call(pbx: FullPbx, phones: SipPhones, cti: Callable[[str], CtiClient]) -> None:
    caller_user, callee_user = pbx.user(CALLER), pbx.user(CALLEE)
    caller_cti, callee_cti = cti(CALLER), cti(CALLEE)
    for client in (caller_cti, callee_cti):
        client.subscribe("calls")
    caller = phones.register(caller_user.sip_username, caller_user.sip_secret)
    callee = phones.register(callee_user.sip_username, callee_user.sip_secret)

    # 1001 dials 1002: the callee's phone rings and shows who calls, the caller hears ringback
    caller.call(CALLEE)
    incoming = callee.wait_ringing()
    assert caller.wait_ringback() in (180, 183)
    shown = incoming.caller_id()
    assert (shown.name, shown.number) == (caller_user.name, CALLER)

    # CTI shows the call (its id is the caller's channel's uniqueid) and the callee's phone ringing
    call_id = caller_cti.wait_for("a call event", lambda m: m["class"] == "call")["call"]["call_id"]
    for client in (caller_cti, callee_cti):
        client.wait_for(
            f"{CALLEE} ringing in call {call_id}",
            lambda m: is_call(m, call_id) and line_state(m, callee_user.line) == "Ringing",
        )

    # answered: each side hears the other's tone
    callee.answer()
    caller.wait_confirmed()
    caller.assert_hears(callee)
    callee.assert_hears(caller)

    # the caller hangs up: the callee gets a BYE with cause 16, normal clearing
    caller.hangup()
    ended = callee.wait_disconnected()
    assert (ended.code, ended.q850) == (200, NORMAL_CLEARING), ended
    caller.wait_disconnected()

    # ctid: the call rang, was answered and ended, in that order, on both users' sessions
    for client in (caller_cti, callee_cti):
        client.wait_for(f"the end of call {call_id}", lambda m: is_call(m, call_id) and m["ended"])
        events = [m for m in client.messages if is_call(m, call_id)]
        assert milestones(events, caller_user.line, callee_user.line) == ["ringing", "answered", "ended"], (
            events
        )

    # agid decided incoming_user for that very call (the caller's channel)
    channel = rf"channel='PJSIP/{caller_user.line}-\w+' uniqueid='{re.escape(call_id)}'"
    decided = rf"{channel}: incoming_user OK: AGID_ACTION=DIAL"
    agid_log = pbx.daemon_log("agid")
    assert re.search(decided, agid_log), f"no incoming_user decision for {call_id} in agid's log:\n{agid_log}"


def is_call(message: dict, call_id: str) -> bool:
    return message["class"] == "call" and message["call"]["call_id"] == call_id


def line_state(message: dict, line: str) -> str | None:
    return next((c["state"] for c in message["call"]["channels"] if c["line"] == line), None)


def milestones(events: list[dict], caller_line: str, callee_line: str) -> list[str]:
    """What a person watching a CTI client sees: the callee's phone ringing, both up, the end."""
    seen: list[str] = []
    for event in events:
        states = {c["line"]: c["state"] for c in event["call"]["channels"]}
        if event["ended"]:
            step = "ended"
        elif states.get(callee_line) == "Ringing":
            step = "ringing"
        elif states.get(callee_line) == "Up" and states.get(caller_line) == "Up":
            step = "answered"
        else:
            continue
        if not seen or seen[-1] != step:
            seen.append(step)
    return seen
