"""Every database handler over real TCP against a real PostgreSQL, as role pbx_agid."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testkit.agid_db import SUNDAY, Data, call, env_for, populate, servers
from testkit.fastagi import FakeAsterisk, ServerThread
from testkit.pbxdb import PbxDatabase


@pytest.fixture
def data(pbx_db: PbxDatabase) -> Data:
    return populate(pbx_db)


@pytest.fixture
def agid() -> Iterator[Callable[..., ServerThread]]:
    yield from servers()


def run(server: ServerThread, script: str, *args: str, values: dict[str, str] | None = None,
        **env: Any) -> dict[str, str]:  # fmt: skip
    transcript = call(server, env_for(script, *args, **env), values)
    assert transcript.closed_by_server
    variables = transcript.variables()
    assert transcript.status == variables["AGID_STATUS"]
    return variables


# ------------------------------------------------------------------------------------------- incoming_user


def test_incoming_user_dials_every_line(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    server = agid(pbx_db)
    out = run(server, "incoming_user", str(data.alice))
    assert out["AGID_STATUS"] == "OK"
    assert out["AGID_ACTION"] == "DIAL"
    assert out["AGID_DIAL"] == "&".join(f"PJSIP/{name}" for name in data.alice_lines)
    assert out["AGID_RINGTIME"] == "30"
    assert out["AGID_VOICEMAIL"] == "1001@default"
    assert out["AGID_DEGRADED"] == "0"
    assert out["AGID_CAUSE"] == ""
    assert out["GROUP(agid_user)"] == f"u{data.alice}"


def test_a_decision_is_logged_at_info(pbx_db: PbxDatabase, data: Data, agid: Any, caplog) -> None:
    """One line per session at INFO: what was asked, what was decided, how long it took."""
    caplog.set_level("INFO", logger="agid.handler")
    run(agid(pbx_db), "incoming_user", str(data.carol))
    lines = [r.getMessage() for r in caplog.records if r.name == "agid.handler"]
    assert any(
        "incoming_user OK: AGID_ACTION=FORWARD (do not disturb) in " in line and " ms" in line
        for line in lines
    ), lines


def test_incoming_user_decides_in_one_round_trip(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    """Each AGI command is a round trip through Asterisk's channel thread: the dialplan library passes the
    user's calls in progress, and the decision, the call's group and AGID_STATUS go in one MSet."""
    server = agid(pbx_db)
    transcript = call(server, env_for("incoming_user", str(data.alice), "0"))
    assert [c.split(b" ")[:2] for c in transcript.commands] == [[b"EXEC", b"MSet"]]
    assert transcript.variables()["AGID_STATUS"] == "OK"
    assert transcript.variables()["GROUP(agid_user)"] == f"u{data.alice}"
    # without the count (another dialplan), agid asks for it
    transcript = call(server, env_for("incoming_user", str(data.alice)))
    assert [c.split(b" ")[:2] for c in transcript.commands] == [[b"GET", b"FULL"], [b"EXEC", b"MSet"]]


def test_incoming_user_shared_line(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    server = agid(pbx_db)
    out = run(server, "incoming_user?exten=1002&context=internal")
    assert out["AGID_USER_ID"] == str(data.bob)
    # bob's own softphone and the desk phone he shares with alice
    assert sorted(out["AGID_DIAL"].split("&")) == sorted([f"PJSIP/{data.alice_lines[0]}", "PJSIP/bob-soft"])
    assert out["AGID_VOICEMAIL"] == ""


def test_incoming_user_rings_every_contact_of_a_multi_contact_line(
    pbx_db: PbxDatabase, data: Data, agid: Any
) -> None:
    contacts = "PJSIP/bob-soft/sip:bob@192.0.2.10:5060&PJSIP/bob-soft/sip:bob@192.0.2.11:5062;ob"
    out = run(
        agid(pbx_db), "incoming_user", str(data.bob), values={"${PJSIP_DIAL_CONTACTS(bob-soft)}": contacts}
    )
    assert sorted(out["AGID_DIAL"].split("&")) == sorted(
        [f"PJSIP/{data.alice_lines[0]}", *contacts.split("&")]
    )


def test_incoming_user_dnd_goes_to_busy_forward(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    server = agid(pbx_db)
    out = run(server, "incoming_user", str(data.carol))
    assert (out["AGID_ACTION"], out["AGID_FWD_NUMBER"]) == ("FORWARD", "0612345678")
    assert (out["AGID_CAUSE"], out["AGID_VOICEMAIL"]) == ("do not disturb", "1003@default")


def test_incoming_user_unconditional_forward(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    out = run(agid(pbx_db), "incoming_user", str(data.dave))
    assert (out["AGID_ACTION"], out["AGID_FWD_NUMBER"]) == ("FORWARD", "0698765432")
    assert "AGID_DIAL" not in out  # only the variables of the decision taken are set


def test_incoming_user_simultaneous_calls(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    server = agid(pbx_db)
    free = run(server, "incoming_user", str(data.erin), "0")
    assert free["AGID_ACTION"] == "DIAL"
    assert free["AGID_RINGTIME"] == "12"
    assert free["AGID_FWD_NOANSWER"] == "1001"
    busy = run(server, "incoming_user", str(data.erin), "1")
    assert (busy["AGID_ACTION"], busy["AGID_VM_GREETING"]) == ("VOICEMAIL", "b")  # the busy greeting
    assert "AGID_DIAL" not in busy
    assert "simultaneous_calls 1" in busy["AGID_CAUSE"]
    # the count asked from Asterisk when the dialplan does not give it
    group = f"${{GROUP_COUNT(u{data.erin}@agid_user)}}"
    assert run(server, "incoming_user", str(data.erin), values={group: "1"})["AGID_ACTION"] == "VOICEMAIL"
    assert run(server, "incoming_user", str(data.erin), values={group: "0"})["AGID_ACTION"] == "DIAL"


def test_incoming_user_without_line_or_unknown(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    server = agid(pbx_db)
    frank = run(server, "incoming_user", str(data.frank))
    assert (frank["AGID_ACTION"], frank["AGID_CAUSE"]) == ("UNAVAILABLE", "no enabled line")
    nobody = run(server, "incoming_user", "999999")
    assert (nobody["AGID_STATUS"], nobody["AGID_ACTION"]) == ("OK", "UNAVAILABLE")
    assert nobody["AGID_CAUSE"] == "no user 999999"


@pytest.mark.parametrize("arg", ["abc", "1;2", "-1"])
def test_incoming_user_malformed_argument_fails_cleanly(pbx_db: PbxDatabase, agid: Any, arg: str) -> None:
    out = run(agid(pbx_db), "incoming_user", arg)
    assert out == {"AGID_STATUS": "FAILED"}


# ------------------------------------------------------------------------------------------ reverse_lookup


@pytest.mark.parametrize("number", ["0123456789", "+33123456789", "0033 1 23 45 67 89", "33123456789"])
def test_reverse_lookup_phonebook(pbx_db: PbxDatabase, data: Data, agid: Any, number: str) -> None:
    out = run(agid(pbx_db), "reverse_lookup", number)
    assert out["CALLERID(name)"] == "ACME Support"
    assert (out["AGID_LOOKUP_SOURCE"], out["AGID_LOOKUP_NUMBER"]) == ("phonebook", "33123456789")
    assert out["AGID_DEGRADED"] == "0"


def test_reverse_lookup_logs_where_it_found_the_name(
    pbx_db: PbxDatabase, data: Data, agid: Any, caplog
) -> None:
    """The decision's one INFO line says which directory answered (not the name: personal data)."""
    caplog.set_level("INFO", logger="agid.handler")
    run(agid(pbx_db), "reverse_lookup", "0123456789")
    lines = [r.getMessage() for r in caplog.records if r.name == "agid.handler"]
    assert any("reverse_lookup OK: AGID_LOOKUP_SOURCE=phonebook in " in line for line in lines), lines
    assert not any("ACME" in line for line in lines), lines


