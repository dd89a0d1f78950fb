"""A user's call features with real phones through our Asterisk, the generated dialplan and agid: busy,
no answer to voicemail and the MWI that follows, do-not-disturb, a line shared by two users, a user with
two lines, a ring group. Forwards are in test_user_forwards.py.

Settings are changed through confdb's writer as pbx-admin changes them (harness.pbxstate), and undone
after each test; what Asterisk ran (the voicemail greeting played) is read from its console log (the
dialplan as it runs), what agid decided from its log.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable, Iterator

import pytest

from harness.cti import CtiClient
from harness.fullpbx import FullPbx
from harness.pbxstate import Changes, LogMark
from harness.sipphone import Call, Phone, SipPhones

pytestmark = pytest.mark.calls

CALLER = "1001"
USER_BUSY = 17  # Q.850
NORMAL_CLEARING = 16
REQUEST_TERMINATED = 487  # a ringing phone's call cancelled: it stops ringing
RING_SECONDS = 5  # the shortest ring time a user may have
MESSAGE_SECONDS = 3  # how long the caller speaks (sends its tone) into a mailbox
SHARED = ("1004", "1005")  # the demo's shared phone: user i % 20 == 5 joins the line of user i - 1
TWO_LINES = "1010"  # user i % 20 == 10 has a second line
SALES = "600"  # demo-sales: ringall, members 1000-1004
SALES_MEMBERS = ("1000", "1001", "1002", "1003", "1004")
NO_MAILBOX = "1013"  # its box is taken away by the no_mailbox fixture


@pytest.fixture
def changes(pbx: FullPbx) -> Iterator[Changes]:
    made = Changes(pbx)
    try:
        yield made
    finally:
        made.undo()


@pytest.fixture(scope="module")
def no_mailbox(pbx: FullPbx) -> Iterator[str]:
    """NO_MAILBOX without a voicemail box (deleted as pbx-admin does, gone from Asterisk) for the module."""
    made = Changes(pbx)
    made.remove_voicemail(NO_MAILBOX)
    try:
        yield NO_MAILBOX
    finally:
        made.undo()


def phone(pbx: FullPbx, phones: SipPhones, exten: str) -> Phone:
    """The registered phone of demo user ``exten`` (its first line)."""
    user = pbx.user(exten)
    return phones.register(user.sip_username, user.sip_secret)


def channel_of(pbx: FullPbx, exten: str) -> str:
    """A regex of the SIP channel of a call placed by ``exten``'s phone."""
    return rf"PJSIP/{pbx.user(exten).line}-\w+"


def assert_not_rung(phone: Phone, since: int) -> None:
    rang = [e for e in phone.agent.events[since:] if e["event"] == "incoming"]
    assert not rang, f"{phone.name} rang, and should not have: {rang}"


def decided(pbx: FullPbx, mark: LogMark, exten: str, decision: str) -> None:
    """agid's incoming_user decision for the call placed by ``exten``'s phone (``decision`` a regex)."""
    mark.wait_agid(
        rf"channel='{channel_of(pbx, exten)}' [^\n]*: incoming_user OK: AGID_ACTION={decision}",
        f"agid's decision {decision} for the call of {exten}",
    )


def hears_something(call: Call) -> None:
    audio = call.listen(1.0)
    assert not audio.is_silent(), f"{call!r} hears silence where a greeting plays: {audio.describe()}"


# -- busy -----------------------------------------------------------------------------------------------


def test_callee_rejects_caller_reaches_the_busy_greeting(pbx: FullPbx, phones: SipPhones) -> None:
    """1002 rejects the call (486): 1002 has a mailbox, so the caller hears its busy greeting."""
    caller, callee = phone(pbx, phones, CALLER), phone(pbx, phones, "1002")
    mark = LogMark.now(pbx)
    caller.call("1002")
    ringing = callee.wait_ringing()
    assert caller.wait_ringback() in (180, 183)
    ringing.hangup(486)
    assert ringing.wait_disconnected().code == 486

    caller.wait_confirmed()  # the mailbox answers
    mark.wait_voicemail(channel_of(pbx, CALLER), "1002@default", "b")
    hears_something(caller.current)
    decided(pbx, mark, CALLER, "DIAL")
    caller.hangup()
    caller.wait_disconnected()


def test_callee_not_registered_caller_reaches_the_unavailable_greeting(
    pbx: FullPbx, phones: SipPhones
) -> None:
    """1009's phone is not registered (CHANUNAVAIL): not busy, unavailable: its unavailable greeting."""
    caller = phone(pbx, phones, CALLER)
    mark = LogMark.now(pbx)
    caller.call("1009")
    caller.wait_confirmed()  # the mailbox answers at once: nothing can ring
    mark.wait_voicemail(channel_of(pbx, CALLER), "1009@default", "u")
    hears_something(caller.current)
    caller.hangup()
    caller.wait_disconnected()


