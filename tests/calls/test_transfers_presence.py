"""Presence (BLF on a phone, presence in CTI) and transfers (phone-side and through CTI), with real phones
through our Asterisk, the generated configuration, agid and ctid."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from confdb import events, roles
from harness.cti import CtiClient, Msg
from harness.fullpbx import FullPbx
from harness.pbxstate import Changes, LogMark
from harness.sipphone import Buddy, Call, Phone, SipPhones

pytestmark = pytest.mark.calls

NORMAL_CLEARING = 16


# -- BLF and presence ---------------------------------------------------------------------------------


def test_blf_on_a_subscribed_phone(pbx: FullPbx, phones: SipPhones) -> None:
    """1001 watches 1002's extension (a BLF key): idle, ringing while 1003 calls, in use, idle again."""
    watcher_user, watched_user, caller_user = pbx.user("1001"), pbx.user("1002"), pbx.user("1003")
    watcher = phones.register(watcher_user.sip_username, watcher_user.sip_secret)
    watched = phones.register(watched_user.sip_username, watched_user.sip_secret)
    caller = phones.register(caller_user.sip_username, caller_user.sip_secret)

    # the SUBSCRIBE is accepted (no 489 Bad Event: res_pjsip_exten_state is loaded) and shows 1002 idle
    buddy = watcher.subscribe("1002")
    blf = BlfKey(buddy)
    blf.wait("Ready")
    refused = [
        e for e in watcher.agent.events[buddy.since :] if e["event"] == "buddy" and e["sub_code"] >= 300
    ]
    assert not refused, f"the presence subscription was refused: {refused}"

    # 1003 calls 1002: the key shows it ringing, then on the phone once answered, then idle again
    caller.call("1002")
    watched.wait_ringing()
    blf.wait("Ringing")
    watched.answer()
    caller.wait_confirmed()
    blf.wait("On the phone")
    caller.hangup()
    watched.wait_disconnected()
    blf.wait("Ready")
    assert blf.shown() == ["Ready", "Ringing", "On the phone", "Ready"]


def test_presence_in_cti(pbx: FullPbx, phones: SipPhones, cti: Callable[[str], CtiClient]) -> None:
    """A CTI client sees 1007's phone go available, ringing, in use, on hold (its peer holds), available."""
    caller_user, callee_user = pbx.user("1006"), pbx.user("1007")
    watcher = cti("1001")
    callee_id = cti_user(cti("1007"))["id"]
    wait_presence_known(watcher)
    status = PresenceWatch(watcher, callee_id)

    caller = phones.register(caller_user.sip_username, caller_user.sip_secret)
    callee = phones.register(callee_user.sip_username, callee_user.sip_secret)
    status.wait("available")
    caller.call("1007")
    callee.wait_ringing()
    status.wait("ringing")
    callee.answer()
    caller.wait_confirmed()
    status.wait("in_use")
    caller.current.hold()  # the caller holds: Asterisk marks the held party's line (1007) ONHOLD
    status.wait("on_hold")
    caller.current.unhold()
    status.wait("in_use")
    caller.hangup()
    callee.wait_disconnected()
    status.wait("available")
    assert status.seen() == ["available", "ringing", "in_use", "on_hold", "in_use", "available"]


def wait_presence_known(client: CtiClient, timeout: float = 10.0) -> None:
    """Subscribe to presence until the snapshot knows every user's status (ctid's resync after Asterisk's
    FullyBooted may still be running when the PBX has just started): none may stay `unknown`."""
    deadline = time.monotonic() + timeout
    while True:
        snapshot = client.subscribe("presence")["presence"]
        unknown = [u for u in snapshot if u["status"] == "unknown"]
        if snapshot and not unknown:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"presence still unknown after {timeout:g} s: {unknown or 'no user at all'}")
        time.sleep(0.2)


def dedup(items: list[str]) -> list[str]:
    return [x for i, x in enumerate(items) if i == 0 or items[i - 1] != x]


def cti_user(client: CtiClient) -> dict:
    """The user a CTI session logged in as (its login response)."""
    return next(m["user"] for m in client.messages if m.get("request") == "login")


