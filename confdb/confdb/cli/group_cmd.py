"""pbx-admin group: ring groups and their members."""

from __future__ import annotations

import argparse
from typing import Any

from confdb.cli.context import CommandError, Context
from confdb.writer import destinations, groups

RAW = argparse.RawDescriptionHelpFormatter

OPTIONS = (
    ("--display-name", "display_name", "name shown on phones (default: the group name)"),
    (
        "--strategy",
        "strategy",
        "ringall (every member at once), linear (in member order), rrmemory (round "
        "robin), leastrecent, random (default ringall)",
    ),
    (
        "--ring-seconds",
        "ring_seconds",
        "how long the group rings before the call fails over, 5-600 (default 30)",
    ),
)

EPILOG = """\
examples:
  pbx-admin group add sales --display-name Sales --exten 2000
  pbx-admin group add-member sales 1001
  pbx-admin group add-member sales alice --position 0
  pbx-admin group set sales --strategy linear --ring-seconds 20
  pbx-admin group members sales
"""


def _add_options(parser: argparse.ArgumentParser) -> None:
    for flag, dest, helptext in OPTIONS:
        parser.add_argument(flag, dest=f"opt_{dest}", metavar="VALUE", help=helptext)
    parser.add_argument(
        "--ring-in-use",
        dest="opt_ring_in_use",
        metavar="yes|no",
        nargs="?",
        const="yes",
        help="also ring members already on a call (alone: yes; default no)",
    )


def _given(args: argparse.Namespace) -> dict[str, Any]:
    keys = [dest for _, dest, _ in OPTIONS] + ["ring_in_use"]
    return {k: getattr(args, f"opt_{k}") for k in keys if getattr(args, f"opt_{k}") is not None}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "group",
        help="create, change, delete and list ring groups and their members",
        description="Ring groups: one number that rings several users, together or in turn. Unlike a queue, "
        "callers do not wait in line.",
        epilog=EPILOG,
        formatter_class=RAW,
    )
    cmds = parser.add_subparsers(dest="group_command", metavar="ACTION", required=True)

    add = cmds.add_parser(
        "add",
        help="create a ring group",
        formatter_class=RAW,
        description="Create a ring group. With --exten, internal phones reach it at that extension.",
        epilog="examples:\n  pbx-admin group add sales --display-name Sales --exten 2000\n"
        "  pbx-admin group add hotline --strategy linear --ring-seconds 15 --ring-in-use",
    )
    add.add_argument("name", help="group name: letters, digits, '_', '.', '-' (40 at most)")
    add.add_argument("--exten", help="extension number that reaches the group")
    add.add_argument(
        "--context", default="internal", help="internal context of the extension (default internal)"
    )
    _add_options(add)
    add.set_defaults(handler=_add)

    set_ = cmds.add_parser(
        "set",
        help="change a ring group's settings",
        formatter_class=RAW,
        description="Change settings of a ring group; options not given are left as they are.",
        epilog="examples:\n  pbx-admin group set sales --strategy linear\n"
        "  pbx-admin group set sales --no-exten",
    )
    set_.add_argument("group", help="group name")
    set_.add_argument("--name", help="rename the group")
    exten = set_.add_mutually_exclusive_group()
    exten.add_argument("--exten", help="new extension number")
    exten.add_argument("--no-exten", action="store_true", help="remove the group's extension")
    set_.add_argument("--context", help="move the extension to this internal context")
    _add_options(set_)
    set_.set_defaults(handler=_set)

    delete = cmds.add_parser(
        "delete",
        help="delete a ring group with its extension and members",
        description="Delete a ring group. Refused while an incall or a schedule sends calls to it.",
    )
    delete.add_argument("group", help="group name")
    delete.set_defaults(handler=_delete)

    show = cmds.add_parser("list", help="list ring groups", description="List every ring group.")
    show.set_defaults(handler=_list)

    show_one = cmds.add_parser(
        "show",
        help="show one ring group",
        description="Show one ring group, with the fields of group list.",
        epilog="example:\n  pbx-admin group show sales",
        formatter_class=RAW,
    )
    show_one.add_argument("group", help="group name")
    show_one.set_defaults(handler=_show)

    members = cmds.add_parser(
        "members",
        help="list a group's members in ring order",
        description="List the members of a ring group in ring order (linear strategy).",
    )
    members.add_argument("group", help="group name")
    members.set_defaults(handler=_members)

    join = cmds.add_parser(
        "add-member",
        help="add a user to a ring group",
        formatter_class=RAW,
        description="Add a user. Without --position it rings after the current members (linear strategy).",
        epilog="examples:\n  pbx-admin group add-member sales 1001\n"
        "  pbx-admin group add-member sales bob --position 0 --penalty 1",
    )
    join.add_argument("group", help="group name")
    join.add_argument("user", help="a user, by extension, CTI login or id")
    join.add_argument("--penalty", default=0, help="0-99 (default 0)")
    join.add_argument("--position", help="place in the ring order, 0 first (default: last)")
    join.set_defaults(handler=_add_member)

    change = cmds.add_parser(
        "set-member",
        help="change a member's position or penalty",
        description="Change the ring position or the penalty of a member.",
        epilog="example:\n  pbx-admin group set-member sales 1001 --position 3",
        formatter_class=RAW,
    )
    change.add_argument("group", help="group name")
    change.add_argument("user", help="a user, by extension, CTI login or id")
    change.add_argument("--penalty", help="0-99")
    change.add_argument("--position", help="place in the ring order, 0 first")
    change.set_defaults(handler=_set_member)

    leave = cmds.add_parser(
        "remove-member",
        help="take a user out of a ring group",
        description="Remove a member from a ring group.",
        epilog="example:\n  pbx-admin group remove-member sales 1001",
        formatter_class=RAW,
    )
    leave.add_argument("group", help="group name")
    leave.add_argument("user", help="a user, by extension, CTI login or id")
    leave.set_defaults(handler=_remove_member)


