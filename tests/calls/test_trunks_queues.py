"""Calls through the SIP trunk and into queues, through our Asterisk, the generated dialplan and agid.

The demo trunk (``demo-provider``, which registers to a provider that does not exist) is pointed at a
provider on 127.0.0.2 with pbx-admin, as an administrator would: no registration, the provider
recognised by its address (``identify``), its SIP port as the trunk's host. The provider that receives
the outcalls lives for the whole module (a provider that answers Asterisk's OPTIONS keeps the trunk
reachable); each incoming call comes from a provider of its own test, with the caller ID it presents.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from harness.admin import LogMark, admin, wait_cli
from harness.cti import CtiClient
from harness.fullpbx import FullPbx
from harness.sipphone import Call, Phone, SipPhones

pytestmark = pytest.mark.calls

PROVIDER = "127.0.0.2"
TRUNK = "demo-provider"
NORMAL_CLEARING = 16
USER_BUSY = 17
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

CUSTOMER = "0612345678"  # an outside caller in no directory
DID_USER = "0123456801"  # demo: user 1001; given a caller-ID name prefix here
DID_LOOKUP = "0123456802"  # demo: user 1002
DID_GROUP_OPEN = "0123456770"  # added here: group demo-sales, schedule always open
DID_QUEUE_OPEN = "0123456771"  # added here: queue demo-support, schedule always open
DID_QUEUE_CLOSED = "0123456772"  # added here: queue demo-support, schedule never open
PREFIX = "VIP "
GROUP_PREFIX = "Sales: "  # DID_GROUP_OPEN's
CLOSED_TARGET = "1006"  # where the closed schedule sends calls
COMPANY_NUMBER = "0123456700"  # the caller ID the national pattern presents
HOTLINE_WAIT = 5  # demo-hotline's max_wait_seconds here (nobody logs in to it)


@dataclass
class Carrier:
    """The provider at the trunk's address, for the whole module."""

    phones: SipPhones
    phone: Phone

    def log_sections(self) -> list[tuple[str, str]]:
        return self.phones.log_sections()


@pytest.fixture(scope="module")
def carrier(pbx: FullPbx, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Carrier]:
    """The provider (tone 2000 Hz, apart from the test phones'), with the PBX routed to it."""
    phones = SipPhones(*pbx.sip, tmp_path_factory.mktemp("carrier"))
    try:
        phone = phones.provider("carrier", address=PROVIDER, tone=2000)
        configure(pbx, phone.address)
        yield Carrier(phones, phone)
    finally:
        phones.close()