class PresenceWatch:
    """One user's presence as a CTI client sees it: each wait looks only after the status seen before."""

    def __init__(self, client: CtiClient, user_id: int) -> None:
        self.client = client
        self.user_id = user_id
        self.since = len(client.messages)

    def statuses(self, message: Msg) -> list[str]:
        if message["class"] == "presence":
            return [u["status"] for u in message["users"] if u["user_id"] == self.user_id]
        return []

    def wait(self, status: str, timeout: float = 10.0) -> None:
        found = self.client.wait_for(
            f"user {self.user_id}'s presence {status!r}",
            lambda m: status in self.statuses(m),
            timeout,
            self.since,
        )
        messages = self.client.messages
        self.since = next(i for i in range(len(messages) - 1, -1, -1) if messages[i] is found) + 1

    def seen(self) -> list[str]:
        """Every status the client was sent for the user since the watch began, repeats merged."""
        return dedup([s for m in self.client.messages for s in self.statuses(m)])


class BlfKey:
    """What a BLF key shows, step by step: each wait looks only after the state seen before it."""

    def __init__(self, buddy: Buddy) -> None:
        self.buddy = buddy
        self.start = buddy.since

    def wait(self, text: str, timeout: float = 10.0) -> None:
        event = self.buddy.wait_state(text, timeout)
        events = self.buddy.phone.agent.events
        self.buddy.since = next(i for i in range(len(events) - 1, -1, -1) if events[i] is event) + 1

    def shown(self) -> list[str]:
        """Every state the phone showed since the subscription, repeats merged; pjsua's "?" (the
        subscription accepted, its first NOTIFY not yet arrived) left out."""
        events = self.buddy.phone.agent.events[self.start :]
        states = [e["status"] for e in events if e["event"] == "buddy" and e["uri"] == self.buddy.uri]
        return dedup([s for s in states if s != "?"])


# -- transfers ----------------------------------------------------------------------------------------


class Parties:
    """Three users with a phone and a CTI session subscribed to their calls: A calls B, B transfers."""

    def __init__(
        self, pbx: FullPbx, phones: SipPhones, cti: Callable[[str], CtiClient], *extens: str
    ) -> None:
        self.users = [pbx.user(e) for e in extens]
        self.cti = [cti(e) for e in extens]
        for client in self.cti:
            client.subscribe("calls")
        self.phones = [phones.register(u.sip_username, u.sip_secret) for u in self.users]

    def line(self, n: int) -> str:
        return self.users[n].line

    def a_calls_b(self) -> tuple[Call, Call, str]:
        """A calls B, B answers; A's call, B's call and the CTI call id (A's channel's uniqueid)."""
        a, b = self.phones[0], self.phones[1]
        a_call = a.call(self.users[1].exten)
        b_call = b.wait_ringing()
        b_call.answer()
        a_call.wait_confirmed()
        # a person transfers once the call is through: both channels in one bridge (no REFER before that)
        answered = self.cti[1].wait_for(
            "the call between A and B bridged",
            lambda m: m["class"] == "call" and bridged(m, self.line(0), self.line(1)),
        )
        return a_call, b_call, answered["call"]["call_id"]


def test_blind_transfer_by_the_phone(
    pbx: FullPbx, phones: SipPhones, cti: Callable[[str], CtiClient]
) -> None:
    """A calls B; B's phone transfers A to C (REFER): C rings and answers, A and C talk, B is gone."""
    parties = Parties(pbx, phones, cti, "1001", "1002", "1003")
    a, _, c = parties.phones
    a_call, b_call, call_id = parties.a_calls_b()

    b_call.transfer(parties.users[2].exten)
    c_call = c.wait_ringing()
    assert c_call.caller_id().number == parties.users[0].exten  # C sees who is transferred to it: A
    assert b_call.wait_transfer_status() == 200
    b_call.hangup()  # B's phone hangs up on the final NOTIFY (RFC 5589), as desk phones do
    b_call.wait_disconnected()
    c_call.answer()
    c_call.wait_confirmed()
    a_call.assert_hears(c)
    c_call.assert_hears(a)

    expect_transfer(parties, call_id, "blind_transfer", exten=parties.users[2].exten)
    a_call.hangup()
    c_call.wait_disconnected()