def test_callee_at_its_simultaneous_calls_is_busy(pbx: FullPbx, phones: SipPhones, changes: Changes) -> None:
    """1002 takes one call at a time and is on the phone with 1003: 1001's call does not ring 1002's phone
    and reaches 1002's busy greeting."""
    changes.user("1002", simultaneous_calls=1)
    caller, callee, other = phone(pbx, phones, CALLER), phone(pbx, phones, "1002"), phone(pbx, phones, "1003")
    other.call("1002")
    first = callee.wait_ringing()
    first.answer()
    other.wait_confirmed()

    mark = LogMark.now(pbx)
    since = len(callee.agent.events)
    caller.call("1002")
    caller.wait_confirmed()
    mark.wait_voicemail(channel_of(pbx, CALLER), "1002@default", "b")
    decided(pbx, mark, CALLER, r"VOICEMAIL \(1 calls in progress \(simultaneous_calls 1\)\)")
    assert_not_rung(callee, since)
    hears_something(caller.current)
    caller.hangup()
    caller.wait_disconnected()

    # the first call was never disturbed: both still hear each other
    other.assert_hears(callee)
    first.assert_hears(other)
    other.hangup()
    assert first.wait_disconnected().q850 == NORMAL_CLEARING


def test_callee_without_mailbox_rejects_caller_hears_busy(
    pbx: FullPbx, phones: SipPhones, no_mailbox: str
) -> None:
    caller, callee = phone(pbx, phones, CALLER), phone(pbx, phones, no_mailbox)
    mark = LogMark.now(pbx)
    caller.call(no_mailbox)
    ringing = callee.wait_ringing()
    assert caller.wait_ringback() in (180, 183)
    ringing.hangup(486)

    ended = caller.wait_disconnected()
    assert (ended.code, ended.q850) == (486, USER_BUSY), ended
    decided(pbx, mark, CALLER, "DIAL")
    assert "VoiceMail(" not in mark.asterisk()


# -- no answer, voicemail, MWI --------------------------------------------------------------------------


def test_no_answer_goes_to_voicemail_and_lights_the_mwi(
    pbx: FullPbx, phones: SipPhones, changes: Changes
) -> None:
    """1006's phone rings RING_SECONDS unanswered; the caller gets 1006's unavailable greeting, leaves a
    message, and 1006's phone is told a message waits."""
    callee_exten = "1006"
    changes.user(callee_exten, ring_seconds=RING_SECONDS)
    caller, callee = phone(pbx, phones, CALLER), phone(pbx, phones, callee_exten)
    callee.wait_mwi(False)  # its subscription's first NOTIFY: an empty mailbox

    mark = LogMark.now(pbx)
    caller.call(callee_exten)
    ringing = callee.wait_ringing()
    assert caller.wait_ringback() in (180, 183)
    started = time.monotonic()
    caller.wait_confirmed(RING_SECONDS + 10)
    rang = time.monotonic() - started
    assert rang >= RING_SECONDS - 0.5, f"answered after {rang:.1f} s, before the ring time"
    assert ringing.wait_disconnected().code == REQUEST_TERMINATED  # the phone stops ringing

    channel = channel_of(pbx, CALLER)
    mark.wait_voicemail(channel, f"{callee_exten}@default", "u")
    hears_something(caller.current)
    decided(pbx, mark, CALLER, "DIAL")
    mark.wait_asterisk(r"-- Recording the message", "the beep, then the recording", 30)
    time.sleep(MESSAGE_SECONDS)  # the caller speaks: its phone sends its tone all along
    caller.hangup()
    caller.wait_disconnected()

    waiting = callee.wait_mwi(True)
    assert (waiting["new"], waiting["old"]) == (1, 0), waiting
    message = pbx.asterisk.base_dir / "spool/voicemail/default" / callee_exten / "INBOX/msg0000.txt"
    duration = re.search(r"^duration=(\d+)$", message.read_text(), re.MULTILINE)
    assert duration and int(duration.group(1)) >= MESSAGE_SECONDS - 1, message.read_text()


# -- do not disturb -------------------------------------------------------------------------------------


def test_dnd_caller_reaches_the_busy_greeting(pbx: FullPbx, phones: SipPhones, changes: Changes) -> None:
    changes.user("1007", dnd=True)
    caller, callee = phone(pbx, phones, CALLER), phone(pbx, phones, "1007")
    mark = LogMark.now(pbx)
    caller.call("1007")
    caller.wait_confirmed()
    mark.wait_voicemail(channel_of(pbx, CALLER), "1007@default", "b")
    decided(pbx, mark, CALLER, r"VOICEMAIL \(do not disturb\)")
    hears_something(caller.current)
    assert_not_rung(callee, 0)
    caller.hangup()
    caller.wait_disconnected()


def test_dnd_without_mailbox_caller_hears_busy(
    pbx: FullPbx, phones: SipPhones, changes: Changes, no_mailbox: str
) -> None:
    changes.user(no_mailbox, dnd=True)
    caller, callee = phone(pbx, phones, CALLER), phone(pbx, phones, no_mailbox)
    mark = LogMark.now(pbx)
    caller.call(no_mailbox)
    ended = caller.wait_disconnected()
    assert (ended.code, ended.q850) == (486, USER_BUSY), ended
    decided(pbx, mark, CALLER, r"BUSY \(do not disturb\)")
    assert_not_rung(callee, 0)


