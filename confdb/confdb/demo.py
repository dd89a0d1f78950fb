"""`pbx-admin demo`: a realistic demo company written through the writer functions.

N users on extensions 1000.. with line, voicemail box and e-mail, the first K of them with CTI logins
(default 50: scrypt costs ~50 ms each, hashed on every CPU by the bulk path), a few phones shared by two
users and a few users with a second line, phones (devices) for the first ten, two ring groups (600, 601),
two queues (700, 701) with agents and user members, a registered SIP trunk, an outcall with national,
international and emergency patterns, office hours, incalls (DIDs) through those hours, and a phonebook
of M entries with French and foreign numbers.

Names and numbers are deterministic for a given --seed; secrets never are. The demo runs once per
database: if its objects exist, create_demo refuses and names them. Nothing commits here.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from confdb import demodata, numbers
from confdb.progress import Progress
from confdb.writer import (
    agents,
    bulk_users,
    devices,
    groups,
    incalls,
    lines,
    outcalls,
    phonebook,
    queues,
    schedules,
    trunks,
    users,
)
from confdb.writer.destinations import Destination
from confdb.writer.errors import Conflict

FIRST_EXTEN = 1000
DEFAULT_CTI_USERS = 50
SHARED_EVERY = 20  # user i with i % 20 == 5 shares the phone of user i - 1 ...
MULTI_LINE_EVERY = 20  # ... and user i with i % 20 == 10 gets a second line
MARKERS = (  # (table, name): the demo's objects, how a second run recognises the first
    ("trunks", "demo-provider"),
    ("outcalls", "demo-national"),
    ("schedules", "demo-office-hours"),
    ("groups", "demo-sales"),
    ("queues", "demo-support"),
)
CREDENTIAL_COLUMNS = (
    "exten",
    "name",
    "line",
    "sip_username",
    "sip_secret",
    "voicemail_pin",
    "cti_login",
    "cti_password",
)
PHONES = (("Yealink", "T54W"), ("Snom", "D785"), ("Polycom", "VVX 450"), ("Grandstream", "GRP2614"))


class DemoExists(Conflict):
    """The database already holds demo data."""


@dataclass
class DemoReport:
    counts: dict[str, int] = field(default_factory=dict)
    credentials: list[dict[str, str]] = field(default_factory=list)


def existing_demo(conn: psycopg.Connection[Any]) -> list[str]:
    found = []
    for table, name in MARKERS:
        if conn.execute(f"SELECT 1 FROM {table} WHERE name = %s", (name,)).fetchone():
            found.append(f"{table[:-1]} {name}")
    return found


def _people(rng: random.Random, count: int) -> list[demodata.Person]:
    """Distinct names while the lists last, then repeats."""
    pool = [demodata.Person(f, last) for f in demodata.FIRSTNAMES for last in demodata.LASTNAMES]
    rng.shuffle(pool)
    return [pool[i % len(pool)] for i in range(count)]


def _user_specs(rng: random.Random, count: int, cti_users: int) -> tuple[list[users.UserSpec], list[str]]:
    people = _people(rng, count)
    domain = demodata.company_domain(demodata.company(rng))
    specs, passwords_, logins = [], [], set()
    for i, who in enumerate(people):
        login = password = None
        if i < cti_users:
            login = who.login
            while login in logins:
                login = f"{who.login}{len(logins)}"
            logins.add(login)
            password = secrets.token_urlsafe(12)
        specs.append(
            users.UserSpec(
                firstname=who.firstname,
                lastname=who.lastname,
                exten=str(FIRST_EXTEN + i),
                fields={"language": "fr_FR", "ring_seconds": rng.choice((20, 25, 30))},
                new_line=i % SHARED_EVERY != 5,
                voicemail=True,
                email=f"{who.login}@{domain}",
                cti_login=login,
                cti_password=password,
            )
        )
        passwords_.append(password or "")
    return specs, passwords_


def _credential(
    spec: users.UserSpec, created: users.CreatedUser, line: lines.NewLine | None, cti_password: str = ""
) -> dict[str, str]:
    return {
        "exten": created.exten or "",
        "name": f"{spec.firstname} {spec.lastname}",
        "line": line.name if line else "",
        "sip_username": line.auth_username if line else "",
        "sip_secret": line.secret if line else "",
        "voicemail_pin": created.voicemail_pin or "",
        "cti_login": (spec.cti_login or "") if cti_password else "",
        "cti_password": cti_password,
    }


def _create_users(
    conn: psycopg.Connection[Any],
    rng: random.Random,
    count: int,
    cti_users: int,
    progress: Progress,
    hasher: bulk_users.Hasher,
    report: DemoReport,
) -> list[users.CreatedUser]:
    specs, cti_passwords = _user_specs(rng, count, cti_users)
    outcomes = bulk_users.create_users(conn, specs, progress=progress, hasher=hasher)
    refused = [o for o in outcomes if o.created is None]
    if refused:
        first = refused[0]
        raise Conflict(
            f"the demo needs extensions {FIRST_EXTEN}-{FIRST_EXTEN + count - 1} and their voicemail "
            f"boxes free, but user {specs[first.index].exten} was refused: {first.error}"
        )
    created = [o.created for o in outcomes if o.created is not None]
    report.credentials += [
        _credential(s, c, c.line, p) for s, c, p in zip(specs, created, cti_passwords, strict=True)
    ]
    report.counts |= {"users": len(created), "cti_logins": sum(1 for p in cti_passwords if p)}
    # Shared phones: user i (i % 20 == 5) was created without a line and joins the line of user i - 1.
    shared = multi = 0
    for i, user in enumerate(created):
        phone = created[i - 1].line if i % SHARED_EVERY == 5 else None
        if phone is not None:
            lines.associate(conn, user.id, phone.id)
            report.credentials[i]["line"] = phone.name
            shared += 1
        if i % MULTI_LINE_EVERY == 10:
            second = lines.create_line(conn)
            lines.associate(conn, user.id, second.id)
            report.credentials.append(_credential(specs[i], user, second) | {"voicemail_pin": ""})
            multi += 1
    report.counts |= {"shared_lines": shared, "multi_line_users": multi}
    return created


def _create_devices(
    conn: psycopg.Connection[Any],
    rng: random.Random,
    created: Sequence[users.CreatedUser],
    report: DemoReport,
) -> None:
    count = 0
    for user in created[:10]:
        if user.line is None:
            continue
        vendor, model = rng.choice(PHONES)
        mac = "02:00:5e:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))  # locally administered
        if conn.execute("SELECT 1 FROM devices WHERE mac = %s::macaddr", (mac,)).fetchone():
            continue
        device = devices.create_device(conn, mac, model, vendor=vendor, description=f"desk of {user.exten}")
        devices.attach_line(conn, device, user.line.name, 1)
        count += 1
    report.counts["devices"] = count


def _create_routing(
    conn: psycopg.Connection[Any], created: Sequence[users.CreatedUser], report: DemoReport
) -> None:
    ids = [u.id for u in created]
    groups.create_group(conn, "demo-sales", "Sales", strategy="ringall", exten="600")
    groups.create_group(conn, "demo-accounting", "Accounting", strategy="linear", exten="601")
    for user_id in ids[0:5]:
        groups.add_member(conn, "demo-sales", user_id)
    for user_id in ids[5:8]:
        groups.add_member(conn, "demo-accounting", user_id)
    queues.create_queue(
        conn, "demo-support", "Customer support", strategy="rrmemory", exten="700", announce_position=True
    )
    queues.create_queue(conn, "demo-hotline", "Hotline", strategy="ringall", exten="701")
    names = conn.execute(
        "SELECT id, firstname, lastname FROM users WHERE id = ANY(%s)", (ids[8:12],)
    ).fetchall()
    for n, (user_id, first, last) in enumerate(sorted(names)):
        agent = agents.create_agent(conn, str(8001 + n), first, last, language="fr_FR", user_id=user_id)
        queues.add_member(conn, "demo-support", agent_id=agent, penalty=n % 2)
    for user_id in ids[12:14]:
        queues.add_member(conn, "demo-support", user_id=user_id, penalty=5)
    for user_id in ids[14:18]:
        queues.add_member(conn, "demo-hotline", user_id=user_id)
    trunks.create_trunk(
        conn,
        "demo-provider",
        "sip.demo-provider.example",
        register=True,
        auth_username="demo-pbx",
        auth_password=secrets.token_urlsafe(18),
    )
    outcalls.create_outcall(
        conn,
        "demo-national",
        trunks=["demo-provider"],
        patterns=[
            outcalls.OutcallPattern("_0[1-9]XXXXXXXX"),
            outcalls.OutcallPattern("_00X."),
            outcalls.OutcallPattern("_1[578]"),
            outcalls.OutcallPattern("112"),
        ],
    )
    closed = (
        Destination("voicemail", id=_voicemail_of(conn, created[0].id)) if created else Destination("hangup")
    )
    schedules.create_schedule(
        conn,
        "demo-office-hours",
        timezone="Europe/Paris",
        periods=["mon-fri 08:30-12:30", "mon-fri 13:30-18:00"],
        closed=closed,
    )
    sales, support = groups.group_id(conn, "demo-sales"), queues.queue_id(conn, "demo-support")
    incalls.create_incall(conn, "0123456700", Destination("group", id=sales), schedule="demo-office-hours")
    incalls.create_incall(conn, "0123456701", Destination("queue", id=support), schedule="demo-office-hours")
    for n, user in enumerate(created[:10]):
        incalls.create_incall(conn, f"01234568{n:02d}", Destination("user", id=user.id))
    report.counts |= {
        "groups": 2,
        "queues": 2,
        "agents": len(names),
        "trunks": 1,
        "outcalls": 1,
        "schedules": 1,
        "incalls": 2 + min(len(created), 10),
    }


def _voicemail_of(conn: psycopg.Connection[Any], user_id: int) -> int:
    row = conn.execute("SELECT voicemail_id FROM users WHERE id = %s", (user_id,)).fetchone()
    assert row is not None and row[0] is not None
    return int(row[0])


def phonebook_entries(rng: random.Random, count: int, *, country: str) -> list[phonebook.CheckedEntry]:
    """`count` checked phonebook entries: people at companies, companies alone, people abroad."""
    national = numbers.country_rules(country).code == "FR"
    entries = []
    for _ in range(count):
        who, firm, roll = demodata.person(rng), demodata.company(rng), rng.random()
        found: list[phonebook.PhoneNumber] = []
        if roll < 0.15:  # a company's switchboard
            spec = phonebook.EntrySpec(company=firm, email=f"contact@{demodata.company_domain(firm)}")
            found.append(phonebook.PhoneNumber(demodata.french_number(rng, "office", national=national)))
        elif roll < 0.25:  # a contact abroad
            spec = phonebook.EntrySpec(firstname=who.firstname, lastname=who.lastname, company=firm)
            found.append(phonebook.PhoneNumber(demodata.foreign_number(rng)))
        else:
            spec = phonebook.EntrySpec(
                firstname=who.firstname,
                lastname=who.lastname,
                company=firm,
                email=f"{who.login}@{demodata.company_domain(firm)}",
            )
            found.append(phonebook.PhoneNumber(demodata.french_number(rng, "office", national=national)))
            for kind, chance in (("mobile", 0.6), ("fax", 0.1), ("home", 0.05)):
                if rng.random() < chance:
                    found.append(
                        phonebook.PhoneNumber(demodata.french_number(rng, kind, national=national), kind)
                    )
        spec.numbers = found
        entries.append(phonebook.check_entry(spec, country=country))
    return entries


def create_demo(
    conn: psycopg.Connection[Any],
    *,
    users_count: int,
    phonebook_count: int,
    seed: int | None = None,
    cti_users: int | None = None,
    country: str = numbers.DEFAULT_COUNTRY,
    progress: Progress | None = None,
    hasher: bulk_users.Hasher = bulk_users.hash_passwords,
) -> DemoReport:
    """Write the demo company in the caller's transaction; DemoExists if it is already there."""
    found = existing_demo(conn)
    if found:
        raise DemoExists(
            f"demo data already exist in this database ({', '.join(found)}); pbx-admin demo runs "
            "once per database: use a fresh one, or delete those objects first"
        )
    if users_count < 0 or phonebook_count < 0:
        raise ValueError("the numbers of users and phonebook entries cannot be negative")
    progress = progress or Progress(mode="off")
    rng = random.Random(seed)
    report = DemoReport()
    cti = DEFAULT_CTI_USERS if cti_users is None else cti_users
    created = _create_users(conn, rng, users_count, min(cti, users_count), progress, hasher, report)
    _create_devices(conn, rng, created, report)
    _create_routing(conn, created, report)
    progress.phase("phonebook", phonebook_count)
    entries = phonebook_entries(rng, phonebook_count, country=country)
    report.counts["phonebook_entries"] = len(phonebook.create_entries(conn, entries, progress=progress))
    progress.done()
    return report
