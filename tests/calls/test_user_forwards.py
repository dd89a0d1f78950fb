"""A user's forwards with real phones through our Asterisk, the generated dialplan and agid: unconditional,
on busy and on no answer, each to an internal number (another user's phone rings and answers) and to an
external one (out through the demo trunk, pointed at a provider phone); a forward nobody answers falls back
to the forwarding user's voicemail; a loop of forwards ends in voicemail.

Settings are changed through confdb's writer as pbx-admin changes them (harness.pbxstate), and undone
after each test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from harness.fullpbx import FullPbx
from harness.pbxstate import Changes, LogMark
from harness.ports import free_port
from harness.sipphone import Call, Phone, SipPhones

pytestmark = pytest.mark.calls

CALLER = "1001"
FORWARDER = "1011"  # the user whose calls are forwarded
TARGET = "1012"  # the internal number they go to
EXTERNAL = "0612345678"  # an external number (demo-national: _0[1-9]XXXXXXXX through demo-provider)
TRUNK, OUTCALL = "demo-provider", "demo-national"
PROVIDER_ADDRESS = "127.0.0.2"
RING_SECONDS = 5  # the shortest ring time a user (and an outcall) may have
NORMAL_CLEARING = 16
REQUEST_TERMINATED = 487
MAX_FORWARDS = 5  # extensions.conf's PBX_MAX_FORWARDS


@pytest.fixture
def changes(pbx: FullPbx) -> Iterator[Changes]:
    made = Changes(pbx)
    try:
        yield made
    finally:
        made.undo()


@pytest.fixture(scope="module")
def provider(pbx: FullPbx, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phone]:
    """The far end of the demo trunk for the module: a provider phone on 127.0.0.2, and the trunk pointed
    at it (its host, no registration, its address identified), as an administrator would. It lives as long
    as the module so that the trunk's qualify always finds it reachable."""
    host, port = pbx.sip
    group = SipPhones(host, port, tmp_path_factory.mktemp("provider"))
    made = Changes(pbx)
    try:
        far_end = group.provider(address=PROVIDER_ADDRESS, port=free_port(PROVIDER_ADDRESS, udp=True))
        made.trunk(TRUNK, host=far_end.address, register=False, identify=[PROVIDER_ADDRESS])
        yield far_end
    finally:
        made.undo()
        group.close()


def phone(pbx: FullPbx, phones: SipPhones, exten: str) -> Phone:
    user = pbx.user(exten)
    return phones.register(user.sip_username, user.sip_secret)


def channel_of(pbx: FullPbx, exten: str) -> str:
    return rf"PJSIP/{pbx.user(exten).line}-\w+"


def assert_not_rung(phone: Phone, since: int) -> None:
    rang = [e for e in phone.agent.events[since:] if e["event"] == "incoming"]
    assert not rang, f"{phone.name} rang, and should not have: {rang}"


def request_uri(call: Call) -> str:
    return call.phone.agent.events[call.since]["request_uri"]


def forward(kind: str, number: str) -> dict[str, object]:
    return {f"fwd_{kind}": number, f"fwd_{kind}_enabled": True}


def assert_dialplan_sound(mark: LogMark) -> None:
    """No expression Asterisk could not evaluate: e.g. the loop guard's $[... >= ${PBX_MAX_FORWARDS}] while
    a reload had cleared the globals (the forwards were then followed without a limit)."""
    errors = [line for line in mark.asterisk().splitlines() if "ast_yyerror" in line]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("where", ["internal", "external"])
