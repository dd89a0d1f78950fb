"""pbx-admin schedule: opening hours for incalls."""

from __future__ import annotations

import argparse
from typing import Any

from confdb.cli.context import CommandError, Context
from confdb.writer import destinations, schedules

RAW = argparse.RawDescriptionHelpFormatter

PERIOD_HELP = (
    "an opening period DAYS HH:MM-HH:MM, such as 'mon-fri 09:00-18:00', 'sat 09:00-12:00' or "
    "'mon,wed,fri 08:30-12:30'; 24:00 ends at midnight; repeat for several periods"
)
DEST_HELP = f"where calls go when closed: {destinations.SYNTAX}"

EPILOG = """\
Calls to an incall with a schedule go to the incall's destination during the opening periods (in the
schedule's time zone) and to the schedule's closed destination otherwise.

examples:
  pbx-admin schedule add office --timezone Europe/Paris --period 'mon-fri 09:00-12:00' \\
      --period 'mon-fri 14:00-18:00' --period 'sat 09:00-12:00' --closed voicemail:1001
  pbx-admin incall set 0412345678 --schedule office
  pbx-admin schedule set office --closed number:+33612345678
  pbx-admin schedule list
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "schedule",
        help="create, change, delete and list opening-hours schedules",
        description="Schedules: weekly opening hours, and where calls go when closed.",
        epilog=EPILOG,
        formatter_class=RAW,
    )
    cmds = parser.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)

    add = cmds.add_parser(
        "add",
        help="create a schedule",
        epilog=EPILOG,
        formatter_class=RAW,
        description="Create a schedule. Without --period it is open mon-fri 09:00-18:00; "
        "without --closed, calls outside hours are hung up.",
    )
    add.add_argument("name", help="schedule name: letters, digits, '_', '.', '-' (40 at most)")
    add.add_argument(
        "--timezone", default="UTC", help="time zone of the periods, such as Europe/Paris (default UTC)"
    )
    add.add_argument("--period", action="append", metavar="PERIOD", help=PERIOD_HELP)
    add.add_argument("--closed", metavar="DEST", default="hangup", help=DEST_HELP + " (default hangup)")
    add.set_defaults(handler=_add)

    set_ = cmds.add_parser(
        "set",
        help="change a schedule",
        formatter_class=RAW,
        description="Change a schedule; --period replaces all the periods.",
        epilog="examples:\n  pbx-admin schedule set office --period 'mon-fri 08:00-19:00'\n"
        "  pbx-admin schedule set office --closed group:sales --timezone Europe/Brussels",
    )
    set_.add_argument("schedule", help="schedule name")
    set_.add_argument("--name", help="rename the schedule")
    set_.add_argument("--timezone", help="time zone of the periods")
    set_.add_argument("--period", action="append", metavar="PERIOD", help=PERIOD_HELP)
    set_.add_argument("--closed", metavar="DEST", help=DEST_HELP)
    set_.set_defaults(handler=_set)

    delete = cmds.add_parser(
        "delete",
        help="delete a schedule",
        description="Delete a schedule. Refused while an incall uses it: the incall would "
        "silently become open around the clock.",
    )
    delete.add_argument("schedule", help="schedule name")
    delete.set_defaults(handler=_delete)

    show = cmds.add_parser(
        "list", help="list schedules with their periods", description="List every schedule."
    )
    show.set_defaults(handler=_list)

    show_one = cmds.add_parser(
        "show",
        help="show one schedule",
        description="Show one schedule, with the fields of schedule list.",
        epilog="example:\n  pbx-admin schedule show office",
        formatter_class=RAW,
    )
    show_one.add_argument("schedule", help="schedule name")
    show_one.set_defaults(handler=_show)


def _add(ctx: Context, args: argparse.Namespace) -> int:
    periods = args.period or schedules.DEFAULT_PERIODS
    with ctx.write() as conn:
        closed = destinations.parse_destination(conn, args.closed, field="schedule.closed")
        schedule_id = schedules.create_schedule(
            conn, args.name, timezone=args.timezone, periods=periods, closed=closed
        )
    ctx.emit({"id": schedule_id, "name": args.name})
    return 0


def _set(ctx: Context, args: argparse.Namespace) -> int:
    if all(v is None for v in (args.name, args.timezone, args.period, args.closed)):
        raise CommandError("nothing to change: give at least one option")
    with ctx.write() as conn:
        closed = None
        if args.closed is not None:
            closed = destinations.parse_destination(conn, args.closed, field="schedule.closed")
        changed = schedules.update_schedule(
            conn,
            args.schedule,
            new_name=args.name,
            timezone=args.timezone,
            periods=args.period,
            closed=closed,
        )
    ctx.emit({"changed": changed})
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        schedules.delete_schedule(conn, args.schedule)
    ctx.emit({"deleted": args.schedule})
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = schedules.list_schedules(conn)
    ctx.emit(rows, ["name", "timezone", "periods", "closed", "incalls"], text=_text)
    return 0


def _show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        [row] = schedules.list_schedules(conn, schedules.schedule_id(conn, args.schedule))
    ctx.emit(row, text=_text)
    return 0


def _text(row: dict[str, Any]) -> dict[str, Any]:
    return row | {"periods": "; ".join(row["periods"])}  # a period holds commas itself