def _add(ctx: Context, args: argparse.Namespace) -> int:
    options = _given(args)
    display_name = options.pop("display_name", args.name)
    with ctx.write() as conn:
        group_id = groups.create_group(
            conn, args.name, display_name, exten=args.exten, context=args.context, **options
        )
    ctx.emit({"id": group_id, "name": args.name, "exten": args.exten})
    return 0


def _set(ctx: Context, args: argparse.Namespace) -> int:
    changes = _given(args)
    if args.name is not None:
        changes["name"] = args.name
    if args.exten is not None or args.no_exten:
        changes["exten"] = None if args.no_exten else args.exten
    if args.context is not None:
        changes["context"] = args.context
    if not changes:
        raise CommandError("nothing to change: give at least one option")
    with ctx.write() as conn:
        changed = groups.update_group(conn, args.group, **changes)
    ctx.emit({"changed": changed})
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        groups.delete_group(conn, args.group)
    ctx.emit({"deleted": args.group})
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = groups.list_groups(conn)
    ctx.emit(
        rows, ["name", "display_name", "strategy", "extensions", "members", "ring_seconds", "ring_in_use"]
    )
    return 0


def _show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        [row] = groups.list_groups(conn, groups.group_id(conn, args.group))
    ctx.emit(row)
    return 0


def _members(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = groups.list_members(conn, args.group)
    ctx.emit(rows, ["position", "exten", "name", "penalty", "user_id"])
    return 0


def _user(conn: Any, args: argparse.Namespace) -> int:
    groups.group_id(conn, args.group)  # a missing group is reported before the user
    return destinations.find_user(conn, args.user)


def _add_member(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        user_id = _user(conn, args)
        groups.add_member(conn, args.group, user_id, penalty=args.penalty, position=args.position)
    ctx.emit({"group": args.group, "user_id": user_id})
    return 0


def _set_member(ctx: Context, args: argparse.Namespace) -> int:
    if args.penalty is None and args.position is None:
        raise CommandError("nothing to change: give --penalty or --position")
    with ctx.write() as conn:
        user_id = _user(conn, args)
        changed = groups.update_member(
            conn, args.group, user_id, penalty=args.penalty, position=args.position
        )
    ctx.emit({"changed": changed})
    return 0


def _remove_member(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        user_id = _user(conn, args)
        groups.remove_member(conn, args.group, user_id)
    ctx.emit({"group": args.group, "removed": user_id})
    return 0