@pytest.mark.parametrize("kind", ["unconditional", "busy", "noanswer"])
def test_forward(
    kind: str, where: str, pbx: FullPbx, phones: SipPhones, changes: Changes, provider: Phone
) -> None:
    """1001 calls 1011, whose forward of ``kind`` takes the call to 1012's phone or out to the provider:
    it rings there, is answered, and both hear each other."""
    number = TARGET if where == "internal" else EXTERNAL
    changes.user(FORWARDER, ring_seconds=RING_SECONDS, **forward(kind, number))
    caller, forwarder = phone(pbx, phones, CALLER), phone(pbx, phones, FORWARDER)
    target = phone(pbx, phones, TARGET) if where == "internal" else provider

    mark = LogMark.now(pbx)
    caller.call(FORWARDER)
    if kind == "busy":  # 1011 rejects the call
        forwarder.wait_ringing().hangup(486)
    elif kind == "noanswer":  # 1011's phone rings its ring time, then stops
        assert forwarder.wait_ringing().wait_disconnected(RING_SECONDS + 5).code == REQUEST_TERMINATED
    incoming = target.wait_ringing(RING_SECONDS + 5)
    assert caller.wait_ringback() in (180, 183)
    if where == "internal":
        shown = incoming.caller_id()
        assert (shown.name, shown.number) == (pbx.user(CALLER).name, CALLER), shown
    else:
        assert request_uri(incoming).startswith(f"sip:{EXTERNAL}@"), request_uri(incoming)

    incoming.answer()
    caller.wait_confirmed()
    caller.assert_hears(target)
    target.assert_hears(caller)
    caller.hangup()
    ended = incoming.wait_disconnected()
    assert (ended.code, ended.q850) == (200, NORMAL_CLEARING), ended

    first = "FORWARD \\(unconditional forward\\)" if kind == "unconditional" else "DIAL"
    mark.wait_agid(
        rf"channel='{channel_of(pbx, CALLER)}' [^\n]*: incoming_user OK: AGID_ACTION={first}",
        f"agid's decision for 1011 ({kind} forward)",
    )
    forwarded = (
        rf"channel='Local/{TARGET}@\S+' [^\n]*: incoming_user OK: AGID_ACTION=DIAL"
        if where == "internal"
        else rf"channel='Local/{EXTERNAL}@\S+' [^\n]*: outgoing_user OK: AGID_OUT_ACTION=DIAL"
    )
    mark.wait_agid(forwarded, f"agid's decision for the forwarded call to {number}")
    if kind == "unconditional":
        assert_not_rung(forwarder, 0)
    assert_dialplan_sound(mark)


@pytest.mark.parametrize(("refusal", "greeting"), [(486, "b"), (0, "u")], ids=["provider busy", "no answer"])
def test_an_unanswered_forward_falls_back_to_voicemail(
    refusal: int, greeting: str, pbx: FullPbx, phones: SipPhones, changes: Changes, provider: Phone
) -> None:
    """1011 forwards everything out to EXTERNAL, where nobody takes the call (the provider answers busy,
    or lets it ring past the outcall's ring time): the caller reaches 1011's voicemail, never a hangup."""
    changes.user(FORWARDER, **forward("unconditional", EXTERNAL))
    changes.outcall(OUTCALL, ring_seconds=RING_SECONDS)
    caller = phone(pbx, phones, CALLER)

    mark = LogMark.now(pbx)
    caller.call(FORWARDER)
    outside = provider.wait_ringing()
    assert caller.wait_ringback() in (180, 183)
    if refusal:
        outside.hangup(refusal)
    else:
        assert outside.wait_disconnected(RING_SECONDS + 5).code == REQUEST_TERMINATED
    caller.wait_confirmed()
    mark.wait_voicemail(channel_of(pbx, CALLER), f"{FORWARDER}@default", greeting)
    assert_dialplan_sound(mark)
    audio = caller.current.listen(1.0)
    assert not audio.is_silent(), f"the caller hears silence where the greeting plays: {audio.describe()}"
    caller.hangup()
    caller.wait_disconnected()


def test_a_loop_of_forwards_ends_in_voicemail(pbx: FullPbx, phones: SipPhones, changes: Changes) -> None:
    """1011 forwards to 1012, which forwards back to 1011: the call is followed at most MAX_FORWARDS times,
    then a mailbox of the loop answers; neither phone rings, and the call ends when the caller hangs up."""
    changes.user(FORWARDER, **forward("unconditional", TARGET))
    changes.user(TARGET, **forward("unconditional", FORWARDER))
    caller, first, second = (phone(pbx, phones, exten) for exten in (CALLER, FORWARDER, TARGET))

    mark = LogMark.now(pbx)
    caller.call(FORWARDER)
    caller.wait_confirmed()
    found = mark.wait_asterisk(
        rf'VoiceMail\("[^"]+", "(?P<box>({FORWARDER}|{TARGET})@default),u"\)',
        "a mailbox of the loop answering",
    )
    mark.wait_asterisk(r"Playing 'vm-isunavail\.", f"{found['box']}'s greeting")
    audio = caller.current.listen(1.0)
    assert not audio.is_silent(), f"the caller hears silence where the greeting plays: {audio.describe()}"
    forwards = re.findall(r"incoming_user OK: AGID_ACTION=FORWARD", mark.agid())
    assert len(forwards) == MAX_FORWARDS + 1, mark.agid()
    assert_dialplan_sound(mark)
    assert_not_rung(first, 0)
    assert_not_rung(second, 0)

    caller.hangup()
    caller.wait_disconnected()
    changes.wait_cli(
        "core show channels count", lambda shown: "0 active channels" in shown, "no channel left"
    )