def configure(pbx: FullPbx, provider: str) -> None:
    """The trunk, schedules, incalls, outcall pattern and queue setting of these tests, through pbx-admin;
    returns once Asterisk runs with all of them."""
    admin(
        pbx, "trunk", "set", TRUNK, "--register", "no", "--clear-auth",
        "--host", provider, "--identify", f"{PROVIDER}/32",
    )  # fmt: skip
    closed_day = DAYS[(datetime.now(UTC).weekday() + 3) % 7]  # neither today nor tomorrow, anywhere
    admin(pbx, "schedule", "add", "tq-open", "--period", "mon-sun 00:00-24:00", "--closed", "hangup")
    admin(
        pbx, "schedule", "add", "tq-closed", "--period", f"{closed_day} 10:00-11:00",
        "--closed", f"user:{CLOSED_TARGET}",
    )  # fmt: skip
    admin(pbx, "incall", "set", DID_USER, "--callerid-name-prefix", PREFIX)
    admin(
        pbx, "incall", "add", DID_GROUP_OPEN, "group:demo-sales", "--schedule", "tq-open",
        "--callerid-name-prefix", GROUP_PREFIX,
    )  # fmt: skip
    admin(pbx, "incall", "add", DID_QUEUE_OPEN, "queue:demo-support", "--schedule", "tq-open")
    admin(pbx, "incall", "add", DID_QUEUE_CLOSED, "queue:demo-support", "--schedule", "tq-closed")
    admin(pbx, "outcall", "remove-pattern", "demo-national", "_0[1-9]XXXXXXXX")
    admin(
        pbx, "outcall", "add-pattern", "demo-national", "_0[1-9]XXXXXXXX",
        "--strip", "1", "--prefix", "+33", "--callerid", COMPANY_NUMBER,
    )  # fmt: skip
    admin(pbx, "queue", "set", "demo-hotline", "--max-wait-seconds", str(HOTLINE_WAIT))

    # the live changes reach Asterisk (confgend reloads what changed about a second after each event)
    # (Asterisk first qualifies a new contact at a random time within qualify_frequency; until then its
    # status is unknown, which dials like a reachable one)
    contact = rf"Contact:\s+{TRUNK}/sip:{re.escape(provider)}\s+\w+\s+(Avail|NonQual)\b"
    for command, expected, what in (
        (f"pjsip show aor {TRUNK}", contact, f"the trunk's contact sip:{provider}, not unreachable"),
        (f"pjsip show identify {TRUNK}-identify", re.escape(f"{PROVIDER}/32"), "the trunk's identify"),
        (f"dialplan show {DID_QUEUE_CLOSED}@incall", "pbx-schedule", f"incall {DID_QUEUE_CLOSED}"),
        (f"dialplan show {DID_USER}@incall", re.escape(f"({PREFIX},"), f"the prefix of incall {DID_USER}"),
        ("dialplan show outcall", re.escape("+33${EXTEN:1}"), "the national pattern's rewrite"),
        ("dialplan show 701@internal", f"demo-hotline,{HOTLINE_WAIT}\\)", "demo-hotline's maximum wait"),
    ):
        wait_cli(pbx, command, lambda shown, expected=expected: re.search(expected, shown) is not None, what)


# -- incalls -------------------------------------------------------------------------------------------


def test_incall_to_user_shows_the_prefix(
    pbx: FullPbx, phones: SipPhones, carrier: Carrier, cti: Callable[[str], CtiClient]
) -> None:
    callee_user = pbx.user("1001")
    callee = phones.register(callee_user.sip_username, callee_user.sip_secret)
    callee_cti = cti("1001")
    callee_cti.subscribe("calls")
    customer = phones.provider("customer", address=PROVIDER, number=CUSTOMER, display="Jean Client")
    agid = LogMark(pbx, "agid")

    # the provider calls the DID: 1001's phone rings and shows the incall's prefix before the caller's name
    customer.call(DID_USER)
    incoming = callee.wait_ringing()
    assert customer.wait_ringback() in (180, 183)
    shown = incoming.caller_id()
    assert (shown.name, shown.number) == (f"{PREFIX}Jean Client", CUSTOMER)

    # CTI: 1001 sees the call ringing, from the prefixed name
    ringing = callee_cti.wait_for(
        "1001's line ringing",
        lambda m: m["class"] == "call" and line_state(m, callee_user.line) == "Ringing",
    )
    names = {c["callerid_name"] for c in ringing["call"]["channels"] if c["line"] == TRUNK}
    assert names == {f"{PREFIX}Jean Client"}, ringing

    callee.answer()
    customer.wait_confirmed()
    customer.assert_hears(callee)
    callee.assert_hears(customer)

    # 1001 hangs up: the provider gets a BYE with cause 16
    callee.hangup()
    ended = customer.wait_disconnected()
    assert (ended.code, ended.q850) == (200, NORMAL_CLEARING), ended
    callee.wait_disconnected()

    agid.wait(decided("incoming_did", "AGID_DEST_TYPE=user"), "agid's incall decision")