def test_attended_transfer_by_the_phone(
    pbx: FullPbx, phones: SipPhones, cti: Callable[[str], CtiClient]
) -> None:
    """A calls B; B holds A, calls C, C answers, B completes the transfer (REFER/Replaces): A and C talk."""
    parties = Parties(pbx, phones, cti, "1006", "1007", "1008")
    a, b, c = parties.phones
    a_call, b_call, call_id = parties.a_calls_b()

    b_call.hold()
    assert_hears_music(a_call, b)
    consult = b.call(parties.users[2].exten)
    c_call = c.wait_ringing()
    assert c_call.caller_id().number == parties.users[1].exten
    c_call.answer()
    consult.wait_confirmed()
    consult.assert_hears(c)
    b_call.transfer_to(consult)
    assert b_call.wait_transfer_status() == 200
    consult.wait_disconnected()  # Asterisk ends the consultation call, B's phone the held one
    b_call.hangup()
    b_call.wait_disconnected()
    a_call.assert_hears(c)
    c_call.assert_hears(a)

    expect_transfer(parties, call_id, "attended_transfer")
    a_call.hangup()
    c_call.wait_disconnected()


def test_blind_transfer_through_cti(pbx: FullPbx, phones: SipPhones, cti: Callable[[str], CtiClient]) -> None:
    """A calls B; B's CTI client transfers A to C (BlindTransfer): response, transfer event, C rings,
    A and C talk, B's phone is hung up."""
    parties = Parties(pbx, phones, cti, "1011", "1012", "1013")
    a, _, c = parties.phones
    a_call, b_call, call_id = parties.a_calls_b()
    b_cti = parties.cti[1]

    answer = b_cti.request("transfer", call_id=call_id, number=parties.users[2].exten, mode="blind")
    assert answer["call_id"] == call_id, answer
    event = b_cti.wait_for("the transfer event", lambda m: m["class"] == "transfer")
    assert index_of(b_cti.messages, answer) < index_of(b_cti.messages, event), (
        "transfer event before response"
    )
    c_call = c.wait_ringing()
    assert c_call.caller_id().number == parties.users[0].exten  # C sees who is transferred to it: A
    b_call.wait_disconnected()  # Asterisk took B's channel out of the bridge: B's phone gets a BYE
    c_call.answer()
    c_call.wait_confirmed()
    a_call.assert_hears(c)
    c_call.assert_hears(a)

    expect_transfer(parties, call_id, "blind_transfer", exten=parties.users[2].exten)
    a_call.hangup()
    c_call.wait_disconnected()


def test_attended_transfer_through_cti(
    pbx: FullPbx, phones: SipPhones, cti: Callable[[str], CtiClient]
) -> None:
    """A calls B; B's CTI client starts an attended transfer to C (Atxfer): A waits on hold, C rings, B and
    C talk; B hangs up to complete it: A and C talk."""
    parties = Parties(pbx, phones, cti, "1014", "1015", "1016")
    a, b, c = parties.phones
    a_call, b_call, call_id = parties.a_calls_b()
    b_cti = parties.cti[1]

    answer = b_cti.request("transfer", call_id=call_id, number=parties.users[2].exten, mode="attended")
    assert answer["call_id"] == call_id, answer
    c_call = c.wait_ringing()
    assert c_call.caller_id().number == parties.users[1].exten  # C sees who consults it: B
    assert_hears_music(a_call, b)  # A waits on hold
    c_call.answer()
    c_call.wait_confirmed()
    b_call.assert_hears(c)
    c_call.assert_hears(b)
    b_call.hangup()  # completes the transfer
    b_call.wait_disconnected()
    a_call.assert_hears(c)
    c_call.assert_hears(a)

    expect_transfer(parties, call_id, "attended_transfer")
    a_call.hangup()
    c_call.wait_disconnected()


def test_dial_and_hangup_through_cti(
    pbx: FullPbx, phones: SipPhones, cti: Callable[[str], CtiClient]
) -> None:
    """A's CTI client dials B: A's phone rings first, then B's; both talk; A's client hangs the call up."""
    a_user, b_user = pbx.user("1017"), pbx.user("1018")
    a_cti = cti("1017")
    a_cti.subscribe("calls")
    a = phones.register(a_user.sip_username, a_user.sip_secret)
    b = phones.register(b_user.sip_username, b_user.sip_secret)

    call_id = a_cti.request("dial", number="1018")["call_id"]
    a_call = a.wait_ringing()
    assert a_call.caller_id().number == "1018"  # A's phone shows whom it is about to call
    a_call.answer()
    b_call = b.wait_ringing()
    shown = b_call.caller_id()  # the person called sees who calls: A, not the number A dialled
    assert (shown.name, shown.number) == (a_user.name, a_user.exten), shown
    b_call.answer()
    b_call.wait_confirmed()
    result = a_cti.wait_for("the originate result", lambda m: m["class"] == "originate_result")
    assert (result["call_id"], result["result"]) == (call_id, "Success"), result
    a_call.assert_hears(b)
    b_call.assert_hears(a)
    a_cti.wait_for(
        f"call {call_id} bridged",
        lambda m: (
            m["class"] == "call" and m["call"]["call_id"] == call_id and bridged(m, a_user.line, b_user.line)
        ),
    )

    assert a_cti.request("hangup", call_id=call_id)["call_id"] == call_id
    a_ended, b_ended = a_call.wait_disconnected(), b_call.wait_disconnected()
    assert b_ended.q850 == NORMAL_CLEARING, b_ended
    assert a_ended.code == 200, a_ended
    a_cti.wait_for(
        f"the end of call {call_id}",
        lambda m: m["class"] == "call" and m["call"]["call_id"] == call_id and m["ended"],
    )


