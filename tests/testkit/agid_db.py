"""Test tools with a PBX database (agid tests and benchmarks; not used by the daemon): routing data, an agid
server on it, and a fake Asterisk that answers the channel functions the handlers ask for."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg

from agid.config import Config
from agid.registry import HandlerContext
from agid.services import open_context
from confdb.writer import incalls, lines, outcalls, phonebook, queues, schedules, trunks, users
from confdb.writer.destinations import Destination
from testkit.fastagi import FakeAsterisk, ServerThread, Transcript, asterisk_parse_args, default_answer
from testkit.pbxdb import PbxDatabase

#: A Wednesday, 10:00 UTC (11:00 in Paris): the "office" schedule is open.
WEDNESDAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
#: A Sunday: closed.
SUNDAY = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


@dataclasses.dataclass
class Data:
    alice: int
    alice_lines: list[str]
    bob: int
    carol: int
    dave: int
    erin: int
    frank: int
    support_queue: int


def populate(db: PbxDatabase) -> Data:
    with psycopg.connect(db.dsn()) as conn, conn.transaction():
        alice = users.create_user(conn, users.UserSpec("Alice", "Martin", exten="1001", voicemail=True))
        assert alice.line is not None
        second = lines.create_line(conn, name="alice-soft")
        lines.associate(conn, alice.id, second.id)
        # bob shares alice's desk phone and has his own softphone
        bob = users.create_user(conn, users.UserSpec("Bob", exten="1002", shared_line=alice.line.name))
        # bob's softphone registers from his laptop and his mobile
        bob_soft = lines.create_line(conn, name="bob-soft", max_contacts=3)
        lines.associate(conn, bob.id, bob_soft.id)
        carol = users.create_user(
            conn,
            users.UserSpec(
                "Carol",
                exten="1003",
                voicemail=True,
                fields={"dnd": True, "fwd_busy_enabled": True, "fwd_busy": "0612345678"},
            ),
        )
        dave = users.create_user(
            conn,
            users.UserSpec(
                "Dave",
                exten="1004",
                fields={"fwd_unconditional_enabled": True, "fwd_unconditional": "0698765432"},
            ),
        )
        erin = users.create_user(
            conn,
            users.UserSpec(
                "Erin",
                exten="1005",
                voicemail=True,
                fields={
                    "simultaneous_calls": 1,
                    "ring_seconds": 12,
                    "fwd_noanswer_enabled": True,
                    "fwd_noanswer": "1001",
                },
            ),
        )
        frank = users.create_user(conn, users.UserSpec("Frank", exten="1006", new_line=False))
        phonebook.create_entry(
            conn,
            phonebook.EntrySpec(
                display_name="ACME Support", numbers=[phonebook.PhoneNumber("+33 1 23 45 67 89")]
            ),
            country="FR",
        )
        trunks.create_trunk(conn, "provider-a", "sip.a.example", identify=["192.0.2.1"])
        trunks.create_trunk(conn, "provider-b", "sip.b.example", identify=["192.0.2.2"])
        outcalls.create_outcall(
            conn,
            "national",
            trunks=["provider-b", "provider-a"],
            patterns=["_0XXXXXXXXX strip=1 prefix=+33", "_00. callerid=0140000000"],
            ring_seconds=45,
        )
        outcalls.create_outcall(
            conn, "emergency", trunks=["provider-a"], patterns=["112"], internal_callerid=True
        )
        queue_id = queues.create_queue(
            conn, "support", "Support", max_waiting=2, max_wait_seconds=300, music_class="calm"
        )
        schedules.create_schedule(
            conn,
            "office",
            timezone="Europe/Paris",
            periods=["mon-fri 09:00-18:00"],
            closed=Destination("voicemail", _vm(conn, alice.id)),
        )
        incalls.create_incall(conn, "0140000001", Destination("user", alice.id), schedule="office")
        incalls.create_incall(conn, "_01400000XX", Destination("queue", queue_id), callerid_name_prefix="SAV")
        incalls.create_incall(conn, "0140000099", Destination("number", number="0611111111"))
    return Data(
        alice.id, [alice.line.name, "alice-soft"], bob.id, carol.id, dave.id, erin.id, frank.id, queue_id
    )


def _vm(conn: psycopg.Connection[Any], user_id: int) -> int:
    row = conn.execute("SELECT voicemail_id FROM users WHERE id = %s", (user_id,)).fetchone()
    assert row is not None
    return int(row[0])


def agid_config(db: PbxDatabase | None, **options: Any) -> Config:
    base = Config(listen_port=0, db_dsn=db.dsn("pbx_agid") if db else "", db_dsn_file="/nonexistent")
    # Generous budgets: these servers check decisions, on a loaded CI machine. The failure tests give
    # their own short budgets.
    defaults = {
        "db_timeout": 3.0,
        "lookup_budget": 3.0,
        "db_pool_min": 1,
        "db_pool_max": 4,
        "db_connect_timeout": 2.0,
    }
    return dataclasses.replace(base, **{**defaults, **options})


def start_agid(db: PbxDatabase | None, now: datetime = WEDNESDAY, **options: Any) -> ServerThread:
    config = agid_config(db, **options)

    async def factory(cfg: Config) -> HandlerContext:
        return await open_context(cfg, now=lambda: now)

    return ServerThread(config, None, context_factory=factory)


def env_for(script: str, *args: str, callerid: str = "1001", extension: str = "s", context: str = "internal",
            channel: str = "PJSIP/alice-00000001") -> bytes:  # fmt: skip
    lines_ = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1:4573/{script}",
        f"agi_channel: {channel}",
        "agi_language: en",
        "agi_type: PJSIP",
        "agi_uniqueid: 1700000000.1",
        "agi_version: 20.20.1",
        f"agi_callerid: {callerid}",
        "agi_calleridname: ",
        f"agi_context: {context}",
        f"agi_extension: {extension}",
        "agi_priority: 2",
        *(f"agi_arg_{i}: {a}" for i, a in enumerate(args, 1)),
    ]
    return ("\n".join(lines_) + "\n\n").encode()


def answering(values: dict[str, str]) -> Callable[[bytes], bytes]:
    """Asterisk's answers, with ``GET FULL VARIABLE`` of the given expressions returning these values."""

    def answer(command: bytes) -> bytes:
        argv = asterisk_parse_args(command.rstrip(b"\n"))
        if [a.upper() for a in argv[:3]] == [b"GET", b"FULL", b"VARIABLE"] and len(argv) >= 4:
            value = values.get(argv[3].decode())
            return b"200 result=0\n" if value is None else f"200 result=1 ({value})\n".encode()
        if argv[:2] == [b"SET", b"VARIABLE"] and len(argv) == 4:
            return b"200 result=1\n"
        return default_answer(command)

    return answer


def call(server: ServerThread, env: bytes, values: dict[str, str] | None = None) -> Transcript:
    return FakeAsterisk(server.address, timeout=20.0).run(env, answer=answering(values or {}))


def servers() -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def start(db: PbxDatabase | None, **kw: Any) -> ServerThread:
        server = start_agid(db, **kw)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