def test_incall_from_a_phonebook_number_shows_its_name(
    pbx: FullPbx, phones: SipPhones, carrier: Carrier
) -> None:
    entry, national = phonebook_entry(pbx)
    number = "+33" + national[1:]  # as many providers send it (E.164); the phonebook has it nationally
    callee_user = pbx.user("1002")
    callee = phones.register(callee_user.sip_username, callee_user.sip_secret)
    customer = phones.provider("known", address=PROVIDER, number=number)  # no name: the provider's usual
    agid = LogMark(pbx, "agid")

    customer.call(DID_LOOKUP)
    incoming = callee.wait_ringing()
    assert customer.wait_ringback() in (180, 183)
    shown = incoming.caller_id()
    assert (shown.name, shown.number) == (entry, number)
    agid.wait(decided("reverse_lookup", "AGID_LOOKUP_SOURCE=phonebook"), "agid's reverse lookup")

    # the caller gives up: the callee's phone stops ringing
    customer.hangup()
    incoming.wait_disconnected()
    customer.wait_disconnected()


def test_incall_to_group_while_open(pbx: FullPbx, phones: SipPhones, carrier: Carrier) -> None:
    entry, number = phonebook_entry(pbx)
    first_user, second_user = pbx.user("1001"), pbx.user("1002")  # both in demo-sales
    first = phones.register(first_user.sip_username, first_user.sip_secret)
    second = phones.register(second_user.sip_username, second_user.sip_secret)
    customer = phones.provider("known", address=PROVIDER, number=number, display="Switchboard")
    agid = LogMark(pbx, "agid")

    # both members' phones ring, showing the incall's prefix before the caller's phonebook name
    customer.call(DID_GROUP_OPEN)
    first_call, second_call = first.wait_ringing(), second.wait_ringing()
    assert customer.wait_ringback() in (180, 183)
    for call in (first_call, second_call):
        shown = call.caller_id()
        assert (shown.name, shown.number) == (f"{GROUP_PREFIX}{entry}", number), call
    agid.wait(decided("reverse_lookup", "AGID_LOOKUP_SOURCE=phonebook"), "agid's reverse lookup")
    agid.wait(decided("check_schedule", "AGID_SCHEDULE_STATE=open"), "agid's schedule decision")
    agid.wait(
        decided("incoming_did", "AGID_DEST_TYPE=group AGID_SCHEDULE_STATE=open"),
        "agid's incall decision",
    )

    # one member answers: the other's phone stops ringing; audio both ways
    second_call.answer()
    customer.wait_confirmed()
    first_call.wait_disconnected()
    customer.assert_hears(second)
    second_call.assert_hears(customer)

    customer.hangup()
    ended = second_call.wait_disconnected()
    assert (ended.code, ended.q850) == (200, NORMAL_CLEARING), ended


def test_incall_while_closed_goes_to_the_closed_destination(
    pbx: FullPbx, phones: SipPhones, carrier: Carrier
) -> None:
    closed_user, member_user = pbx.user(CLOSED_TARGET), pbx.user("1012")  # 1012: a member of demo-support
    closed_phone = phones.register(closed_user.sip_username, closed_user.sip_secret)
    member = phones.register(member_user.sip_username, member_user.sip_secret)
    customer = phones.provider("customer", address=PROVIDER, number=CUSTOMER)
    agid = LogMark(pbx, "agid")

    # the DID's queue is closed: the schedule's closed destination (a user) rings instead
    customer.call(DID_QUEUE_CLOSED)
    incoming = closed_phone.wait_ringing()
    assert customer.wait_ringback() in (180, 183)
    assert incoming.caller_id().number == CUSTOMER
    agid.wait(decided("check_schedule", "AGID_SCHEDULE_STATE=closed"), "agid's schedule decision")

    incoming.answer()
    customer.wait_confirmed()
    customer.assert_hears(closed_phone)
    incoming.assert_hears(customer)
    customer.hangup()
    ended = incoming.wait_disconnected()
    assert (ended.code, ended.q850) == (200, NORMAL_CLEARING), ended

    # the queue was never tried: its member's phone did not ring during the whole call
    assert not [e for e in member.agent.events if e["event"] == "incoming"], member.agent.events