# -- lines: shared by two users, two for one user -------------------------------------------------------


def test_a_shared_line_rings_for_each_of_its_users(pbx: FullPbx, phones: SipPhones) -> None:
    first, second = (pbx.user(exten) for exten in SHARED)
    assert first.line == second.line, f"the demo's shared line moved: {first} / {second}"
    caller, shared = phone(pbx, phones, CALLER), phone(pbx, phones, SHARED[0])

    # 1001 calls the first user: the shared phone rings; 1001 gives up
    caller.call(SHARED[0])
    ringing = shared.wait_ringing()
    assert caller.wait_ringback() in (180, 183)
    assert ringing.caller_id().number == CALLER
    caller.hangup()
    assert ringing.wait_disconnected().code == REQUEST_TERMINATED

    # 1001 calls the second user: the same phone rings and takes the call
    caller.call(SHARED[1])
    ringing = shared.wait_ringing()
    assert caller.wait_ringback() in (180, 183)
    ringing.answer()
    caller.wait_confirmed()
    caller.assert_hears(shared)
    shared.assert_hears(caller)
    caller.hangup()
    assert ringing.wait_disconnected().q850 == NORMAL_CLEARING


def credentials(pbx: FullPbx, exten: str) -> list[dict[str, str]]:
    """Every line of a demo user (pbx.user gives the first only), from the demo's credentials file."""
    with pbx.credentials_file.open(newline="") as rows:
        return [row for row in csv.DictReader(rows) if row["exten"] == exten and row["sip_username"]]


def test_a_user_with_two_lines_rings_on_both(pbx: FullPbx, phones: SipPhones) -> None:
    lines = credentials(pbx, TWO_LINES)
    assert len(lines) == 2, f"the demo's user with two lines moved: {lines}"
    caller = phone(pbx, phones, CALLER)
    desk, soft = (phones.register(line["sip_username"], line["sip_secret"]) for line in lines)

    caller.call(TWO_LINES)
    on_desk, on_soft = desk.wait_ringing(), soft.wait_ringing()
    assert caller.wait_ringback() in (180, 183)
    on_soft.answer()
    caller.wait_confirmed()
    assert on_desk.wait_disconnected().code == REQUEST_TERMINATED  # answered elsewhere: it stops ringing
    caller.assert_hears(soft)
    soft.assert_hears(caller)
    caller.hangup()
    assert on_soft.wait_disconnected().q850 == NORMAL_CLEARING


# -- ring group -----------------------------------------------------------------------------------------


def test_a_ring_group_rings_every_member_but_the_caller(
    pbx: FullPbx, phones: SipPhones, cti: Callable[[str], CtiClient]
) -> None:
    members = {exten: phone(pbx, phones, exten) for exten in SALES_MEMBERS}

    # an outsider (1008) calls the group: every member's phone rings; the first to answer takes it
    outsider = phone(pbx, phones, "1008")
    outsider.call(SALES)
    ringing = {exten: p.wait_ringing() for exten, p in members.items()}
    assert outsider.wait_ringback() in (180, 183)
    ringing["1002"].answer()
    outsider.wait_confirmed()
    for exten, call in ringing.items():
        if exten != "1002":
            assert call.wait_disconnected().code == REQUEST_TERMINATED, exten
    outsider.assert_hears(members["1002"])
    members["1002"].assert_hears(outsider)
    outsider.hangup()
    assert ringing["1002"].wait_disconnected().q850 == NORMAL_CLEARING

    # a member (1001) calls its own group: the others ring, its own phone does not
    caller = members[CALLER]
    caller_cti = cti(CALLER)
    caller_cti.subscribe("calls")
    since = len(caller.agent.events)
    caller.call(SALES)
    ringing = {exten: p.wait_ringing() for exten, p in members.items() if exten != CALLER}
    assert caller.wait_ringback() in (180, 183)
    ringing["1003"].answer()
    caller.wait_confirmed()
    for exten, call in ringing.items():
        if exten != "1003":
            assert call.wait_disconnected().code == REQUEST_TERMINATED, exten
    assert_not_rung(caller, since)
    caller.assert_hears(members["1003"])
    members["1003"].assert_hears(caller)

    # CTI shows the call between the caller's line and 1003's, both up
    lines = {pbx.user(CALLER).line, pbx.user("1003").line}
    caller_cti.wait_for(
        f"the group call answered on {pbx.user('1003').line}",
        lambda m: m["class"] == "call" and lines <= up_lines(m),
    )
    caller.hangup()
    assert ringing["1003"].wait_disconnected().q850 == NORMAL_CLEARING


def up_lines(message: dict) -> set[str]:
    return {c["line"] for c in message["call"]["channels"] if c["state"] == "Up"}
