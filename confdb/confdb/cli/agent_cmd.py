"""pbx-admin agent: call-centre agents."""

from __future__ import annotations

import argparse
from typing import Any

from confdb.cli.context import CommandError, Context
from confdb.writer import agents, destinations

RAW = argparse.RawDescriptionHelpFormatter

OPTIONS = (
    ("--firstname", "firstname", "first name"),
    ("--lastname", "lastname", "last name"),
    ("--language", "language", "prompts language such as en_US or fr_FR (default en_US)"),
    ("--wrapup-seconds", "wrapup_seconds", "rest after each queue call, 0-3600 (default 0)"),
)


def _add_options(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    for flag, dest, helptext in OPTIONS:
        required = creating and dest == "firstname"
        parser.add_argument(flag, dest=f"opt_{dest}", metavar="VALUE", help=helptext, required=required)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    return {
        dest: getattr(args, f"opt_{dest}")
        for _, dest, _ in OPTIONS
        if getattr(args, f"opt_{dest}") is not None
    }


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "agent",
        help="create, change, delete and list call-centre agents",
        description="Agents log in to their queues from any phone with their number. An agent may be tied to "
        "a user (their own phone, their CTI client).",
        epilog="examples:\n  pbx-admin agent add 8001 --firstname Carol --lastname Smith --user 1003\n"
        "  pbx-admin queue add-member support --agent 8001\n  pbx-admin agent list",
        formatter_class=RAW,
    )
    cmds = parser.add_subparsers(dest="agent_command", metavar="ACTION", required=True)

    add = cmds.add_parser(
        "add",
        help="create an agent",
        formatter_class=RAW,
        description="Create an agent.",
        epilog="examples:\n  pbx-admin agent add 8001 --firstname Carol\n"
        "  pbx-admin agent add 8002 --firstname Dan --lastname Lee --language fr_FR --user dan",
    )
    add.add_argument("number", help="the agent's number, digits only (typed on a keypad to log in)")
    _add_options(add, creating=True)
    add.add_argument("--user", help="tie the agent to this user (extension, CTI login or id)")
    add.set_defaults(handler=_add)

    set_ = cmds.add_parser(
        "set",
        help="change an agent",
        formatter_class=RAW,
        description="Change an agent; options not given are left as they are.",
        epilog="examples:\n  pbx-admin agent set 8001 --wrapup-seconds 15\n"
        "  pbx-admin agent set 8001 --no-user",
    )
    set_.add_argument("agent", help="agent number")
    set_.add_argument("--number", help="new agent number")
    _add_options(set_, creating=False)
    user = set_.add_mutually_exclusive_group()
    user.add_argument("--user", help="tie the agent to this user (extension, CTI login or id)")
    user.add_argument("--no-user", action="store_true", help="untie the agent from its user")
    set_.set_defaults(handler=_set)

    delete = cmds.add_parser(
        "delete",
        help="delete an agent and its queue memberships",
        description="Delete an agent; it leaves every queue.",
    )
    delete.add_argument("agent", help="agent number")
    delete.set_defaults(handler=_delete)

    show = cmds.add_parser("list", help="list agents with their queues", description="List every agent.")
    show.set_defaults(handler=_list)

    show_one = cmds.add_parser(
        "show",
        help="show one agent",
        description="Show one agent, with the fields of agent list.",
        epilog="example:\n  pbx-admin agent show 8001",
        formatter_class=RAW,
    )
    show_one.add_argument("agent", help="agent number")
    show_one.set_defaults(handler=_show)


def _add(ctx: Context, args: argparse.Namespace) -> int:
    options = _given(args)
    with ctx.write() as conn:
        user_id = destinations.find_user(conn, args.user) if args.user else None
        agent_id = agents.create_agent(
            conn,
            args.number,
            options.pop("firstname"),
            options.pop("lastname", ""),
            user_id=user_id,
            **options,
        )
    ctx.emit({"id": agent_id, "number": args.number, "user_id": user_id})
    return 0


def _set(ctx: Context, args: argparse.Namespace) -> int:
    changes = _given(args)
    if args.number is not None:
        changes["number"] = args.number
    if args.no_user:
        changes["user_id"] = None
    if not changes and args.user is None:
        raise CommandError("nothing to change: give at least one option")
    with ctx.write() as conn:
        if args.user is not None:
            changes["user_id"] = destinations.find_user(conn, args.user)
        changed = agents.update_agent(conn, args.agent, **changes)
    ctx.emit({"changed": changed})
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        agents.delete_agent(conn, args.agent)
    ctx.emit({"deleted": args.agent})
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = agents.list_agents(conn)
    ctx.emit(rows, ["number", "firstname", "lastname", "language", "wrapup_seconds", "user_id", "queues"])
    return 0


def _show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        [row] = agents.list_agents(conn, agents.agent_id(conn, args.agent))
    ctx.emit(row)
    return 0
