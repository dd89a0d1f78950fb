"""pbx-admin incall: where calls from trunks go, by DID."""

from __future__ import annotations

import argparse
from typing import Any

from confdb.cli.context import CommandError, Context
from confdb.writer import destinations, incalls

RAW = argparse.RawDescriptionHelpFormatter

DEST_HELP = f"where the calls go: {destinations.SYNTAX}"

EPILOG = """\
A DID is the number the caller dialled, as the provider sends it: a number (0412345678, +33412345678) or a
pattern beginning with '_' (_04123456XX matches a block of 100 numbers).

destinations:
  user:1001              a user, by extension, CTI login or id
  group:sales            a ring group, by name
  queue:support          a queue, by name
  voicemail:1001         a voicemail box, by mailbox (MAILBOX@CONTEXT outside context default)
  number:+33612345678    a number (forwarded like a dialled call)
  hangup                 hang up

examples:
  pbx-admin incall add 0412345678 user:1001
  pbx-admin incall add _04123457XX queue:support --schedule office --callerid-name-prefix 'SUPPORT '
  pbx-admin incall set 0412345678 --destination group:sales
  pbx-admin incall set 0412345678 --no-schedule
  pbx-admin --json incall list
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "incall",
        help="route incoming DIDs to users, groups, queues, voicemail or numbers",
        description="Incalls route calls arriving from trunks, by the number dialled (DID).",
        epilog=EPILOG,
        formatter_class=RAW,
    )
    cmds = parser.add_subparsers(dest="incall_command", metavar="ACTION", required=True)

    add = cmds.add_parser(
        "add",
        help="route a DID",
        epilog=EPILOG,
        formatter_class=RAW,
        description="Route calls to a DID to a destination, optionally only during a "
        "schedule's opening hours.",
    )
    add.add_argument("did", help="the DID: a number or a pattern beginning with '_'")
    add.add_argument("destination", metavar="DEST", help=DEST_HELP)
    add.add_argument("--context", default="incall", help="incall context of the trunks (default incall)")
    add.add_argument("--schedule", help="open only during this schedule; its closed destination otherwise")
    add.add_argument(
        "--callerid-name-prefix",
        default="",
        metavar="TEXT",
        help="put in front of the caller's name, e.g. 'SALES ' (its trailing blank kept): 20 characters at "
        "most, letters, digits, blanks and _ . - + : / @ ! ? *",
    )
    add.set_defaults(handler=_add)

    set_ = cmds.add_parser(
        "set",
        help="change a DID's routing",
        formatter_class=RAW,
        description="Change an incall; options not given are left as they are.",
        epilog="examples:\n  pbx-admin incall set 0412345678 --destination voicemail:1001\n"
        "  pbx-admin incall set 0412345678 --did +33412345678",
    )
    set_.add_argument("did", help="the incall's current DID")
    set_.add_argument("--context", default="incall", help="incall context of the DID (default incall)")
    set_.add_argument("--did", dest="new_did", metavar="DID", help="new DID")
    set_.add_argument("--destination", metavar="DEST", help=DEST_HELP)
    schedule = set_.add_mutually_exclusive_group()
    schedule.add_argument("--schedule", help="open only during this schedule")
    schedule.add_argument("--no-schedule", action="store_true", help="open around the clock")
    set_.add_argument(
        "--callerid-name-prefix",
        metavar="TEXT",
        help="put in front of the caller's name, as for add ('' removes it)",
    )
    set_.set_defaults(handler=_set)

    delete = cmds.add_parser("delete", help="stop routing a DID", description="Delete an incall.")
    delete.add_argument("did", help="the incall's DID")
    delete.add_argument("--context", default="incall", help="incall context of the DID (default incall)")
    delete.set_defaults(handler=_delete)

    show = cmds.add_parser(
        "list", help="list incalls with their destinations", description="List every incall."
    )
    show.set_defaults(handler=_list)

    show_one = cmds.add_parser(
        "show",
        help="show one incall",
        description="Show one incall, with the fields of incall list.",
        epilog="example:\n  pbx-admin incall show 0412345678",
        formatter_class=RAW,
    )
    show_one.add_argument("did", help="the incall's DID")
    show_one.add_argument("--context", default="incall", help="incall context of the DID (default incall)")
    show_one.set_defaults(handler=_show)


def _add(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        dest = destinations.parse_destination(conn, args.destination, field="incall.destination")
        incall_id = incalls.create_incall(
            conn,
            args.did,
            dest,
            context=args.context,
            schedule=args.schedule,
            callerid_name_prefix=args.callerid_name_prefix,
        )
        shown = destinations.describe(conn, dest)
    ctx.emit({"id": incall_id, "did": args.did, "context": args.context, "destination": shown})
    return 0


def _set(ctx: Context, args: argparse.Namespace) -> int:
    changes: dict[str, object] = {}
    if args.new_did is not None:
        changes["new_did"] = args.new_did
    if args.schedule is not None or args.no_schedule:
        changes["schedule"] = None if args.no_schedule else args.schedule
    if args.callerid_name_prefix is not None:
        changes["callerid_name_prefix"] = args.callerid_name_prefix
    if not changes and args.destination is None:
        raise CommandError("nothing to change: give at least one option")
    with ctx.write() as conn:
        if args.destination is not None:
            changes["destination"] = destinations.parse_destination(
                conn, args.destination, field="incall.destination"
            )
        changed = incalls.update_incall(conn, args.did, context=args.context, **changes)  # type: ignore[arg-type]
    ctx.emit({"changed": changed})
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        incalls.delete_incall(conn, args.did, context=args.context)
    ctx.emit({"deleted": args.did, "context": args.context})
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = incalls.list_incalls(conn)
    ctx.emit(rows, ["did", "context", "destination", "schedule", "callerid_name_prefix"], text=_text)
    return 0


def _show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        [row] = incalls.list_incalls(conn, incalls.incall_id(conn, args.did, context=args.context))
    ctx.emit(row, text=_text)
    return 0


def _text(row: dict[str, Any]) -> dict[str, Any]:
    """The prefix quoted in text, where its trailing blank would not show."""
    prefix = row["callerid_name_prefix"]
    return row | {"callerid_name_prefix": repr(prefix) if prefix else ""}
