"""pbx-admin trunk: SIP trunks to providers."""

from __future__ import annotations

import argparse
from typing import Any

from confdb.cli.context import CommandError, Context, read_secret
from confdb.writer import trunks

RAW = argparse.RawDescriptionHelpFormatter

OPTIONS = (
    ("--host", "host", "provider's SIP server: hostname, IPv4 or [IPv6] address, optional :port"),
    ("--transport", "transport", "udp, tcp or tls (default udp)"),
    ("--codecs", "codecs", "comma-separated codecs in preference order (default alaw,ulaw)"),
    (
        "--auth-username",
        "auth_username",
        "user name the provider gave you (for registration and authentication)",
    ),
    ("--from-user", "from_user", "user part of the From header, when the provider requires one"),
)

EPILOG = """\
A trunk either registers to the provider (--register, with --auth-username and a password) or recognises
the provider's calls by their source address (--identify). The password is never given on the command line,
where any local user could read it: use --password-env VAR or --password-prompt.

examples:
  PROVIDER_PW=... pbx-admin trunk add provider --host sip.example.com --register \\
      --auth-username 0412345678 --password-env PROVIDER_PW
  pbx-admin trunk add carrier --host 192.0.2.10 --identify 192.0.2.10 --identify 198.51.100.0/24
  pbx-admin trunk set provider --password-prompt
  pbx-admin trunk list
"""


def _add_options(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    for flag, dest, helptext in OPTIONS:
        parser.add_argument(
            flag, dest=f"opt_{dest}", metavar="VALUE", help=helptext, required=creating and dest == "host"
        )
    parser.add_argument(
        "--register",
        dest="opt_register",
        metavar="yes|no",
        nargs="?",
        const="yes",
        help="register to the provider (alone: yes)",
    )
    parser.add_argument(
        "--identify",
        action="append",
        metavar="ADDRESS",
        help="provider address or network (CIDR) whose calls come in on this trunk; "
        "repeat or separate with commas" + ("" if creating else "; replaces the list"),
    )
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password-env", metavar="VAR", help="read the provider password from this variable")
    secret.add_argument(
        "--password-prompt",
        action="store_true",
        help="prompt for the provider password (or read one line from standard input)",
    )


def _given(args: argparse.Namespace) -> dict[str, Any]:
    keys = [dest for _, dest, _ in OPTIONS] + ["register"]
    values = {k: getattr(args, f"opt_{k}") for k in keys if getattr(args, f"opt_{k}") is not None}
    if args.identify is not None:
        values["identify"] = [item for group in args.identify for item in group.split(",") if item.strip()]
    password = _password(args)
    if password is not None:
        values["auth_password"] = password
    return values


def _password(args: argparse.Namespace) -> str | None:
    return read_secret(args.password_env, args.password_prompt, "provider password")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "trunk",
        help="create, change, delete and list SIP trunks",
        description="SIP trunks connect the PBX to telephone providers.",
        epilog=EPILOG,
        formatter_class=RAW,
    )
    cmds = parser.add_subparsers(dest="trunk_command", metavar="ACTION", required=True)

    add = cmds.add_parser(
        "add", help="create a trunk", description="Create a SIP trunk.", epilog=EPILOG, formatter_class=RAW
    )
    add.add_argument("name", help="trunk name: letters, digits, '_', '.', '-' (40 at most)")
    add.add_argument("--context", default="incall", help="incall context its calls enter (default incall)")
    _add_options(add, creating=True)
    add.set_defaults(handler=_add)

    set_ = cmds.add_parser(
        "set",
        help="change a trunk",
        formatter_class=RAW,
        description="Change a trunk; options not given are left as they are.",
        epilog="examples:\n  pbx-admin trunk set provider --codecs g722,alaw --transport tls\n"
        "  NEW_PW=... pbx-admin trunk set provider --password-env NEW_PW\n"
        "  pbx-admin trunk set carrier --enabled no",
    )
    set_.add_argument("trunk", help="trunk name")
    set_.add_argument("--name", help="rename the trunk")
    set_.add_argument("--context", help="incall context its calls enter")
    set_.add_argument("--enabled", help="yes or no")
    set_.add_argument("--clear-auth", action="store_true", help="remove the user name and password")
    _add_options(set_, creating=False)
    set_.set_defaults(handler=_set)

    delete = cmds.add_parser(
        "delete",
        help="delete a trunk",
        description="Delete a trunk. Refused while an outcall dials through it.",
    )
    delete.add_argument("trunk", help="trunk name")
    delete.set_defaults(handler=_delete)

    show = cmds.add_parser(
        "list",
        help="list trunks (passwords are never shown)",
        description="List every trunk; HAS_PASSWORD tells whether a password is set.",
    )
    show.set_defaults(handler=_list)

    show_one = cmds.add_parser(
        "show",
        help="show one trunk (never its password)",
        description="Show one trunk (never its password), with the fields of trunk list.",
        epilog="example:\n  pbx-admin trunk show provider",
        formatter_class=RAW,
    )
    show_one.add_argument("trunk", help="trunk name")
    show_one.set_defaults(handler=_show)


def _show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        [row] = trunks.list_trunks(conn, trunks.trunk_id(conn, args.trunk))
    ctx.emit(row)
    return 0


def _add(ctx: Context, args: argparse.Namespace) -> int:
    options = _given(args)
    host = options.pop("host")
    with ctx.write() as conn:
        trunk_id = trunks.create_trunk(conn, args.name, host, context=args.context, **options)
    ctx.emit({"id": trunk_id, "name": args.name})
    return 0


def _set(ctx: Context, args: argparse.Namespace) -> int:
    changes = _given(args)
    for name in ("name", "context", "enabled"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.clear_auth:
        if "auth_username" in changes or "auth_password" in changes:
            raise CommandError("--clear-auth cannot be combined with new credentials")
        changes |= {"auth_username": None, "auth_password": None}
    if not changes:
        raise CommandError("nothing to change: give at least one option")
    with ctx.write() as conn:
        changed = trunks.update_trunk(conn, args.trunk, **changes)
    ctx.emit({"changed": changed})
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        trunks.delete_trunk(conn, args.trunk)
    ctx.emit({"deleted": args.trunk})
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = trunks.list_trunks(conn)
    ctx.emit(
        rows,
        [
            "name",
            "host",
            "transport",
            "context",
            "register",
            "auth_username",
            "has_password",
            "identify",
            "codecs",
            "enabled",
            "outcalls",
        ],
    )
    return 0