def expect_transfer(parties: Parties, call_id: str, kind: str, exten: str | None = None) -> None:
    """A and B's CTI clients got a successful ``transfer`` event about A's call, and after it the call
    with C in it, B out of it and its transfer counted."""
    for client in parties.cti[:2]:
        event = client.wait_for(f"a {kind} event", lambda m: m["class"] == "transfer")
        assert (event["call_id"], event["kind"], event["result"]) == (call_id, kind, "Success"), event
        if exten is not None:
            assert event.get("exten") == exten, event
        after = index_of(client.messages, event) + 1
        client.wait_for(
            "the call with C in it after the transfer",
            lambda m: (
                m["class"] == "call"
                and m["call"]["call_id"] == call_id
                and m["call"]["transfers"] >= 1
                and parties.line(2) in line_states(m)
                and parties.line(1) not in line_states(m)
            ),
            since=after,
        )
    parties.cti[2].wait_for(
        "C's client shows the call with A, both talking",
        lambda m: (
            m["class"] == "call"
            and m["call"]["call_id"] == call_id
            and bridged(m, parties.line(0), parties.line(2))
        ),
    )


def bridged(message: Msg, *lines: str) -> bool:
    """The call has a channel of each line, all in the same bridge."""
    bridges = {c["line"]: c["bridge"] for c in message["call"]["channels"]}
    found = {bridges.get(line) for line in lines}
    return len(found) == 1 and None not in found


def line_states(message: Msg) -> dict[str | None, str]:
    return {c["line"]: c["state"] for c in message["call"]["channels"]}


def assert_hears_music(call: Call, other: Phone) -> None:
    """A party on hold hears music (not silence, not the other phone's tone)."""
    audio = call.listen(1.5)
    assert not audio.is_silent() and not audio.has_tone(other.tone), (
        f"{call!r} on hold hears no music: {audio.describe(other.tone)}"
    )


def index_of(items: list, item: object) -> int:
    return next(i for i in range(len(items) - 1, -1, -1) if items[i] is item)


# -- feature codes ------------------------------------------------------------------------------------

# The usual codes, written when the PBX has none for a service (the demo has no feature codes yet, and
# pbx-admin has no command for them: the row and its event are written here as the writer would).
USUAL_CODES = {"voicemail_own": "*98", "voicemail_any": "*99", "dnd_toggle": "*25"}


@pytest.fixture(scope="module")
def feature_codes(pbx: FullPbx) -> dict[str, str]:
    """The feature code of each service of USUAL_CODES in the `services` context, once Asterisk has it."""
    with psycopg.connect(pbx.db.dsn(roles.WRITER)) as conn:
        found = dict(
            conn.execute(
                "SELECT e.service, min(e.exten) FROM extensions e JOIN contexts c ON c.id = e.context_id "
                "WHERE c.name = 'services' AND e.type = 'service' GROUP BY e.service"
            ).fetchall()
        )
        for service, code in USUAL_CODES.items():
            if service not in found:
                add_service(conn, service, code)
                found[service] = code
    codes = {service: found[service] for service in USUAL_CODES}
    waiter = Changes(pbx)
    for code in codes.values():
        waiter.wait_cli(f"dialplan show {code}@services", lambda shown, c=code: f"'{c}' =>" in shown, code)
    return codes  # kept: the module's PBX (and its database) ends with the module


