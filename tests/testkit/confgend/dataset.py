"""A fixed, small but complete snapshot: the golden files are generated from it, and the property test
replaces its free-text fields by hostile strings."""

from __future__ import annotations

from datetime import time
from pathlib import Path

from confdb.read.confgend import (
    Agent,
    Context,
    Destination,
    Extension,
    Group,
    Incall,
    Line,
    Member,
    Outcall,
    OutcallPattern,
    Period,
    Queue,
    Schedule,
    Snapshot,
    Trunk,
    User,
    Voicemail,
)
from confgend.generators.base import Context as GeneratorContext

HA1 = "0123456789abcdef0123456789abcdef"


def snapshot(**texts: str) -> Snapshot:
    """The dataset; keyword arguments override free-text fields (see TEXT_FIELDS)."""
    t = {**DEFAULT_TEXTS, **DEFAULT_NAMES, **texts}
    contexts = (
        Context(1, "internal", "internal", ("services", "outcall")),
        Context(2, "incall", "incall"),
        Context(3, "outcall", "outcall"),
        Context(4, t["context_name"], "services"),
    )
    voicemails = (
        Voicemail(
            1, "default", "1001", t["vm_fullname"], t["vm_email"], "1234", "fr_FR", True, False, 100, True
        ),
        Voicemail(
            2, "default", t["vm_mailbox"], "Bob Durand", None, t["vm_pin"], None, False, False, 50, True
        ),
        Voicemail(3, "default", "1009", "Disabled Box", None, "9999", None, True, False, 100, False),
    )
    users = (
        User(1, t["firstname"], t["lastname"], t["callerid_name"], None, "fr_FR", 30, True, 1, (1, 4)),
        User(2, "Bob", "Durand", "Bob Durand", t["callerid_num"], t["language"], 20, True, 2, (2,)),
        User(3, "Carol", "", "Carol", None, "en_US", 25, True, None, (2,)),  # shares Bob's phone
        User(4, "Dave", "Off", "Dave Off", None, "en_US", 30, False, None, (3,)),
    )
    lines = (
        Line(
            1,
            t["line_name"],
            t["auth_username"],
            HA1,
            t["realm"],
            t["line_context"],
            ("g722", "alaw", "ulaw"),
            1,
            True,
            1,
            (1,),
        ),
        Line(2, "shared01", "shared01", HA1, "pbx", "internal", (t["codec"],), 1, True, 2, (2, 3)),
        Line(3, "daveline", "daveline", HA1, "pbx", "internal", ("ulaw",), 1, True, 4, (4,)),
        Line(4, "alicesoft", "alice-soft", HA1, "pbx", "internal", ("opus", "alaw"), 3, True, None, (1,)),
        Line(5, "offline", "offline", HA1, "pbx", "internal", ("alaw",), 1, False, None, ()),
    )
    extensions = (
        Extension("internal", "1001", "user", user_id=1),
        Extension("internal", "1002", "user", user_id=2),
        Extension("internal", "1003", "user", user_id=3),
        Extension("internal", "1004", "user", user_id=4),
        Extension("internal", "600", "group", group_id=1),
        Extension("internal", "700", "queue", queue_id=1),
        Extension("internal", "8001", "voicemail", voicemail_id=1),
        Extension("services", "*98", "service", service="voicemail_own"),
        Extension("services", "*99", "service", service="voicemail_any"),
        Extension("services", "*25", "service", service="dnd_toggle"),
        Extension("services", "_*21.", "service", service="fwd_unconditional"),
        Extension("services", "*22", "service", service="fwd_cancel"),
        Extension("services", "*43", "service", service="echo"),
    )
    agents = (Agent(1, t["agent_number"], t["agent_firstname"], "Agent", "en_US", 10),)
    queues = (
        Queue(
            1, t["queue_name"], t["queue_display_name"], "rrmemory", 15, 5, 10, 20, 300, t["music_class"],
            True, 0,
            (Member(1, None, 0), Member(2, None, 1), Member(None, 1, 2), Member(4, None, 0)),
        ),
    )  # fmt: skip
    groups = (
        Group(
            1,
            t["group_name"],
            t["group_display_name"],
            "ringall",
            25,
            False,
            (Member(1, None, 0), Member(2, None, 0)),
        ),
    )
    schedules = (
        Schedule(
            1, "office", t["timezone"], Destination("voicemail", 1),
            (Period((1, 2, 3, 4, 5), time(8, 30), time(12, 0)),
             Period((1, 2, 3, 4, 5), time(14, 0), time(18, 0))),
        ),
    )  # fmt: skip
    trunks = (
        Trunk(1, "provider", t["trunk_host"], "udp", "incall", ("alaw", "ulaw"), True, t["trunk_username"],
              t["trunk_password"], t["trunk_from_user"], (), True),
        Trunk(2, t["trunk_name"], "192.0.2.10:5060", "udp", "incall", ("alaw",), False, None, None, None,
              (t["identify_match"], "198.51.100.0/24"), True),
    )  # fmt: skip
    incalls = (
        Incall(1, "0123456789", "incall", Destination("user", 1), 1, t["callerid_name_prefix"]),
        Incall(2, t["did"], "incall", Destination("queue", 1), None, ""),
        Incall(3, "_01234567[2-3]X", "incall", Destination("group", 1), None, "Sales: "),
        Incall(4, "0123456799", "incall", Destination("number", number="0612345678"), None, ""),
        Incall(5, "0123456798", "incall", Destination("hangup"), None, ""),
    )
    outcalls = (
        Outcall(
            1, "national", "outcall", False, 60,
            (OutcallPattern(t["outcall_pattern"], 0, "", None), OutcallPattern("_00.", 2, t["outcall_prefix"],
                                                                              t["outcall_callerid"]),
             OutcallPattern("112", 0, "", None)),
            ("provider", t["trunk_name"]),
        ),
    )  # fmt: skip
    return Snapshot(
        contexts=contexts,
        voicemails=voicemails,
        users=users,
        lines=lines,
        extensions=extensions,
        agents=agents,
        queues=queues,
        groups=groups,
        schedules=schedules,
        trunks=trunks,
        incalls=incalls,
        outcalls=outcalls,
    )


