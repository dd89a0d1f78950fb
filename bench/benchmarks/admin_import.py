"""pbx-admin import benchmarks."""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path
from typing import Any

import psycopg
from support import Env, child_env, python, result, run_timed

USERS = 10_000
FIRST_EXTEN = 10_000
TARGET_SECONDS = 10.0
COLUMNS = ("firstname", "lastname", "exten", "language", "voicemail", "email")
FIRSTNAMES = (
    "Alice",
    "Bruno",
    "Chloé",
    "David",
    "Emma",
    "François",
    "Gabrielle",
    "Hugo",
    "Inès",
    "Jules",
    "Karim",
    "Léa",
    "Manon",
    "Nicolas",
    "Océane",
    "Paul",
    "Quentin",
    "Rose",
    "Samuel",
    "Zoé",
)
LASTNAMES = (
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefèvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
)


def write_users_csv(path: Path, count: int) -> None:
    rng = random.Random(10_000)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(count):
            first, last = rng.choice(FIRSTNAMES), rng.choice(LASTNAMES)
            email = f"{first.lower()}.{last.lower()}.{i}@example.com".encode("ascii", "ignore").decode()
            writer.writerow((first, last, FIRST_EXTEN + i, "fr_FR", "yes", email))


def raw_copy_seconds(env: Env, path: Path) -> float:
    """The reference: COPY of the same CSV into an empty table of the same cluster."""
    scratch = "bench_raw_copy"
    env.postgres.drop_database(scratch)
    env.postgres.create_database(scratch)
    try:
        with psycopg.connect(env.postgres.superuser_dsn(scratch)) as conn:
            conn.execute(f"CREATE TABLE raw ({', '.join(f'{c} text' for c in COLUMNS)})")
            conn.commit()
            data = path.read_bytes()
            started = time.perf_counter()
            with conn.cursor().copy("COPY raw FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                copy.write(data)
            conn.commit()
            return time.perf_counter() - started
    finally:
        env.postgres.drop_database(scratch)


def import_10k(env: Env) -> dict[str, Any]:
    """`pbx-admin import users` of 10,000 users with line, extension and voicemail, as a real CLI run."""
    path = env.scratch / "users-10k.csv"
    write_users_csv(path, USERS)
    reference = raw_copy_seconds(env, path)
    db = env.pbx_database()
    credentials = env.scratch / "credentials-10k.csv"
    seconds, rss_mib, _, _ = run_timed(
        [
            python(),
            "-m",
            "confdb.cli.main",
            "--dsn",
            db.dsn(),
            "import",
            "users",
            str(path),
            "--credentials",
            str(credentials),
            "--no-progress",
        ],
        env=child_env(),
    )
    with psycopg.connect(db.dsn()) as conn:
        tables = ("users", "lines", "extensions", "voicemails", "outbox")
        counts = conn.execute("SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables)).fetchone()
    assert counts is not None
    complete = counts[:4] == (USERS,) * 4
    return result(
        "admin.import_10k",
        seconds,
        "s",
        reference,
        TARGET_SECONDS,
        rows=USERS,
        peak_rss_mib=rss_mib,
        complete=complete,
        outbox_rows=counts[4],
        ok=complete and seconds <= TARGET_SECONDS,
    )
