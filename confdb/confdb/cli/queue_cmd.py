"""pbx-admin queue: call queues and their members (users or agents)."""

from __future__ import annotations

import argparse
from typing import Any

from confdb.cli import distribution
from confdb.cli.context import Context
from confdb.writer import agents, destinations, queues

RAW = argparse.RawDescriptionHelpFormatter

SETTINGS = distribution.Settings(
    (
        (
            "--display-name",
            "display_name",
            "name shown on phones and in CTI clients (default: the queue name)",
        ),
        (
            "--strategy",
            "strategy",
            "how members are rung: ringall, leastrecent, fewestcalls, random, rrmemory, "
            "rrordered, linear (in member order), wrandom (default ringall)",
        ),
        (
            "--member-timeout",
            "member_timeout",
            "seconds a member's phone rings before the next try, 1-600 (default 15)",
        ),
        ("--retry-seconds", "retry_seconds", "pause before ringing members again, 0-600 (default 5)"),
        (
            "--wrapup-seconds",
            "wrapup_seconds",
            "rest after a call before a member is rung again, 0-3600 (default 0)",
        ),
        ("--max-waiting", "max_waiting", "callers allowed to wait, 0 = no limit, up to 10000 (default 0)"),
        (
            "--max-wait-seconds",
            "max_wait_seconds",
            "longest wait before the caller leaves the queue, 0 = no limit, up to 86400 (default 0)",
        ),
        ("--music-class", "music_class", "music on hold class (default: default)"),
        ("--weight", "weight", "priority over other queues sharing members, 0-100 (default 0)"),
    ),
    ("--announce-position", "announce_position", "tell waiting callers their position (alone: yes)"),
)

QUEUES = distribution.Numbered(
    kind="queue",
    label="queue",
    settings=SETTINGS,
    create=queues.create_queue,
    update=queues.update_queue,
    delete=queues.delete_queue,
    find_id=queues.queue_id,
    list_all=queues.list_queues,
    list_members=queues.list_members,
    list_columns=(
        "name",
        "display_name",
        "strategy",
        "extensions",
        "members",
        "member_timeout",
        "wrapup_seconds",
        "announce_position",
    ),
    member_columns=("position", "kind", "number", "name", "penalty", "id"),
)

EPILOG = """\
examples:
  pbx-admin queue add support --display-name "Support team" --strategy rrmemory --exten 3000
  pbx-admin queue add-member support --user 1001 --penalty 1
  pbx-admin queue add-member support --agent 8001
  pbx-admin queue set support --member-timeout 20 --announce-position yes
  pbx-admin --json queue members support
"""


def _member_options(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="USER", help="a user, by extension, CTI login or id")
    who.add_argument("--agent", metavar="NUMBER", help="an agent, by number")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "queue",
        help="create, change, delete and list call queues and their members",
        description="Call queues: callers wait in line, with music, until a member answers. Members are "
        "users (their phones ring) or agents (who log in from any phone).",
        epilog=EPILOG,
        formatter_class=RAW,
    )
    cmds = parser.add_subparsers(dest="queue_command", metavar="ACTION", required=True)

    distribution.register_objects(
        cmds,
        QUEUES,
        add_epilog="examples:\n  pbx-admin queue add support --display-name 'Support team' --exten 3000\n"
        "  pbx-admin queue add sales --strategy linear --member-timeout 20 --announce-position",
        set_epilog="examples:\n  pbx-admin queue set support --strategy leastrecent --wrapup-seconds 10\n"
        "  pbx-admin queue set support --exten 3001\n  pbx-admin queue set support --no-exten",
        show_epilog="example:\n  pbx-admin queue show support",
        delete_help="delete a queue with its extension and memberships",
        list_help="list queues with their extension and member count",
        members_help="list a queue's members in order",
    )

    join = cmds.add_parser(
        "add-member",
        help="add a user or an agent to a queue",
        formatter_class=RAW,
        description="Add a member after the current ones. A member with a lower penalty is rung first.",
        epilog="examples:\n  pbx-admin queue add-member support --user 1001\n"
        "  pbx-admin queue add-member support --agent 8001 --penalty 2",
    )
    join.add_argument("queue", help="queue name")
    _member_options(join)
    join.add_argument("--penalty", default=0, help="0-99; lower is rung first (default 0)")
    join.set_defaults(handler=_add_member)

    change = cmds.add_parser(
        "set-member",
        help="change a member's penalty",
        description="Change the penalty of a queue member.",
        epilog="example:\n  pbx-admin queue set-member support --user 1001 --penalty 5",
        formatter_class=RAW,
    )
    change.add_argument("queue", help="queue name")
    _member_options(change)
    change.add_argument("--penalty", required=True, help="0-99; lower is rung first")
    change.set_defaults(handler=_set_member)

    leave = cmds.add_parser(
        "remove-member",
        help="take a user or an agent out of a queue",
        description="Remove a member from a queue.",
        epilog="example:\n  pbx-admin queue remove-member support --agent 8001",
        formatter_class=RAW,
    )
    leave.add_argument("queue", help="queue name")
    _member_options(leave)
    leave.set_defaults(handler=_remove_member)


def _member(conn: Any, args: argparse.Namespace) -> dict[str, int]:
    queues.queue_id(conn, args.queue)  # a missing queue is reported before the member
    if args.user is not None:
        return {"user_id": destinations.find_user(conn, args.user)}
    return {"agent_id": agents.agent_id(conn, args.agent)}


def _add_member(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        member = _member(conn, args)
        queues.add_member(conn, args.queue, penalty=args.penalty, **member)
    ctx.emit({"queue": args.queue, **member})
    return 0


def _set_member(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        member = _member(conn, args)
        queues.update_member(conn, args.queue, penalty=args.penalty, **member)
    ctx.emit({"queue": args.queue, **member, "penalty": args.penalty})
    return 0


def _remove_member(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        member = _member(conn, args)
        queues.remove_member(conn, args.queue, **member)
    ctx.emit({"queue": args.queue, "removed": args.user or args.agent})
    return 0