def test_a_call_from_an_unknown_address_rings_nobody(
    pbx: FullPbx, phones: SipPhones, carrier: Carrier
) -> None:
    callee_user = pbx.user("1001")
    callee = phones.register(callee_user.sip_username, callee_user.sip_secret)
    stranger = phones.provider("stranger", address="127.0.0.3", number=CUSTOMER)  # not the trunk's address

    call = stranger.call(DID_USER)
    ended = call.wait_disconnected()
    assert ended.code in (401, 403, 404), ended  # challenged or refused, never put through
    assert call.states() and "CONFIRMED" not in call.states(), call.states()
    assert not [e for e in callee.agent.events if e["event"] == "incoming"], "a stranger's call rang 1001"


# -- outcalls ------------------------------------------------------------------------------------------


def test_outcall_through_the_trunk(pbx: FullPbx, phones: SipPhones, carrier: Carrier) -> None:
    caller_user = pbx.user("1003")
    caller = phones.register(caller_user.sip_username, caller_user.sip_secret)
    provider = carrier.phone
    agid = LogMark(pbx, "agid")

    # 1003 dials a national number: the provider gets it rewritten (0 -> +33) with the company's number
    caller.call("0612345678")
    incoming = provider.wait_ringing()
    request_uri = incoming_event(incoming)["request_uri"]
    assert re.match(r"sip:\+33612345678@", request_uri), request_uri
    shown = incoming.caller_id()
    assert (shown.name, shown.number) == (caller_user.name, COMPANY_NUMBER)
    assert caller.wait_ringback() in (180, 183)
    agid.wait(decided("outgoing_user", "AGID_OUT_ACTION=DIAL", caller_user.line), "agid's outcall decision")

    incoming.answer()
    caller.wait_confirmed()
    caller.assert_hears(provider)
    incoming.assert_hears(caller)

    # the far end hangs up: the caller gets a BYE with cause 16
    incoming.hangup()
    ended = caller.wait_disconnected()
    assert (ended.code, ended.q850) == (200, NORMAL_CLEARING), ended
    incoming.wait_disconnected()


def test_outcall_to_a_busy_number(pbx: FullPbx, phones: SipPhones, carrier: Carrier) -> None:
    caller_user = pbx.user("1007")
    caller = phones.register(caller_user.sip_username, caller_user.sip_secret)

    # the far end rings, says it is busy in early media (183 with its announcement), then refuses: the
    # caller hears the announcement, then gets busy (486)
    call = caller.call("0612345679")
    incoming = carrier.phone.wait_ringing()
    assert caller.wait_ringback() in (180, 183)
    incoming.answer(183)
    caller.agent.wait(
        "early media on the caller's call",
        lambda e: e["event"] == "media" and e["call"] == call.id and e["active"],
        since=call.since,
    )
    call.assert_hears(carrier.phone)
    incoming.hangup(486)
    ended = caller.wait_disconnected()
    assert ended.code == 486 and ended.q850 in (None, USER_BUSY), ended


# -- queues --------------------------------------------------------------------------------------------


