"""Trunks, schedules and outcalls on a real database: life cycles, events, refusals naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import time
from typing import Any

import psycopg
import pytest

from confdb.validation import ValidationError
from confdb.writer import incalls, outcalls, schedules, trunks
from confdb.writer.destinations import Destination
from confdb.writer.errors import Conflict, NotFound
from confdb.writer.outcalls import OutcallPattern
from confdb.writer.schedules import Period
from testkit.pbxdb import PbxCluster, PbxDatabase, create_database, drop_database


@pytest.fixture(scope="module")
def routing_db(pbx_cluster: PbxCluster) -> Iterator[PbxDatabase]:
    db = create_database(pbx_cluster)
    yield db
    drop_database(db)


@pytest.fixture
def conn(routing_db: PbxDatabase) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(routing_db.dsn()) as connection:
        yield connection
        connection.rollback()


def _keys(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute("DELETE FROM outbox RETURNING id, routing_key").fetchall()
    return [key for _, key in sorted(rows)]


def _outbox_text(conn: psycopg.Connection[Any]) -> str:
    return " ".join(r[0] for r in conn.execute("SELECT payload::text FROM outbox"))


# -- trunks ----------------------------------------------------------------------------------------------


def test_registering_trunk_life_cycle_never_leaks_the_password(conn) -> None:
    tid = trunks.create_trunk(
        conn,
        "provider",
        "sip.example.com:5060",
        transport="tcp",
        register=True,
        auth_username="0412345678",
        auth_password="s3cr3t!Pass",
        from_user="0412345678",
        codecs=("g722", "alaw"),
    )
    assert "s3cr3t" not in _outbox_text(conn)
    assert _keys(conn) == ["trunk.created"]
    assert trunks.update_trunk(conn, "provider", auth_password="n3w-Pass", enabled="no") == [
        "auth_password",
        "enabled",
    ]
    assert "n3w-Pass" not in _outbox_text(conn)
    assert _keys(conn) == ["trunk.updated"]
    [row] = trunks.list_trunks(conn)
    assert "n3w-Pass" not in str(row)
    assert row | {"id": 0} == {
        "id": 0,
        "name": "provider",
        "host": "sip.example.com:5060",
        "transport": "tcp",
        "context": "incall",
        "codecs": ["g722", "alaw"],
        "register": True,
        "auth_username": "0412345678",
        "has_password": True,
        "from_user": "0412345678",
        "identify": [],
        "enabled": False,
        "outcalls": [],
    }
    trunks.delete_trunk(conn, "provider")
    assert _keys(conn) == ["trunk.deleted"] and tid


def test_identify_trunk_and_switch_to_registration(conn) -> None:
    trunks.create_trunk(conn, "carrier", "192.0.2.10", identify=["192.0.2.10", "198.51.100.0/24"])
    [row] = trunks.list_trunks(conn)
    assert row["identify"] == ["192.0.2.10/32", "198.51.100.0/24"] and row["register"] is False
    # Dropping identify without registering would leave the trunk unmatched.
    with pytest.raises(ValidationError, match="neither registers nor identifies") as err:
        trunks.update_trunk(conn, "carrier", identify=[])
    assert err.value.field == "trunk.identify"
    changed = trunks.update_trunk(
        conn, "carrier", identify=[], register=True, auth_username="me", auth_password="pw-1234"
    )
    assert changed == ["auth_password", "auth_username", "identify_match", "register"]
    [row] = trunks.list_trunks(conn)
    assert (row["identify"], row["register"], row["has_password"]) == ([], True, True)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "trunk.identify"),  # neither registers nor identifies
        ({"register": True}, "trunk.auth_username"),
        ({"register": True, "auth_username": "me"}, "trunk.auth_password"),
        ({"auth_password": "pw", "identify": ["192.0.2.1"]}, "trunk.auth_username"),
        ({"name": "my trunk", "identify": ["192.0.2.1"]}, "trunk.name"),
        ({"host": "sip.example.com;transport=tcp", "identify": ["192.0.2.1"]}, "trunk.host"),
        ({"host": "sip.example.com:99999", "identify": ["192.0.2.1"]}, "trunk.host"),
        ({"host": "bad host", "identify": ["192.0.2.1"]}, "trunk.host"),
        ({"transport": "sctp", "identify": ["192.0.2.1"]}, "trunk.transport"),
        ({"codecs": ("alaw", "mp3"), "identify": ["192.0.2.1"]}, "trunk.codecs"),
        ({"codecs": (), "identify": ["192.0.2.1"]}, "trunk.codecs"),
        ({"identify": ["192.0.2.300"]}, "trunk.identify_match"),
        ({"identify": ["sip.example.com"]}, "trunk.identify_match"),
        ({"from_user": "me@example", "identify": ["192.0.2.1"]}, "trunk.from_user"),
        ({"register": True, "auth_username": "me user", "auth_password": "pw"}, "trunk.auth_username"),
    ],
)
def test_trunk_refusals_name_the_field(conn, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        trunks.create_trunk(conn, **({"name": "t", "host": "sip.example.com"} | kwargs))
    assert err.value.field == field


@pytest.mark.parametrize(
    "secret", ["pass word", "pa;ss", "pa#ss", "pa\\ss", "pa\nss", "pa\x00ss", "p\u2028", "", "x" * 129]
)
def test_trunk_passwords_that_would_break_pjsip_conf_are_refused(conn, secret: str) -> None:
    with pytest.raises(ValidationError) as err:
        trunks.create_trunk(
            conn, "t", "sip.example.com", register=True, auth_username="me", auth_password=secret
        )
    assert err.value.field == "trunk.auth_password"
    assert secret not in str(err.value) or not secret.strip()


def test_trunk_conflicts(conn) -> None:
    trunks.create_trunk(conn, "provider", "sip.example.com", identify=["192.0.2.1"])
    with pytest.raises(Conflict, match="trunk 'provider' already exists"):
        trunks.create_trunk(conn, "provider", "sip.example.net", identify=["192.0.2.2"])
    with pytest.raises(Conflict, match="context 'outcall' is of type outcall, not incall"):
        trunks.create_trunk(conn, "other", "sip.example.net", identify=["192.0.2.2"], context="outcall")
    with pytest.raises(NotFound, match="context 'nowhere'"):
        trunks.create_trunk(conn, "other", "sip.example.net", identify=["192.0.2.2"], context="nowhere")
    with pytest.raises(NotFound, match="trunk 'nope'"):
        trunks.update_trunk(conn, "nope", enabled=False)


def test_deleting_a_trunk_an_outcall_uses_is_refused(conn) -> None:
    trunks.create_trunk(conn, "provider", "sip.example.com", identify=["192.0.2.1"])
    outcalls.create_outcall(conn, "national", trunks=["provider"], patterns=["_0XXXXXXXXX"])
    with pytest.raises(Conflict, match="trunk 'provider' is used by outcall national"):
        trunks.delete_trunk(conn, "provider")
    outcalls.delete_outcall(conn, "national")
    trunks.delete_trunk(conn, "provider")


# -- schedules -------------------------------------------------------------------------------------------


def test_schedule_life_cycle(conn) -> None:
    sid = schedules.create_schedule(
        conn,
        "office",
        timezone="Europe/Paris",
        periods=["mon-fri 09:00-12:00", "mon-fri 14:00-18:00", "sat 09:00-12:00"],
        closed=Destination("number", number="+33612345678"),
    )
    assert _keys(conn) == ["schedule.created"]
    rows = conn.execute(
        "SELECT weekdays, start_time, end_time FROM schedule_periods WHERE schedule_id = %s ORDER BY id",
        (sid,),
    ).fetchall()
    assert rows[0] == ([1, 2, 3, 4, 5], time(9), time(12)) and rows[2] == ([6], time(9), time(12))
    [row] = schedules.list_schedules(conn)
    assert row == {
        "id": sid,
        "name": "office",
        "timezone": "Europe/Paris",
        "incalls": [],
        "periods": ["mon-fri 09:00-12:00", "mon-fri 14:00-18:00", "sat 09:00-12:00"],
        "closed": "number:+33612345678",
    }
    changed = schedules.update_schedule(
        conn,
        "office",
        new_name="hq",
        timezone="UTC",
        closed=Destination("hangup"),
        periods=[Period((7, 1), time(0), schedules.END_OF_DAY)],
    )
    assert changed == ["closed", "name", "periods", "timezone"]
    assert _keys(conn) == ["schedule.updated"]
    [row] = schedules.list_schedules(conn)
    assert (row["name"], row["periods"], row["closed"]) == ("hq", ["mon,sun 00:00-24:00"], "hangup")
    schedules.delete_schedule(conn, "hq")
    assert _keys(conn) == ["schedule.deleted"]
    assert conn.execute("SELECT count(*) FROM schedule_periods").fetchone()[0] == 0


def test_default_schedule_is_office_hours_closed_to_hangup(conn) -> None:
    schedules.create_schedule(conn, "default-hours")
    [row] = schedules.list_schedules(conn)
    assert (row["periods"], row["closed"], row["timezone"]) == (["mon-fri 09:00-18:00"], "hangup", "UTC")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "office hours"}, "schedule.name"),
        ({"timezone": "Mars/Olympus"}, "schedule.timezone"),
        ({"timezone": "../../etc/passwd"}, "schedule.timezone"),
        ({"periods": []}, "schedule.periods"),
        ({"periods": ["mon-fri 18:00-09:00"]}, "schedule.periods"),
        ({"periods": ["funday 09:00-18:00"]}, "schedule.periods"),
        ({"periods": ["mon-fri 9h-18h"]}, "schedule.periods"),
        ({"periods": ["mon-fri 09:00-24:30"]}, "schedule.periods"),
        ({"periods": [Period((0,), time(9), time(10))]}, "schedule.periods"),
        ({"periods": [Period((), time(9), time(10))]}, "schedule.periods"),
        ({"closed": Destination("number")}, "schedule.closed"),
        ({"closed": "hangup"}, "schedule.closed"),
    ],
)
def test_schedule_refusals_name_the_field(conn, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        schedules.create_schedule(conn, **({"name": "office"} | kwargs))
    assert err.value.field == field


def test_schedule_conflicts(conn) -> None:
    schedules.create_schedule(conn, "office")
    with pytest.raises(Conflict, match="schedule 'office' already exists"):
        schedules.create_schedule(conn, "office")
    with pytest.raises(NotFound, match="user 4242 does not exist"):
        schedules.create_schedule(conn, "other", closed=Destination("user", 4242))
    incalls.create_incall(conn, "100", Destination("hangup"), schedule="office")
    # Deleting it would silently make the incall always open.
    with pytest.raises(Conflict, match="schedule 'office' is used by incall 100@incall"):
        schedules.delete_schedule(conn, "office")
    with pytest.raises(NotFound, match="schedule 'nope'"):
        schedules.update_schedule(conn, "nope", timezone="UTC")


# -- outcalls --------------------------------------------------------------------------------------------


@pytest.fixture
def two_trunks(conn) -> None:
    trunks.create_trunk(conn, "main", "sip.example.com", identify=["192.0.2.1"])
    trunks.create_trunk(conn, "backup", "sip.example.net", identify=["192.0.2.2"])
    _keys(conn)


@pytest.mark.usefixtures("two_trunks")
def test_outcall_life_cycle(conn) -> None:
    oid = outcalls.create_outcall(
        conn,
        "national",
        trunks=["main", "backup"],
        ring_seconds=45,
        internal_callerid=True,
        patterns=[
            OutcallPattern("_0XXXXXXXXX", strip=1, prefix="+33"),
            "_00. strip=2 prefix=+ callerid=0412345678",
        ],
    )
    assert _keys(conn) == ["outcall.created", "outcall_pattern.created", "outcall_pattern.created"]
    [row] = outcalls.list_outcalls(conn)
    assert row == {
        "id": oid,
        "name": "national",
        "context": "outcall",
        "internal_callerid": True,
        "ring_seconds": 45,
        "trunks": ["main", "backup"],
        "patterns": [
            {"pattern": "_00.", "strip": 2, "prefix": "+", "callerid": "0412345678"},
            {"pattern": "_0XXXXXXXXX", "strip": 1, "prefix": "+33", "callerid": None},
        ],
    }
    outcalls.set_trunks(conn, "national", ["backup", "main"])
    outcalls.add_pattern(conn, "national", OutcallPattern("112"))
    outcalls.remove_pattern(conn, "national", "_00.")
    assert outcalls.update_outcall(conn, "national", new_name="france", ring_seconds=30) == [
        "name",
        "ring_seconds",
    ]
    assert _keys(conn) == [
        "outcall.updated",
        "outcall_pattern.created",
        "outcall_pattern.deleted",
        "outcall.updated",
    ]
    [row] = outcalls.list_outcalls(conn)
    assert (row["name"], row["trunks"], row["patterns"]) == (
        "france",
        ["backup", "main"],
        [
            {"pattern": "112", "strip": 0, "prefix": "", "callerid": None},
            {"pattern": "_0XXXXXXXXX", "strip": 1, "prefix": "+33", "callerid": None},
        ],
    )
    assert [t["outcalls"] for t in trunks.list_trunks(conn)] == [["france"], ["france"]]
    outcalls.delete_outcall(conn, "france")
    assert _keys(conn) == ["outcall.deleted"]
    assert conn.execute("SELECT count(*) FROM outcall_patterns").fetchone()[0] == 0
    assert len(trunks.list_trunks(conn)) == 2  # the trunks stay


@pytest.mark.usefixtures("two_trunks")
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "a/b"}, "outcall.name"),
        ({"trunks": []}, "outcall.trunks"),
        ({"trunks": ["main", "main"]}, "outcall.trunks"),
        ({"ring_seconds": 601}, "outcall.ring_seconds"),
        ({"internal_callerid": "perhaps"}, "outcall.internal_callerid"),
        ({"patterns": ["_0[a-z]."]}, "outcall_pattern.pattern"),
        ({"patterns": ["_0.X"]}, "outcall_pattern.pattern"),
        ({"patterns": ["_0X,1"]}, "outcall_pattern.pattern"),
        ({"patterns": ["_0X", "_0X strip=1"]}, "outcall_pattern.pattern"),
        ({"patterns": ["_0XX strip=4"]}, "outcall_pattern.strip"),
        ({"patterns": ["_0XX strip=-1"]}, "outcall_pattern.strip"),
        ({"patterns": ["_0XX prefix=00;1"]}, "outcall_pattern.prefix"),
        ({"patterns": ["_0XX callerid=anonymous"]}, "outcall_pattern.callerid"),
        ({"patterns": ["_0XX colour=blue"]}, "outcall_pattern.options"),  # never the user's own text
        ({"patterns": [OutcallPattern("_0XX", strip=True)]}, "outcall_pattern.strip"),
    ],
)
def test_outcall_refusals_name_the_field(conn, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        outcalls.create_outcall(conn, **({"name": "national", "trunks": ["main"]} | kwargs))
    assert err.value.field == field


@pytest.mark.usefixtures("two_trunks")
def test_outcall_conflicts(conn) -> None:
    outcalls.create_outcall(conn, "national", trunks=["main"], patterns=["_0XXXXXXXXX"])
    with pytest.raises(Conflict, match="outcall 'national' already exists"):
        outcalls.create_outcall(conn, "national", trunks=["main"])
    with pytest.raises(Conflict, match="pattern _0XXXXXXXXX is already dialled by outcall 'national'"):
        outcalls.create_outcall(conn, "copy", trunks=["backup"], patterns=["_0XXXXXXXXX strip=1"])
    with pytest.raises(Conflict, match="already dialled by this outcall"):
        outcalls.add_pattern(conn, "national", "_0XXXXXXXXX")
    with pytest.raises(NotFound, match="trunk 'ghost' does not exist"):
        outcalls.set_trunks(conn, "national", ["main", "ghost"])
    with pytest.raises(Conflict, match="context 'internal' is of type internal, not outcall"):
        outcalls.create_outcall(conn, "inside", trunks=["main"], context="internal")
    with pytest.raises(NotFound, match=r"has no pattern _9\."):
        outcalls.remove_pattern(conn, "national", "_9.")
    with pytest.raises(NotFound, match="outcall 'nope'"):
        outcalls.delete_outcall(conn, "nope")


def test_min_digits() -> None:
    assert outcalls.min_digits("112") == 3
    assert outcalls.min_digits("_0XXXXXXXXX") == 10
    assert outcalls.min_digits("_00.") == 3
    assert outcalls.min_digits("_[1-5]XX!") == 3
