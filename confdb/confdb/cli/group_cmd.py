"""pbx-admin group: ring groups and their members."""

from __future__ import annotations

import argparse
from typing import Any

from confdb.cli import distribution
from confdb.cli.context import CommandError, Context
from confdb.writer import destinations, groups

RAW = argparse.RawDescriptionHelpFormatter

SETTINGS = distribution.Settings(
    (
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
    ),
    (
        "--ring-in-use",
        "ring_in_use",
        "also ring members already on a call (alone: yes; default no)",
    ),
)

GROUPS = distribution.Numbered(
    kind="group",
    label="ring group",
    settings=SETTINGS,
    create=groups.create_group,
    update=groups.update_group,
    delete=groups.delete_group,
    find_id=groups.group_id,
    list_all=groups.list_groups,
    list_members=groups.list_members,
    list_columns=("name", "display_name", "strategy", "extensions", "members", "ring_seconds", "ring_in_use"),
    member_columns=("position", "exten", "name", "penalty", "user_id"),
)


EPILOG = """\
examples:
  pbx-admin group add sales --display-name Sales --exten 2000
  pbx-admin group add-member sales 1001
  pbx-admin group add-member sales alice --position 0
  pbx-admin group set sales --strategy linear --ring-seconds 20
  pbx-admin group members sales
"""


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

    distribution.register_objects(
        cmds,
        GROUPS,
        add_epilog="examples:\n  pbx-admin group add sales --display-name Sales --exten 2000\n"
        "  pbx-admin group add hotline --strategy linear --ring-seconds 15 --ring-in-use",
        set_epilog="examples:\n  pbx-admin group set sales --strategy linear\n"
        "  pbx-admin group set sales --no-exten",
        show_epilog="example:\n  pbx-admin group show sales",
        delete_help="delete a ring group with its extension and members",
        list_help="list ring groups",
        members_help="list a group's members in ring order",
    )

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
