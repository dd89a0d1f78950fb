"""Call distribution and incoming routing writers on a real database: destinations, queues, ring groups,
agents, incalls; their events; refusals that name the field; conflicts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from confdb.validation import ValidationError
from confdb.writer import agents, groups, incalls, queues, schedules, users, voicemails
from confdb.writer.destinations import Destination, check_destination, describe, parse_destination
from confdb.writer.errors import Conflict, NotFound
from testkit.pbxdb import PbxCluster, PbxDatabase, create_database, drop_database


@pytest.fixture(scope="module")
def routing_db(pbx_cluster: PbxCluster) -> Iterator[PbxDatabase]:
    """One database for the module: each test works in a transaction that is rolled back."""
    db = create_database(pbx_cluster)
    yield db
    drop_database(db)


@pytest.fixture
def conn(routing_db: PbxDatabase) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(routing_db.dsn()) as connection:
        yield connection
        connection.rollback()


def _keys(conn: psycopg.Connection[Any]) -> list[str]:
    """Routing keys queued since the last call, oldest first; the outbox is emptied."""
    rows = conn.execute("DELETE FROM outbox RETURNING id, routing_key").fetchall()
    return [key for _, key in sorted(rows)]


def _payload(conn: psycopg.Connection[Any], key: str) -> dict[str, Any]:
    row = conn.execute("SELECT payload FROM outbox WHERE routing_key = %s ORDER BY id DESC LIMIT 1", (key,))
    return row.fetchone()[0]["data"]


@pytest.fixture
def alice(conn) -> int:
    user = users.create_user(
        conn,
        users.UserSpec(
            firstname="Alice",
            lastname="Martin",
            exten="1001",
            voicemail=True,
            voicemail_pin="1234",
            cti_login="alice",
            cti_password="alice-secret",
        ),
    )
    _keys(conn)
    return user.id


@pytest.fixture
def bob(conn) -> int:
    user = users.create_user(conn, users.UserSpec(firstname="Bob", exten="1002"))
    _keys(conn)
    return user.id


# -- destinations ----------------------------------------------------------------------------------------


def test_parse_destination_resolves_every_kind(conn, alice: int) -> None:
    sales = groups.create_group(conn, "sales", "Sales")
    support = queues.create_queue(conn, "support", "Support")
    box = conn.execute("SELECT voicemail_id FROM users WHERE id = %s", (alice,)).fetchone()[0]
    assert parse_destination(conn, "user:1001") == Destination("user", alice)
    assert parse_destination(conn, "user:alice") == Destination("user", alice)
    assert parse_destination(conn, f"user:{alice}") == Destination("user", alice)
    assert parse_destination(conn, " group:sales ") == Destination("group", sales)
    assert parse_destination(conn, "queue:support") == Destination("queue", support)
    assert parse_destination(conn, "voicemail:1001") == Destination("voicemail", box)
    assert parse_destination(conn, "voicemail:1001@default") == Destination("voicemail", box)
    assert parse_destination(conn, "number:+33612345678") == Destination("number", number="+33612345678")
    assert parse_destination(conn, "hangup") == Destination("hangup")
    for text in (
        "user:1001",
        "group:sales",
        "queue:support",
        "voicemail:1001",
        "number:+33612345678",
        "hangup",
    ):
        assert describe(conn, parse_destination(conn, text)) == text


def test_extension_wins_over_an_id(conn, alice: int, bob: int) -> None:
    # Bob's extension is the same text as Alice's id: what an administrator types is an extension.
    conn.execute("UPDATE extensions SET exten = %s WHERE user_id = %s", (str(alice), bob))
    assert parse_destination(conn, f"user:{alice}") == Destination("user", bob)


def test_a_mailbox_in_several_contexts_must_be_qualified(conn) -> None:
    sales, _ = voicemails.create_voicemail(conn, mailbox="2001", fullname="Sales", context="sales")
    voicemails.create_voicemail(conn, mailbox="2001", fullname="Support", context="support")
    with pytest.raises(Conflict, match=r"2001@sales, 2001@support"):
        parse_destination(conn, "voicemail:2001")
    assert parse_destination(conn, "voicemail:2001@sales") == Destination("voicemail", sales)
    assert describe(conn, Destination("voicemail", sales)) == "voicemail:2001@sales"


@pytest.mark.parametrize(
    "text", ["user:9999", "group:nobody", "queue:nobody", "voicemail:4242", "voicemail:1001@elsewhere"]
)
def test_parse_destination_names_the_missing_target(conn, alice: int, text: str) -> None:
    with pytest.raises(NotFound, match=text.split(":", 1)[1].split("@")[0]):
        parse_destination(conn, text)


@pytest.mark.parametrize(
    "text", ["", "user", "user:", "fax:1", "number:12a", "number:", "hangup:now", "1001"]
)
def test_parse_destination_refuses_malformed_text(conn, text: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_destination(conn, text, field="incall.destination")
    assert err.value.field == "incall.destination"


@pytest.mark.parametrize(
    "dest",
    [
        Destination("fax", 1),
        Destination("user"),
        Destination("user", 1, "12"),
        Destination("number"),
        Destination("number", 1, "12"),
        Destination("hangup", 1),
        Destination("number", number="12;x"),
    ],
)
def test_check_destination_refuses_bad_shapes(conn, dest: Destination) -> None:
    with pytest.raises(ValidationError) as err:
        check_destination(conn, dest, field="schedule.closed")
    assert err.value.field == "schedule.closed"


def test_check_destination_needs_an_existing_target(conn) -> None:
    with pytest.raises(NotFound, match="queue 42 does not exist"):
        check_destination(conn, Destination("queue", 42))
    assert check_destination(conn, Destination("number", number=" 112 ")) == Destination(
        "number", number="112"
    )


# -- queues ----------------------------------------------------------------------------------------------


def test_queue_life_cycle_with_extension_members_and_events(conn, alice: int, bob: int) -> None:
    agent = agents.create_agent(conn, "8001", "Agent", "Smith")
    _keys(conn)
    qid = queues.create_queue(
        conn,
        "support",
        "Support team",
        strategy="linear",
        member_timeout=20,
        announce_position=True,
        exten="3000",
    )
    assert _keys(conn) == ["queue.created", "extension.created"]
    queues.add_member(conn, "support", user_id=alice, penalty=1)
    queues.add_member(conn, "support", agent_id=agent)
    queues.add_member(conn, "support", user_id=bob)
    assert _keys(conn) == ["queue_member.created"] * 3
    members = queues.list_members(conn, "support")
    assert [(m["kind"], m["number"], m["penalty"], m["position"]) for m in members] == [
        ("user", "1001", 1, 0),
        ("agent", "8001", 0, 1),
        ("user", "1002", 0, 2),
    ]
    assert members[0]["name"] == "Alice Martin" and members[1]["name"] == "Agent Smith"

    queues.update_member(conn, "support", user_id=bob, penalty=5)
    queues.remove_member(conn, "support", agent_id=agent)
    assert _keys(conn) == ["queue_member.updated", "queue_member.deleted"]

    assert queues.update_queue(conn, "support", strategy="rrmemory", weight="10", exten="3001") == [
        "strategy",
        "weight",
        "exten",
    ]
    assert _keys(conn) == ["extension.deleted", "extension.created", "queue.updated"]
    [row] = queues.list_queues(conn)
    assert (row["id"], row["strategy"], row["weight"], row["extensions"], row["members"]) == (
        qid,
        "rrmemory",
        10,
        ["3001@internal"],
        2,
    )
    assert row["announce_position"] is True and row["member_timeout"] == 20

    queues.delete_queue(conn, "support")
    assert _keys(conn) == ["extension.deleted", "queue.deleted"]
    assert queues.list_queues(conn) == []
    assert conn.execute("SELECT count(*) FROM queue_members").fetchone()[0] == 0


def test_queue_update_rename_and_remove_extension(conn) -> None:
    queues.create_queue(conn, "support", "Support", exten="3000")
    queues.update_queue(conn, "support", name="helpdesk", exten=None)
    [row] = queues.list_queues(conn)
    assert row["name"] == "helpdesk" and row["extensions"] == []
    with pytest.raises(NotFound, match="support"):
        queues.update_queue(conn, "support", weight=1)
    assert queues.update_queue(conn, "helpdesk") == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "has space"}, "queue.name"),
        ({"display_name": "bad\nname"}, "queue.display_name"),
        ({"display_name": ""}, "queue.display_name"),
        ({"strategy": "roundrobin"}, "queue.strategy"),
        ({"member_timeout": 0}, "queue.member_timeout"),
        ({"retry_seconds": 601}, "queue.retry_seconds"),
        ({"wrapup_seconds": -1}, "queue.wrapup_seconds"),
        ({"max_waiting": 10001}, "queue.max_waiting"),
        ({"max_wait_seconds": "soon"}, "queue.max_wait_seconds"),
        ({"music_class": "my;class"}, "queue.music_class"),
        ({"announce_position": "maybe"}, "queue.announce_position"),
        ({"weight": 101}, "queue.weight"),
        ({"exten": "_30XX"}, "queue.exten"),
        ({"exten": "30 00"}, "queue.exten"),
    ],
)
def test_queue_refusals_name_the_field(conn, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        queues.create_queue(conn, **({"name": "q", "display_name": "Q"} | changes))
    assert err.value.field == field
    if "exten" not in changes:
        queues.create_queue(conn, "ok", "OK")
        with pytest.raises(ValidationError) as err:
            queues.update_queue(conn, "ok", **changes)
        assert err.value.field == field


def test_queue_conflicts(conn, alice: int) -> None:
    queues.create_queue(conn, "support", "Support", exten="3000")
    with pytest.raises(Conflict, match="queue 'support' already exists"):
        queues.create_queue(conn, "support", "Again")
    with pytest.raises(Conflict, match=r"queue.exten: extension 1001@internal is already used by user 'Ali"):
        queues.create_queue(conn, "other", "Other", exten="1001")
    with pytest.raises(Conflict, match="context 'incall' is of type incall"):
        queues.create_queue(conn, "third", "Third", exten="3003", context="incall")
    queues.add_member(conn, "support", user_id=alice)
    with pytest.raises(Conflict, match="already a member"):
        queues.add_member(conn, "support", user_id=alice)
    with pytest.raises(ValidationError, match="exactly one") as err:
        queues.add_member(conn, "support", user_id=alice, agent_id=1)
    assert err.value.field == "queue_member.user_id"
    with pytest.raises(NotFound, match="agent 77 does not exist"):
        queues.add_member(conn, "support", agent_id=77)
    with pytest.raises(NotFound, match="not a member"):
        queues.remove_member(conn, "support", user_id=alice + 100)
    with pytest.raises(ValidationError) as err:
        queues.add_member(conn, "support", agent_id=1, penalty=100)
    assert err.value.field == "queue_member.penalty"


def test_deleting_a_queue_that_an_incall_reaches_is_a_clear_conflict(conn) -> None:
    qid = queues.create_queue(conn, "support", "Support", exten="3000")
    incalls.create_incall(conn, "0412345678", Destination("queue", qid))
    _keys(conn)
    with pytest.raises(Conflict, match="queue 'support' is the destination of incall 0412345678@incall"):
        queues.delete_queue(conn, "support")
    assert _keys(conn) == [] and queues.list_queues(conn)[0]["extensions"] == ["3000@internal"]  # no change


def test_delete_conflict_from_the_trigger_leaves_the_transaction_usable(conn, monkeypatch) -> None:
    qid = queues.create_queue(conn, "support", "Support", exten="3000")
    incalls.create_incall(conn, "0412345678", Destination("queue", qid))
    _keys(conn)
    # As if the incall had appeared after the pre-check: the trigger refuses, the writer reports a Conflict.
    monkeypatch.setattr("confdb.writer.references.referrers", lambda *args: [])
    with pytest.raises(Conflict, match=r"queue 'support'.*incall 0412345678"):
        queues.delete_queue(conn, "support")
    assert _keys(conn) == [] and queues.list_queues(conn)[0]["extensions"] == ["3000@internal"]


# -- ring groups -----------------------------------------------------------------------------------------


def test_group_life_cycle(conn, alice: int, bob: int) -> None:
    gid = groups.create_group(conn, "sales", "Sales", strategy="linear", ring_seconds=20, exten="2000")
    assert _keys(conn) == ["group.created", "extension.created"]
    groups.add_member(conn, "sales", bob)
    groups.add_member(conn, "sales", alice, position=0, penalty=2)
    assert [(m["exten"], m["position"]) for m in groups.list_members(conn, "sales")] == [
        ("1001", 0),
        ("1002", 0),
    ]
    assert groups.update_member(conn, "sales", alice, position=5) == ["position"]
    assert [m["exten"] for m in groups.list_members(conn, "sales")] == ["1002", "1001"]
    groups.remove_member(conn, "sales", bob)
    assert _keys(conn) == [
        "group_member.created",
        "group_member.created",
        "group_member.updated",
        "group_member.deleted",
    ]
    assert groups.update_group(conn, "sales", ring_in_use="yes", context="internal") == [
        "ring_in_use",
        "exten",
    ]
    assert _keys(conn) == ["group.updated"]  # same extension and context: nothing to move
    [row] = groups.list_groups(conn)
    assert (row["id"], row["ring_in_use"], row["extensions"], row["members"]) == (
        gid,
        True,
        ["2000@internal"],
        1,
    )
    groups.delete_group(conn, "sales")
    assert _keys(conn) == ["extension.deleted", "group.deleted"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"strategy": "fewestcalls"}, "group.strategy"),  # a queue strategy, not a ring group one
        ({"ring_seconds": 4}, "group.ring_seconds"),
        ({"ring_in_use": "sometimes"}, "group.ring_in_use"),
        ({"name": ""}, "group.name"),
        ({"exten": "20a0"}, "group.exten"),
    ],
)
def test_group_refusals_name_the_field(conn, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        groups.create_group(conn, **({"name": "g", "display_name": "G"} | kwargs))
    assert err.value.field == field


def test_group_conflicts_and_schedule_reference(conn, alice: int) -> None:
    gid = groups.create_group(conn, "sales", "Sales")
    with pytest.raises(Conflict, match="ring group 'sales' already exists"):
        groups.create_group(conn, "sales", "Sales")
    groups.add_member(conn, "sales", alice)
    with pytest.raises(Conflict, match="already a member"):
        groups.add_member(conn, "sales", alice)
    with pytest.raises(NotFound, match="user 999 does not exist"):
        groups.add_member(conn, "sales", 999)
    with pytest.raises(ValidationError) as err:
        groups.add_member(conn, "sales", alice, penalty=-1)
    assert err.value.field == "group_member.penalty"
    schedules.create_schedule(conn, "office", closed=Destination("group", gid))
    with pytest.raises(Conflict, match="ring group 'sales' is the destination of schedule office"):
        groups.delete_group(conn, "sales")


# -- agents ----------------------------------------------------------------------------------------------


def test_agent_life_cycle(conn, alice: int) -> None:
    aid = agents.create_agent(
        conn, "8001", "Carol", "Agent", language="fr_FR", wrapup_seconds=10, user_id=alice
    )
    queues.create_queue(conn, "support", "Support")
    queues.add_member(conn, "support", agent_id=aid)
    assert _keys(conn) == ["agent.created", "queue.created", "queue_member.created"]
    assert agents.update_agent(conn, "8001", number="8002", user_id=None) == ["number", "user_id"]
    assert _keys(conn) == ["agent.updated"]
    [row] = agents.list_agents(conn)
    assert (row["number"], row["user_id"], row["language"], row["queues"]) == (
        "8002",
        None,
        "fr_FR",
        ["support"],
    )
    agents.delete_agent(conn, "8002")
    assert _keys(conn) == ["queue_member.deleted", "agent.deleted"]
    assert agents.list_agents(conn) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"number": "80a1"}, "agent.number"),
        ({"number": "+8001"}, "agent.number"),
        ({"firstname": " "}, "agent.firstname"),
        ({"lastname": "x\x1b[2J"}, "agent.lastname"),
        ({"language": "french"}, "agent.language"),
        ({"wrapup_seconds": 3601}, "agent.wrapup_seconds"),
        ({"user_id": "me"}, "agent.user_id"),
    ],
)
def test_agent_refusals_name_the_field(conn, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        agents.create_agent(conn, **({"number": "8001", "firstname": "A"} | kwargs))
    assert err.value.field == field


def test_agent_conflicts(conn, alice: int) -> None:
    agents.create_agent(conn, "8001", "A", user_id=alice)
    with pytest.raises(Conflict, match="agent 8001 already exists"):
        agents.create_agent(conn, "8001", "B")
    with pytest.raises(Conflict, match=f"user {alice} is already agent 8001"):
        agents.create_agent(conn, "8002", "B", user_id=alice)
    with pytest.raises(NotFound, match="user 999"):
        agents.create_agent(conn, "8003", "C", user_id=999)
    with pytest.raises(NotFound, match="agent '8009' does not exist"):
        agents.delete_agent(conn, "8009")
    assert agents.update_agent(conn, "8001", user_id=alice) == ["user_id"]  # its own user: no conflict


# -- incalls ---------------------------------------------------------------------------------------------


def test_incall_life_cycle(conn, alice: int) -> None:
    office = schedules.create_schedule(conn, "office", closed=Destination("number", number="0600000000"))
    _keys(conn)
    iid = incalls.create_incall(
        conn, "0412345678", Destination("user", alice), schedule="office", callerid_name_prefix="SALES "
    )
    assert _keys(conn) == ["incall.created"]
    [row] = incalls.list_incalls(conn)
    assert row == {
        "id": iid,
        "did": "0412345678",
        "context": "incall",
        "schedule": "office",
        "callerid_name_prefix": "SALES ",  # its trailing blank kept: 'SALES Jean Dupont'
        "destination": "user:1001",
    }
    changed = incalls.update_incall(
        conn, "0412345678", new_did="_04123456XX", destination=Destination("hangup"), schedule=None
    )
    assert changed == ["destination", "did", "schedule"]
    assert _keys(conn) == ["incall.updated"]
    [row] = incalls.list_incalls(conn)
    assert (row["did"], row["destination"], row["schedule"]) == ("_04123456XX", "hangup", None)
    assert incalls.update_incall(conn, "_04123456XX") == []
    incalls.delete_incall(conn, "_04123456XX")
    assert _keys(conn) == ["incall.deleted"]
    assert office and incalls.list_incalls(conn) == []


def test_incall_event_payload_names_did_and_changed_fields(conn) -> None:
    iid = incalls.create_incall(conn, "100", Destination("hangup"))
    incalls.update_incall(conn, "100", callerid_name_prefix="VIP")
    assert _payload(conn, "incall.updated") == {
        "id": iid,
        "did": "100",
        "context": "incall",
        "fields": ["callerid_name_prefix"],
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"did": "04 12"}, "incall.did"),
        ({"did": "_04[a]"}, "incall.did"),
        ({"did": "s"}, "incall.did"),
        ({"destination": Destination("number", number="call me")}, "incall.destination"),
        ({"callerid_name_prefix": 'VIP "'}, "incall.callerid_name_prefix"),
        ({"callerid_name_prefix": "x" * 21}, "incall.callerid_name_prefix"),
        ({"context": "in call"}, "incall.context"),
        ({"schedule": "no such"}, "incall.schedule"),
    ],
)
def test_incall_refusals_name_the_field(conn, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        incalls.create_incall(conn, **({"did": "100", "destination": Destination("hangup")} | kwargs))
    assert err.value.field == field


def test_incall_conflicts(conn, alice: int) -> None:
    incalls.create_incall(conn, "0412345678", Destination("user", alice))
    with pytest.raises(Conflict, match="DID 0412345678 in context 'incall' already routes to user:1001"):
        incalls.create_incall(conn, "0412345678", Destination("hangup"))
    with pytest.raises(Conflict, match="context 'internal' is of type internal"):
        incalls.create_incall(conn, "0412345679", Destination("hangup"), context="internal")
    with pytest.raises(NotFound, match="schedule 'office'"):
        incalls.create_incall(conn, "0412345679", Destination("hangup"), schedule="office")
    with pytest.raises(NotFound, match="group 5 does not exist"):
        incalls.create_incall(conn, "0412345679", Destination("group", 5))
    with pytest.raises(NotFound, match="no incall for DID '999'"):
        incalls.delete_incall(conn, "999")
    incalls.create_incall(conn, "0412345679", Destination("hangup"))
    with pytest.raises(Conflict, match="already routes to hangup"):
        incalls.update_incall(conn, "0412345678", new_did="0412345679")


def test_deleting_a_user_who_is_an_incall_destination_is_a_clear_conflict(conn, alice: int) -> None:
    incalls.create_incall(conn, "0412345678", Destination("user", alice))
    with (
        pytest.raises(Conflict, match=f"user {alice} is the destination of incall 0412345678"),
        conn.transaction(),
    ):  # as pbx-admin does: the whole change is undone
        users.delete_user(conn, alice)
    assert conn.execute("SELECT count(*) FROM extensions WHERE user_id = %s", (alice,)).fetchone()[0] == 1