def test_queue_with_a_logged_in_agent(
    pbx: FullPbx, phones: SipPhones, carrier: Carrier, cti: Callable[[str], CtiClient]
) -> None:
    exten = agent_exten(pbx, "demo-support")
    agent_user = pbx.user(exten)
    agent = phones.register(agent_user.sip_username, agent_user.sip_secret)
    agent_cti = cti(exten)
    agent_cti.subscribe("queues")
    interface = f"PJSIP/{agent_user.line}"

    # the agent logs in (CTI): its line joins its queue
    assert agent_cti.request("agent_login")["queues"] == ["demo-support"]
    logged_in = True
    try:
        agent_cti.wait_for(
            f"{interface} in demo-support",
            lambda m: m["class"] == "queue_member" and m["interface"] == interface and not m["removed"],
        )
        customer = phones.provider("customer", address=PROVIDER, number=CUSTOMER)
        agid = LogMark(pbx, "agid")

        # the caller is answered and hears music on hold while the agent's phone rings
        customer.call(DID_QUEUE_OPEN)
        customer.wait_confirmed()
        incoming = agent.wait_ringing()
        assert incoming.caller_id().number == CUSTOMER
        waiting = customer.current.listen(1.5)
        assert not waiting.is_silent(), (
            f"the caller hears silence in the queue: {waiting.describe(agent.tone)}"
        )
        assert not waiting.has_tone(agent.tone), waiting.describe(agent.tone)
        agid.wait(decided("incoming_queue", "AGID_QUEUE_ACTION=QUEUE"), "agid's queue decision")

        incoming.answer()
        incoming.wait_confirmed()
        customer.assert_hears(agent)
        incoming.assert_hears(customer)

        customer.hangup()
        ended = incoming.wait_disconnected()
        assert (ended.code, ended.q850) == (200, NORMAL_CLEARING), ended

        # the agent logs out: its line leaves the queue
        agent_cti.request("agent_logout")
        logged_in = False
        agent_cti.wait_for(
            f"{interface} out of demo-support",
            lambda m: m["class"] == "queue_member" and m["interface"] == interface and m["removed"],
        )
    finally:
        if logged_in:
            agent_cti.request("agent_logout")


def test_queue_with_nobody_ends_after_its_maximum_wait(pbx: FullPbx, phones: SipPhones) -> None:
    caller_user = pbx.user("1004")
    caller = phones.register(caller_user.sip_username, caller_user.sip_secret)
    agid = LogMark(pbx, "agid")

    # demo-hotline: its members' phones are not registered; the caller is answered, hears music...
    caller.call("701")
    caller.wait_confirmed()
    answered = time.monotonic()
    waiting = caller.current.listen(1.5)
    assert not waiting.is_silent(), f"the caller hears silence in the queue: {waiting.describe()}"
    agid.wait(decided("incoming_queue", "AGID_QUEUE_ACTION=QUEUE", caller_user.line), "agid's queue decision")

    # ... and the PBX ends the call once the queue's maximum wait is over (cause 16), not later
    ended = caller.wait_disconnected(timeout=HOTLINE_WAIT + 5)
    waited = time.monotonic() - answered
    assert (ended.code, ended.q850) == (200, NORMAL_CLEARING), ended
    assert HOTLINE_WAIT - 1 <= waited <= HOTLINE_WAIT + 3, f"the call ended after {waited:.1f} s"


# -- helpers -------------------------------------------------------------------------------------------


def decided(handler: str, decision: str, endpoint: str = TRUNK) -> str:
    """agid's log line of ``handler``'s ``decision`` for a call from ``endpoint`` (a line, or the trunk)."""
    return rf"channel='PJSIP/{endpoint}-\w+'.*: {handler} OK:[^\n]*\b{re.escape(decision)}\b[^\n]* in \d+ ms$"


def line_state(message: dict, line: str) -> str | None:
    return next((c["state"] for c in message["call"]["channels"] if c["line"] == line), None)


def incoming_event(call: Call) -> dict:
    return next(e for e in call.phone.agent.events[call.since :] if e["event"] == "incoming")


def phonebook_entry(pbx: FullPbx) -> tuple[str, str]:
    """A demo phonebook entry with a national number: its display name and that number as dialled."""
    for entry in admin(pbx, "phonebook", "list", "--limit", "100"):
        for number in entry["numbers"]:
            digits = re.sub(r"\D", "", number["number"])
            if number["number"].startswith("0") and len(digits) == 10:
                return entry["display_name"], digits
    raise AssertionError("the demo phonebook has no national number")


def agent_exten(pbx: FullPbx, queue: str) -> str:
    """The extension of the first demo user who is an agent of ``queue``."""
    users = {u["id"]: u for u in admin(pbx, "user", "list", "--limit", "100")}
    for agent in admin(pbx, "agent", "list"):
        if queue in agent["queues"] and agent["user_id"] in users:
            return users[agent["user_id"]]["extensions"][0].split("@")[0]
    raise AssertionError(f"no demo user is an agent of {queue}")
