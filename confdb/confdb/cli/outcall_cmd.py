"""pbx-admin outcall: dial patterns sent out through trunks."""

from __future__ import annotations

import argparse
from typing import Any

from confdb.cli.context import CommandError, Context
from confdb.writer import outcalls

RAW = argparse.RawDescriptionHelpFormatter

PATTERN_HELP = (
    "a dial pattern PATTERN [strip=N] [prefix=DIGITS] [callerid=NUMBER], such as "
    "'_0XXXXXXXXX strip=1 prefix=+33'; repeat for several patterns"
)

EPILOG = """\
Phones of the internal context reach the outcall context. A number dialled there that matches one of an
outcall's patterns is sent through its trunks, the first one first, the next one if it fails. Before
dialling, strip=N removes N leading digits and prefix= is put in front: '_0XXXXXXXXX strip=1 prefix=+33'
sends 0612345678 as +33612345678. callerid= presents that number instead of the caller's.

patterns:
  X any digit, Z 1-9, N 2-9, [1-5] a digit in a set, . one or more characters (at the end),
  ! zero or more (at the end); a pattern begins with '_', anything else is a literal number.

examples:
  pbx-admin outcall add national --trunk provider --trunk backup --pattern '_0XXXXXXXXX strip=1 prefix=+33'
  pbx-admin outcall add emergency --trunk provider --pattern 112 --pattern 15 --pattern 17 --pattern 18
  pbx-admin outcall add-pattern national _00. --strip 2 --prefix +
  pbx-admin outcall set-trunks national backup provider
  pbx-admin outcall list
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "outcall",
        help="create, change, delete and list outgoing call routes",
        description="Outcalls send the numbers internal users dial out through trunks.",
        epilog=EPILOG,
        formatter_class=RAW,
    )
    cmds = parser.add_subparsers(dest="outcall_command", metavar="ACTION", required=True)

    add = cmds.add_parser(
        "add",
        help="create an outcall",
        epilog=EPILOG,
        formatter_class=RAW,
        description="Create an outcall with its trunks (in order) and dial patterns.",
    )
    add.add_argument("name", help="outcall name: letters, digits, '_', '.', '-' (40 at most)")
    add.add_argument(
        "--trunk",
        action="append",
        required=True,
        metavar="TRUNK",
        help="trunk to dial through; repeat in order of preference",
    )
    add.add_argument("--pattern", action="append", default=[], metavar="PATTERN", help=PATTERN_HELP)
    add.add_argument("--context", default="outcall", help="outcall context (default outcall)")
    add.add_argument(
        "--internal-callerid",
        metavar="yes|no",
        nargs="?",
        const="yes",
        default="no",
        help="present the caller's internal number instead of the trunk's (alone: yes; default no)",
    )
    add.add_argument("--ring-seconds", default=60, help="how long the far end rings, 5-600 (default 60)")
    add.set_defaults(handler=_add)

    set_ = cmds.add_parser(
        "set",
        help="change an outcall's settings",
        formatter_class=RAW,
        description="Change an outcall; options not given are left as they are. Use "
        "set-trunks, add-pattern and remove-pattern for trunks and patterns.",
        epilog="example:\n  pbx-admin outcall set national --ring-seconds 45",
    )
    set_.add_argument("outcall", help="outcall name")
    set_.add_argument("--name", help="rename the outcall")
    set_.add_argument("--internal-callerid", metavar="yes|no", help="present the caller's internal number")
    set_.add_argument("--ring-seconds", help="how long the far end rings, 5-600")
    set_.set_defaults(handler=_set)

    trunks = cmds.add_parser(
        "set-trunks",
        help="replace an outcall's trunks, in order",
        formatter_class=RAW,
        description="Replace the trunks of an outcall; the first is tried first.",
        epilog="example:\n  pbx-admin outcall set-trunks national backup provider",
    )
    trunks.add_argument("outcall", help="outcall name")
    trunks.add_argument("trunks", nargs="+", metavar="TRUNK", help="trunk names in order of preference")
    trunks.set_defaults(handler=_set_trunks)

    pattern = cmds.add_parser(
        "add-pattern",
        help="add a dial pattern to an outcall",
        formatter_class=RAW,
        description="Add a dial pattern. See pbx-admin outcall --help for the syntax.",
        epilog="examples:\n  pbx-admin outcall add-pattern national _0XXXXXXXXX "
        "--strip 1 --prefix +33\n  pbx-admin outcall add-pattern emergency 112",
    )
    pattern.add_argument("outcall", help="outcall name")
    pattern.add_argument("pattern", help="a literal number or a pattern beginning with '_'")
    pattern.add_argument("--strip", default=0, help="leading digits to remove, 0-20 (default 0)")
    pattern.add_argument("--prefix", default="", help="digits to put in front, optional leading '+'")
    pattern.add_argument("--callerid", help="number to present for calls matching this pattern")
    pattern.set_defaults(handler=_add_pattern)

    unpattern = cmds.add_parser(
        "remove-pattern",
        help="remove a dial pattern from an outcall",
        description="Remove a dial pattern from an outcall.",
        epilog="example:\n  pbx-admin outcall remove-pattern national _00.",
        formatter_class=RAW,
    )
    unpattern.add_argument("outcall", help="outcall name")
    unpattern.add_argument("pattern", help="the pattern as listed")
    unpattern.set_defaults(handler=_remove_pattern)

    delete = cmds.add_parser(
        "delete",
        help="delete an outcall with its patterns (the trunks stay)",
        description="Delete an outcall with its patterns; its trunks are kept.",
    )
    delete.add_argument("outcall", help="outcall name")
    delete.set_defaults(handler=_delete)

    show = cmds.add_parser(
        "list", help="list outcalls with their trunks and patterns", description="List every outcall."
    )
    show.set_defaults(handler=_list)

    show_one = cmds.add_parser(
        "show",
        help="show one outcall",
        description="Show one outcall, with the fields of outcall list.",
        epilog="example:\n  pbx-admin outcall show national",
        formatter_class=RAW,
    )
    show_one.add_argument("outcall", help="outcall name")
    show_one.set_defaults(handler=_show)


def _add(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        outcall_id = outcalls.create_outcall(
            conn,
            args.name,
            context=args.context,
            trunks=args.trunk,
            patterns=args.pattern,
            internal_callerid=args.internal_callerid,
            ring_seconds=args.ring_seconds,
        )
    ctx.emit({"id": outcall_id, "name": args.name, "trunks": args.trunk})
    return 0


def _set(ctx: Context, args: argparse.Namespace) -> int:
    if all(v is None for v in (args.name, args.internal_callerid, args.ring_seconds)):
        raise CommandError("nothing to change: give at least one option")
    with ctx.write() as conn:
        changed = outcalls.update_outcall(
            conn,
            args.outcall,
            new_name=args.name,
            internal_callerid=args.internal_callerid,
            ring_seconds=args.ring_seconds,
        )
    ctx.emit({"changed": changed})
    return 0


def _set_trunks(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        outcalls.set_trunks(conn, args.outcall, args.trunks)
    ctx.emit({"outcall": args.outcall, "trunks": args.trunks})
    return 0


def _add_pattern(ctx: Context, args: argparse.Namespace) -> int:
    pattern = outcalls.OutcallPattern(args.pattern, args.strip, args.prefix, args.callerid)
    with ctx.write() as conn:
        outcalls.add_pattern(conn, args.outcall, pattern)
    ctx.emit({"outcall": args.outcall, "pattern": args.pattern})
    return 0


def _remove_pattern(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        outcalls.remove_pattern(conn, args.outcall, args.pattern)
    ctx.emit({"outcall": args.outcall, "removed": args.pattern})
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        outcalls.delete_outcall(conn, args.outcall)
    ctx.emit({"deleted": args.outcall})
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = outcalls.list_outcalls(conn)
    ctx.emit(rows, ["name", "context", "trunks", "patterns", "internal_callerid", "ring_seconds"], text=_text)
    return 0


def _show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        [row] = outcalls.list_outcalls(conn, outcalls.outcall_id(conn, args.outcall))
    ctx.emit(row, text=_text)
    return 0


def _text(row: dict[str, Any]) -> dict[str, Any]:
    """Patterns as they are typed: 'PATTERN strip=N prefix=P callerid=NUMBER'."""
    return row | {"patterns": "; ".join(str(outcalls.OutcallPattern(**p)) for p in row["patterns"])}
