"""pbx-admin queue: call queues and their members (users or agents)."""

from __future__ import annotations

import argparse
from typing import Any

from confdb.cli.context import CommandError, Context
from confdb.writer import agents, destinations, queues

RAW = argparse.RawDescriptionHelpFormatter

# (flag, writer keyword, help); values go to the writer as typed, which validates them and names the field.
OPTIONS = (
    ("--display-name", "display_name", "name shown on phones and in CTI clients (default: the queue name)"),
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
)

EPILOG = """\
examples:
  pbx-admin queue add support --display-name "Support team" --strategy rrmemory --exten 3000
  pbx-admin queue add-member support --user 1001 --penalty 1
  pbx-admin queue add-member support --agent 8001
  pbx-admin queue set support --member-timeout 20 --announce-position yes
  pbx-admin --json queue members support
"""


def _add_options(parser: argparse.ArgumentParser) -> None:
    for flag, dest, helptext in OPTIONS:
        parser.add_argument(flag, dest=f"opt_{dest}", metavar="VALUE", help=helptext)
    parser.add_argument(
        "--announce-position",
        dest="opt_announce_position",
        metavar="yes|no",
        nargs="?",
        const="yes",
        help="tell waiting callers their position (alone: yes)",
    )


def _given(args: argparse.Namespace) -> dict[str, Any]:
    keys = [dest for _, dest, _ in OPTIONS] + ["announce_position"]
    return {k: getattr(args, f"opt_{k}") for k in keys if getattr(args, f"opt_{k}") is not None}


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

    add = cmds.add_parser(
        "add",
        help="create a queue",
        formatter_class=RAW,
        description="Create a queue. With --exten, internal phones reach it at that extension.",
        epilog="examples:\n  pbx-admin queue add support --display-name 'Support team' --exten 3000\n"
        "  pbx-admin queue add sales --strategy linear --member-timeout 20 --announce-position",
    )
    add.add_argument("name", help="queue name: letters, digits, '_', '.', '-' (40 at most)")
    add.add_argument("--exten", help="extension number that reaches the queue")
    add.add_argument(
        "--context", default="internal", help="internal context of the extension (default internal)"
    )
    _add_options(add)
    add.set_defaults(handler=_add)

    set_ = cmds.add_parser(
        "set",
        help="change a queue's settings",
        formatter_class=RAW,
        description="Change settings of a queue; options not given are left as they are.",
        epilog="examples:\n  pbx-admin queue set support --strategy leastrecent --wrapup-seconds 10\n"
        "  pbx-admin queue set support --exten 3001\n  pbx-admin queue set support --no-exten",
    )
    set_.add_argument("queue", help="queue name")
    set_.add_argument("--name", help="rename the queue")
    exten = set_.add_mutually_exclusive_group()
    exten.add_argument("--exten", help="new extension number")
    exten.add_argument("--no-exten", action="store_true", help="remove the queue's extension")
    set_.add_argument("--context", help="move the extension to this internal context")
    _add_options(set_)
    set_.set_defaults(handler=_set)

    delete = cmds.add_parser(
        "delete",
        help="delete a queue with its extension and memberships",
        description="Delete a queue. Refused while an incall or a schedule sends calls to it.",
    )
    delete.add_argument("queue", help="queue name")
    delete.set_defaults(handler=_delete)

    show = cmds.add_parser(
        "list", help="list queues with their extension and member count", description="List every queue."
    )
    show.set_defaults(handler=_list)

    show_one = cmds.add_parser(
        "show",
        help="show one queue",
        description="Show one queue, with the fields of queue list.",
        epilog="example:\n  pbx-admin queue show support",
        formatter_class=RAW,
    )
    show_one.add_argument("queue", help="queue name")
    show_one.set_defaults(handler=_show)

    members = cmds.add_parser(
        "members",
        help="list a queue's members in order",
        description="List the members of a queue in ring order (linear strategy).",
    )
    members.add_argument("queue", help="queue name")
    members.set_defaults(handler=_members)

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


def _add(ctx: Context, args: argparse.Namespace) -> int:
    options = _given(args)
    display_name = options.pop("display_name", args.name)
    with ctx.write() as conn:
        queue_id = queues.create_queue(
            conn, args.name, display_name, exten=args.exten, context=args.context, **options
        )
    ctx.emit({"id": queue_id, "name": args.name, "exten": args.exten})
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
        changed = queues.update_queue(conn, args.queue, **changes)
    ctx.emit({"changed": changed})
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        queues.delete_queue(conn, args.queue)
    ctx.emit({"deleted": args.queue})
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = queues.list_queues(conn)
    ctx.emit(
        rows,
        [
            "name",
            "display_name",
            "strategy",
            "extensions",
            "members",
            "member_timeout",
            "wrapup_seconds",
            "announce_position",
        ],
    )
    return 0


def _show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        [row] = queues.list_queues(conn, queues.queue_id(conn, args.queue))
    ctx.emit(row)
    return 0


def _members(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = queues.list_members(conn, args.queue)
    ctx.emit(rows, ["position", "kind", "number", "name", "penalty", "id"])
    return 0


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
