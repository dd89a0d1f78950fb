"""pbx-admin demo: fill an empty database with a realistic demo company."""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

from confdb import demo, importing
from confdb.cli.context import CommandError, Context
from confdb.cli.import_cmd import flush_or_leave_to_relay
from confdb.cli.phonebook_cmd import country
from confdb.progress import Progress, choose_mode

EPILOG = f"""\
what is created:
  N users on extensions {demo.FIRST_EXTEN}.. with a SIP line, a voicemail box and an e-mail address; the first
  --cti-users of them (default {demo.DEFAULT_CTI_USERS}) with CTI logins; a few phones shared by two users and
  users with a second line; phones for the first ten; ring groups 600, 601; queues 700, 701 with agents and
  members; a registered SIP trunk; an outcall with national, international and emergency patterns; office
  hours; incalls (DIDs 0123456700, 0123456701, 0123456800..); M phonebook entries.

SIP secrets, voicemail PINs and CTI passwords go to the --credentials file (created with mode 0600, never
overwritten) and nowhere else. CTI passwords are hashed with scrypt (~50 ms of CPU each) on all CPUs,
which is why only some users get a CTI login by default.

--seed makes names and numbers reproducible; secrets are always random. The demo runs once per database.

example:
  pbx-admin demo --users 100 --phonebook 1000 --seed 42 --credentials /root/demo-credentials.csv
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="create a demo company (users, groups, queues, routing, phonebook)",
        description="Create a realistic demo company in an empty database, in one transaction.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=50, metavar="N", help="number of users (default 50)")
    parser.add_argument(
        "--phonebook", type=int, default=200, metavar="M", help="phonebook entries (default 200)"
    )
    parser.add_argument("--seed", type=int, help="random seed for names and numbers (default: random)")
    parser.add_argument(
        "--cti-users",
        type=int,
        metavar="K",
        help=f"users with a CTI login (default {demo.DEFAULT_CTI_USERS})",
    )
    parser.add_argument(
        "--credentials", type=Path, metavar="FILE", help="new CSV file (mode 0600) for the generated secrets"
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument(
        "--progress", action="store_true", help="draw a progress bar even when not on a terminal"
    )
    shown.add_argument("--no-progress", action="store_true", help="no progress output")
    parser.set_defaults(handler=_demo)


def _demo(ctx: Context, args: argparse.Namespace) -> int:
    if args.users < 0 or args.phonebook < 0 or (args.cti_users is not None and args.cti_users < 0):
        raise CommandError("--users, --phonebook and --cti-users cannot be negative")
    if args.users and args.credentials is None:
        raise CommandError(
            "--credentials FILE is required: the generated secrets are written there and nowhere else"
        )
    progress = Progress(
        sys.stderr, choose_mode(sys.stderr, forced=args.progress, quiet=args.no_progress), "demo"
    )
    directory_country = country(ctx)
    started = time.monotonic()
    with ctx.connect() as conn:
        if found := demo.existing_demo(conn):  # before creating any file
            raise CommandError(
                f"demo data already exist in this database ({', '.join(found)}); the demo runs once"
            )
        conn.rollback()  # end the check's read: the demo's transaction below is then the top one, committed
        handle = importing.open_private(args.credentials, exclusive=True) if args.users else None
        try:
            with conn.transaction():
                report = demo.create_demo(
                    conn,
                    users_count=args.users,
                    phonebook_count=args.phonebook,
                    seed=args.seed,
                    cti_users=args.cti_users,
                    country=directory_country,
                    progress=progress,
                )
                if handle is not None:
                    writer = csv.DictWriter(handle, demo.CREDENTIAL_COLUMNS)
                    writer.writeheader()
                    writer.writerows(report.credentials)
                    handle.flush()
                    os.fsync(handle.fileno())
        except BaseException:
            if handle is not None:
                handle.close()
                args.credentials.unlink(missing_ok=True)
            raise
        if handle is not None:
            handle.close()
        flush_or_leave_to_relay(
            ctx, conn, report.counts.get("users", 0) + report.counts.get("phonebook_entries", 0)
        )
    summary: dict[str, object] = dict(report.counts)
    if handle is not None:
        summary["credentials"] = str(args.credentials)
    summary["seconds"] = round(time.monotonic() - started, 2)
    ctx.emit(summary)
    return 0
