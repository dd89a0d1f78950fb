"""pbx-admin import: users or phonebook entries from a CSV file, row by row all or nothing, fast."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from confdb import importing, numbers
from confdb.cli.context import CommandError, Context
from confdb.cli.phonebook_cmd import country
from confdb.progress import Progress, choose_mode
from confdb.writer import bulk_users

EPILOG = """\
users columns (header row required; empty cell = not given):
  firstname (required), lastname, exten, context (default internal), language, callerid_name, callerid_num,
  ring_seconds, simultaneous_calls, dnd, enabled, fwd_unconditional, fwd_unconditional_enabled, fwd_busy,
  fwd_busy_enabled, fwd_noanswer, fwd_noanswer_enabled, line (yes/no, default yes), shared_line (name of
  an existing line to join), voicemail (yes/no, default no; mailbox = exten), voicemail_pin (default:
  generated), email, cti_login, cti_password
phonebook columns:
  display_name, firstname, lastname, company, email, office, mobile, home, fax, other
  (several numbers of one kind in a cell are separated by ';')

Delimiter ',' (or ';' or tab when the header uses it), UTF-8. Row N is line N of the file. Columns row,
field and reason are ignored: a corrected rejects file can be imported again. A file that is not UTF-8, or
with a quote that does not close on its own line (a cell holds no line break), is refused as a whole,
naming the line; nothing is imported.

Each row is all or nothing: a user lands with its line, extension and voicemail box, or not at all. A
refused row is reported on stderr (row, column, reason) and, with --rejects, copied to that CSV with
row, field and reason columns; the other rows are imported. A row with more cells than the header (not
empty ones) or fewer is refused, and so is a row repeating an extension, mailbox or CTI login of an earlier
row. Generated SIP secrets and voicemail PINs go to the --credentials file (created with mode 0600, never
overwritten), and nowhere else; a cell there that starts like a spreadsheet formula (= + - @) gets a
leading single quote, which spreadsheets hide.

CTI passwords are hashed with scrypt (~50 ms of CPU each) on all CPUs: 10,000 users with CTI logins take
minutes; without, seconds.

exit status (with --dry-run: what an import would have done):
  0  every row imported (or the file has no row)
  3  some rows imported, the others refused (listed on stderr and in --rejects)
  1  nothing imported: every row refused, or the file or the import failed
  2  usage error

examples:
  pbx-admin import users staff.csv --credentials /root/staff-credentials.csv --rejects staff-rejects.csv
  pbx-admin import users staff.csv --dry-run
  pbx-admin import phonebook contacts.csv
"""


EXIT_ALL, EXIT_NONE, EXIT_SOME = 0, 1, 3  # 2 is argparse's usage error


def exit_status(report: importing.Report) -> int:
    if not report.rejects:
        return EXIT_ALL
    return EXIT_SOME if report.created else EXIT_NONE


# Publishing runs at about 800 events/s (one confirm each; docs/events.md): beyond this many created
# objects (5 events per user), pbx-admin leaves the events to pbx-event-relay instead of making the
# operator wait for them.
FLUSH_LIMIT = 200


def flush_or_leave_to_relay(ctx: Context, conn: psycopg.Connection[Any], created: int) -> None:
    if created <= FLUSH_LIMIT:
        ctx.flush_events(conn)
    elif ctx.settings["bus"]["url"]:
        print("pbx-admin: the config events of this bulk write are left to pbx-event-relay", file=sys.stderr)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "import",
        help="import users or phonebook entries from CSV",
        description="Import users (with line, extension, voicemail) or phonebook entries from a CSV file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=("users", "phonebook"), help="what the file holds")
    parser.add_argument("file", type=Path, help="the CSV file")
    parser.add_argument(
        "--credentials",
        type=Path,
        metavar="FILE",
        help="users: new CSV file (mode 0600) for the generated SIP secrets and voicemail PINs (required "
        "unless --dry-run)",
    )
    parser.add_argument(
        "--rejects", type=Path, metavar="FILE", help="copy refused rows to this CSV (mode 0600)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="check and write everything, then roll back: nothing is kept"
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument(
        "--progress", action="store_true", help="draw a progress bar on stderr even when it is not a terminal"
    )
    shown.add_argument("--no-progress", action="store_true", help="no progress output")
    parser.set_defaults(handler=_import)


def _import(ctx: Context, args: argparse.Namespace) -> int:
    users_kind = args.kind == "users"
    if users_kind and not args.dry_run and args.credentials is None:
        raise CommandError(
            "--credentials FILE is required: the generated SIP secrets and voicemail PINs are written there "
            "and nowhere else (or use --dry-run)"
        )
    columns = importing.USER_COLUMNS if users_kind else importing.PHONEBOOK_COLUMNS
    required = ("firstname",) if users_kind else ()
    data = importing.read_csv(args.file, columns, required)
    progress = Progress(
        sys.stderr,
        choose_mode(sys.stderr, forced=args.progress, quiet=args.no_progress),
        prefix=f"import {args.kind}",
    )
    directory_country = numbers.DEFAULT_COUNTRY if users_kind else country(ctx)
    started = time.monotonic()
    with ctx.connect() as conn:
        # Both files are created before anything is written, so that neither can fail after the commit.
        rejects = importing.open_private(args.rejects, exclusive=False) if args.rejects else None
        credentials = None
        if users_kind and not args.dry_run:
            credentials = importing.open_private(args.credentials, exclusive=True)
        try:
            # Committed at the end of this block; the credentials are on disk (fsync) before.
            with conn.transaction(force_rollback=args.dry_run):
                if users_kind:
                    hasher = bulk_users.placeholder_hashes if args.dry_run else bulk_users.hash_passwords
                    report = importing.import_users(conn, data, progress=progress, hasher=hasher)
                else:
                    report = importing.import_phonebook(
                        conn, data, country=directory_country, progress=progress
                    )
                if credentials is not None:
                    importing.write_credentials(credentials, report)
        except BaseException:
            if credentials is not None:
                credentials.close()
                args.credentials.unlink(missing_ok=True)
            raise
        if credentials is not None:
            credentials.close()
        if not args.dry_run:
            flush_or_leave_to_relay(ctx, conn, report.created)
    for reject in report.rejects:
        print(f"pbx-admin import: {importing.describe(reject)}", file=sys.stderr)
    if rejects is not None:
        with rejects:
            importing.write_rejects(rejects, data.header, report)
    summary = {
        "file": str(args.file),
        "rows": report.rows,
        ("would be created" if args.dry_run else "created"): report.created,
        "rejected": len(report.rejects),
        "seconds": round(time.monotonic() - started, 2),
    }
    if credentials is not None:
        summary["credentials"] = str(args.credentials)
    if args.rejects is not None:
        summary["rejects"] = str(args.rejects)
    if args.dry_run:
        summary["dry_run"] = "nothing was kept"
    ctx.emit(summary)
    return exit_status(report)