def test_reverse_lookup_internal_user_from_callerid(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    out = run(agid(pbx_db), "reverse_lookup", callerid="1002")
    assert (out["CALLERID(name)"], out["AGID_LOOKUP_SOURCE"]) == ("Bob", "users")


def test_reverse_lookup_csv_and_unknown(pbx_db: PbxDatabase, data: Data, agid: Any, tmp_path: Any) -> None:
    csv_file = tmp_path / "directory.csv"
    csv_file.write_text("name,number\nBaker Street,+44 20 7946 0958\n")
    server = agid(pbx_db, lookup_csv_files=(str(csv_file),))
    out = run(server, "reverse_lookup", "00442079460958")
    assert (out["CALLERID(name)"], out["AGID_LOOKUP_SOURCE"]) == ("Baker Street", "csv")
    unknown = run(server, "reverse_lookup", "0999999999")
    assert "CALLERID(name)" not in unknown
    assert (unknown["AGID_LOOKUP_NAME"], unknown["AGID_CAUSE"], unknown["AGID_DEGRADED"]) == (
        "",
        "not found",
        "0",
    )
    anonymous = run(server, "reverse_lookup", "anonymous")
    assert anonymous["AGID_CAUSE"] == "no caller number"


def test_reverse_lookup_cache(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    server = agid(pbx_db, lookup_cache_ttl=60.0)
    run(server, "reverse_lookup", "0123456789")
    before = server.context.db.stats["ok"]
    out = run(server, "reverse_lookup", "+33 1 23 45 67 89")
    assert out["CALLERID(name)"] == "ACME Support"
    assert server.context.db.stats["ok"] == before  # served from the cache


@pytest.mark.parametrize(
    ("script", "decision"), [("reverse_lookup", "AGID_LOOKUP_NAME"), ("incoming_user", "AGID_ACTION")]
)
def test_budgets_count_from_the_accept(
    pbx_db: PbxDatabase, data: Data, agid: Any, script: str, decision: str
) -> None:
    """A handler reached after its budget is spent (agid was behind, or the peer took its time) degrades at
    once, without asking the database: the caller has waited since the connect."""
    server = agid(pbx_db, lookup_budget=0.2, db_timeout=0.2)
    arg = "0123456789" if script == "reverse_lookup" else str(data.alice)
    assert run(server, script, arg)["AGID_DEGRADED"] == "0"
    batches = server.context.db.batch_stats["batches"]
    if script == "reverse_lookup":
        arg = "0199999999"  # not in the lookup cache
    late = FakeAsterisk(server.address, timeout=20.0).run(env_for(script, arg), env_delay=0.3)
    out = late.variables()
    assert (out["AGID_STATUS"], out["AGID_DEGRADED"]) == ("OK", "1")
    assert decision in out and "no time left" in out["AGID_CAUSE"]
    assert server.context.db.batch_stats["batches"] == batches


# ------------------------------------------------------------------------------- incoming_did, schedules


def test_incoming_did_exact_with_open_schedule(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    out = run(agid(pbx_db), "incoming_did", "0140000001", "incall")
    assert (out["AGID_DEST_TYPE"], out["AGID_DEST_ARG"]) == ("user", str(data.alice))
    assert out["AGID_SCHEDULE_STATE"] == "open"


def test_incoming_did_closed_schedule(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    out = run(agid(pbx_db, now=SUNDAY), "incoming_did", "0140000001", "incall")
    assert (out["AGID_DEST_TYPE"], out["AGID_DEST_ARG"]) == ("voicemail", "1001@default")
    assert out["AGID_SCHEDULE_STATE"] == "closed"


def test_incoming_did_pattern_number_and_none(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    server = agid(pbx_db)
    queue = run(server, "incoming_did", extension="0140000042", context="incall")
    assert (queue["AGID_DEST_TYPE"], queue["AGID_DEST_ARG"], queue["AGID_CALLERID_PREFIX"]) == (
        "queue",
        "support",
        "SAV",
    )
    # the exact DID wins over the pattern that also matches it
    number = run(server, "incoming_did", "0140000099", "incall")
    assert (number["AGID_DEST_TYPE"], number["AGID_DEST_ARG"]) == ("number", "0611111111")
    none = run(server, "incoming_did", "0299999999", "incall")
    assert none["AGID_DEST_TYPE"] == "none"
    assert none["AGID_CAUSE"] == "no incall for 0299999999 in context incall"
    assert run(server, "incoming_did", "01;evil", "incall") == {"AGID_STATUS": "FAILED"}


def test_check_schedule(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    assert run(agid(pbx_db), "check_schedule", "office")["AGID_SCHEDULE_STATE"] == "open"
    closed = run(agid(pbx_db, now=SUNDAY), "check_schedule", "office")
    assert (closed["AGID_SCHEDULE_STATE"], closed["AGID_DEST_TYPE"]) == ("closed", "voicemail")
    assert run(agid(pbx_db), "check_schedule", "nosuch")["AGID_SCHEDULE_STATE"] == "none"


# ------------------------------------------------------------------------------------------ outgoing_user


def test_outgoing_user_strip_prefix_and_trunk_order(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    out = run(agid(pbx_db), "outgoing_user", "0612345678")
    assert out["AGID_OUT_ACTION"] == "DIAL"
    assert out["AGID_OUT_NUMBER"] == "+33612345678"
    assert out["AGID_OUT_TRUNKS"] == "2"
    assert out["AGID_OUT_TRUNK_1"] == "PJSIP/+33612345678@provider-b"
    assert out["AGID_OUT_TRUNK_2"] == "PJSIP/+33612345678@provider-a"
    assert (out["AGID_RINGTIME"], out["AGID_OUTCALL"], out["AGID_CALLERID_NUM"]) == ("45", "national", "")


def test_outgoing_user_callerid(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    server = agid(pbx_db)
    intl = run(server, "outgoing_user", "0044123456")
    assert (intl["AGID_OUT_NUMBER"], intl["AGID_CALLERID_NUM"]) == ("0044123456", "0140000000")
    emergency = run(server, f"outgoing_user?user={data.alice}", "112")
    assert (emergency["AGID_CALLERID_NUM"], emergency["AGID_CALLERID_NAME"]) == ("1001", "Alice Martin")


def test_outgoing_user_refused_without_route(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    out = run(agid(pbx_db), "outgoing_user", "3615")
    assert (out["AGID_STATUS"], out["AGID_OUT_ACTION"], out["AGID_HANGUPCAUSE"]) == ("OK", "REFUSE", "3")
    assert out["AGID_CAUSE"] == "no outcall pattern of context outcall matches 3615"
    assert out["AGID_OUT_TRUNKS"] == "0"


# ----------------------------------------------------------------------------------------- incoming_queue


def test_incoming_queue(pbx_db: PbxDatabase, data: Data, agid: Any) -> None:
    server = agid(pbx_db)
    out = run(server, "incoming_queue", "support", values={"${QUEUE_WAITING_COUNT(support)}": "1"})
    assert out["AGID_QUEUE_ACTION"] == "QUEUE"
    assert (out["AGID_QUEUE_NAME"], out["AGID_QUEUE_TIMEOUT"], out["AGID_QUEUE_MUSIC"]) == (
        "support",
        "300",
        "calm",
    )
    full = run(
        server, "incoming_queue", str(data.support_queue), values={"${QUEUE_WAITING_COUNT(support)}": "2"}
    )
    assert (full["AGID_QUEUE_ACTION"], full["AGID_QUEUE_NAME"]) == ("FULL", "support")
    assert run(server, "incoming_queue", "nosuch")["AGID_QUEUE_ACTION"] == "NONE"