def add_service(conn: psycopg.Connection[Any], service: str, code: str) -> None:
    conn.execute(
        "INSERT INTO extensions (context_id, exten, type, service) "
        "SELECT id, %s, 'service', %s FROM contexts WHERE name = 'services'",
        (code, service),
    )
    events.emit(conn, "extension", "created", context="services", exten=code, service=service)


def test_own_voicemail_code_asks_for_the_password(
    pbx: FullPbx, phones: SipPhones, feature_codes: dict[str, str]
) -> None:
    """The caller's own voicemail code answers and asks for the box's password (not which box); the PIN
    opens the box."""
    user = pbx.user("1003")
    phone = phones.register(user.sip_username, user.sip_secret)
    mark = LogMark.now(pbx)
    call = phone.call(feature_codes["voicemail_own"])
    call.wait_confirmed()
    channel = rf"PJSIP/{user.line}-\w+"
    mark.wait_asterisk(
        rf'VoiceMailMain\("{channel}", "{user.exten}@default"\)', "VoiceMailMain on the own box"
    )
    mark.wait_asterisk(rf"<{channel}> Playing 'vm-password\.", "the password prompt")
    assert "vm-login" not in mark.asterisk(), "the own-voicemail code asked which mailbox"
    call.dtmf(user.voicemail_pin + "#")
    mark.wait_asterisk(rf"<{channel}> Playing 'vm-youhave\.", "the box opened: its messages announced")
    assert "vm-incorrect" not in mark.asterisk(), "the mailbox's PIN was refused"
    call.hangup()
    call.wait_disconnected()


def test_any_voicemail_code_asks_which_mailbox_first(
    pbx: FullPbx, phones: SipPhones, feature_codes: dict[str, str]
) -> None:
    """The "which mailbox" code answers and asks for the mailbox number, then its password; another
    user's box opens with its number and PIN."""
    caller, owner = pbx.user("1004"), pbx.user("1008")
    phone = phones.register(caller.sip_username, caller.sip_secret)
    mark = LogMark.now(pbx)
    call = phone.call(feature_codes["voicemail_any"])
    call.wait_confirmed()
    channel = rf"PJSIP/{caller.line}-\w+"
    mark.wait_asterisk(rf'VoiceMailMain\("{channel}", ""\)', "VoiceMailMain without a mailbox")
    mark.wait_asterisk(rf"<{channel}> Playing 'vm-login\.", "the mailbox prompt")
    call.dtmf(owner.exten + "#")
    mark.wait_asterisk(rf"<{channel}> Playing 'vm-password\.", "the password prompt after the mailbox")
    call.dtmf(owner.voicemail_pin + "#")
    mark.wait_asterisk(rf"<{channel}> Playing 'vm-youhave\.", "the box opened: its messages announced")
    assert "vm-incorrect" not in mark.asterisk(), "the mailbox number or PIN was refused"
    call.hangup()
    call.wait_disconnected()


def test_dnd_code_plays_the_error_tone_while_agid_cannot_write(
    pbx: FullPbx, phones: SipPhones, feature_codes: dict[str, str]
) -> None:
    """agid has no `service` handler (it is read-only: docs/confgend.md, pbx-service): the DND code is
    answered, plays the error tone, and the user's DND is unchanged. The call is not dropped before it."""
    user = pbx.user("1009")
    phone = phones.register(user.sip_username, user.sip_secret)
    dnd_before = user_dnd(pbx, user.exten)
    mark = LogMark.now(pbx)
    call = phone.call(feature_codes["dnd_toggle"])
    call.wait_confirmed()
    channel = rf"PJSIP/{user.line}-\w+"
    mark.wait_asterisk(
        rf'AGI\("{channel}", "agi://[\d.:]+/service,dnd_toggle,', "the service request to agid"
    )
    mark.wait_asterisk(rf"<{channel}> Playing 'beeperr\.", "the error tone")
    mark.wait_agid(rf"channel='{channel}' .*: unknown AGI handler 'service'", "agid refusing the service")
    ended = call.wait_disconnected()
    assert ended.code == 200, ended
    assert user_dnd(pbx, user.exten) == dnd_before, "the DND code changed the user's DND"


def user_dnd(pbx: FullPbx, exten: str) -> bool:
    with psycopg.connect(pbx.db.dsn(roles.WRITER)) as conn:
        row = conn.execute(
            "SELECT u.dnd FROM users u JOIN extensions e ON e.user_id = u.id WHERE e.exten = %s", (exten,)
        ).fetchone()
    assert row is not None, f"no user on {exten}"
    return bool(row[0])