DEFAULT_TEXTS = {
    "firstname": "Alice",
    "lastname": "Martin",
    "callerid_name": "Alice Martin",
    "vm_fullname": "Alice Martin",
    "vm_email": "alice@example.com",
    "agent_firstname": "Zoé",
    "queue_display_name": "Support",
    "group_display_name": "Sales",
    "callerid_name_prefix": "Office: ",
}
TEXT_FIELDS = tuple(DEFAULT_TEXTS)
# Checked, not escaped: a hostile value leaves its object out, never adds anything.
DEFAULT_NAMES = {
    "line_name": "abcd1234",
    "auth_username": "abcd1234",
    "realm": "pbx",
    "line_context": "internal",
    "codec": "alaw",
    "callerid_num": "+33123456789",
    "language": "en_US",
    "vm_mailbox": "1002",
    "vm_pin": "4321",
    "agent_number": "2001",
    "queue_name": "support",
    "group_name": "sales",
    "trunk_name": "carrier",
    "trunk_host": "sip.example.net",
    "trunk_username": "0123456789",
    "trunk_from_user": "0123456789",
    "trunk_password": "s3cr3t-Pass",
    "identify_match": "192.0.2.10/32",
    "did": "0123456700",
    "outcall_pattern": "_0[1-9]XXXXXXXX",
    "outcall_prefix": "+",
    "outcall_callerid": "+33123456700",
    "context_name": "services",
    "music_class": "support-moh",
    "timezone": "Europe/Paris",
}
NAME_FIELDS = tuple(DEFAULT_NAMES)


def make_context(secrets: Path) -> GeneratorContext:
    """A generator context whose manager users read their secrets from files under ``secrets``."""
    users = []
    for name in ("ctid", "confgend"):
        path = secrets / f"ami-{name}.secret"
        path.write_text(f"{name}-0123456789abcdef-secret\n")
        users.append({"name": name, "secret_file": str(path), "read": "system,call", "write": "system"})
    return GeneratorContext({"manager": {"users": users}})
