"""pbx-admin line: SIP lines (the accounts phones register with) and their secrets."""

from __future__ import annotations

import argparse
from typing import Any

from confdb.cli.context import CommandError, Context
from confdb.writer import lines, user_links, users

RAW = argparse.RawDescriptionHelpFormatter
COLUMNS = ["name", "context", "users", "codecs", "max_contacts", "device", "enabled"]
LINE_REF = "a line name, or a user (extension, CTI login, UUID or id) for that user's main line"

EPILOG = """\
A line is what a phone registers with: its name is the SIP user name, its secret is generated and
printed once (only a digest is stored). `pbx-admin user add --exten ...` creates one per user; a line
shared by several users (one phone on a desk two people use) is joined with `user add-line`.

examples:
  pbx-admin line list --user 1001
  pbx-admin line show 1001
  pbx-admin line reset-secret 1001
  pbx-admin line add --user 1001 --codecs g722,alaw
  pbx-admin line set k3x9q2ab --max-contacts 3
"""


def _text(row: dict[str, Any]) -> dict[str, Any]:
    """Users by name, the main one marked with '*' (as user list marks the main line)."""
    names = [u["name"] + ("*" if u["id"] == row["main_user"] else "") for u in row["users"]]
    return row | {
        "users": names,
        "device": f"{row['device']} key {row['device_position']}" if row["device"] else "",
    }


def _settings(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    parser.add_argument(
        "--context",
        default="internal" if creating else None,
        help="internal context the phone dials in" + (" (default internal)" if creating else ""),
    )
    parser.add_argument(
        "--codecs",
        help="comma-separated codecs in order of preference"
        + (" (default g722,alaw,ulaw)" if creating else ""),
    )
    parser.add_argument(
        "--max-contacts",
        metavar="N",
        help="phones that may register with the line at once, 1-10" + (" (default 1)" if creating else ""),
    )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "line",
        help="list, show, create, change and delete SIP lines; reset their secrets",
        description="SIP lines: the accounts phones register with.",
        epilog=EPILOG,
        formatter_class=RAW,
    )
    cmds = parser.add_subparsers(dest="line_command", metavar="ACTION", required=True)

    show_all = cmds.add_parser(
        "list",
        help="list lines with their users (main user marked *)",
        description="List lines by name, with their users (the main user, whose caller ID the line "
        "presents, marked *), codecs and the device carrying them.",
        epilog="examples:\n  pbx-admin line list\n  pbx-admin line list --user alice --json",
        formatter_class=RAW,
    )
    show_all.add_argument("--user", help="only the lines of this user (extension, CTI login, UUID or id)")
    show_all.set_defaults(handler=_list)

    show = cmds.add_parser(
        "show",
        help="show one line",
        description="Show one line, with the fields of line list.",
        epilog="examples:\n  pbx-admin line show k3x9q2ab\n  pbx-admin line show 1001",
        formatter_class=RAW,
    )
    show.add_argument("line", help=LINE_REF)
    show.set_defaults(handler=_show)

    add = cmds.add_parser(
        "add",
        help="create a line and print its secret once",
        description="Create a line (name and secret generated unless --name is given); the secret is "
        "printed once. With --user, that user joins it (its main line if it had none).",
        epilog="examples:\n  pbx-admin line add --user 1001\n  pbx-admin line add --name lobby --codecs alaw",
        formatter_class=RAW,
    )
    add.add_argument(
        "--name", help="line name: letters, digits, '_', '.', '-' (default: 8 random characters)"
    )
    add.add_argument("--user", help="put this user on the line (extension, CTI login, UUID or id)")
    _settings(add, creating=True)
    add.set_defaults(handler=_add)

    set_ = cmds.add_parser(
        "set",
        help="change a line",
        description="Change a line; options not given are left as they are. The name cannot change: "
        "the secret's digest is made from it (create a new line instead).",
        epilog="examples:\n  pbx-admin line set k3x9q2ab --codecs opus,g722\n"
        "  pbx-admin line set 1001 --enabled no",
        formatter_class=RAW,
    )
    set_.add_argument("line", help=LINE_REF)
    _settings(set_, creating=False)
    set_.add_argument("--enabled", metavar="yes|no", help="a disabled line cannot register or be rung")
    set_.set_defaults(handler=_set)

    delete = cmds.add_parser(
        "delete",
        help="delete a line (its users stay, without it)",
        description="Delete a line; its users stay, without this line (the next one becomes main).",
        epilog="example:\n  pbx-admin line delete k3x9q2ab",
        formatter_class=RAW,
    )
    delete.add_argument("line", help="line name")
    delete.set_defaults(handler=_delete)

    secret = cmds.add_parser(
        "reset-secret",
        help="generate a new SIP secret and print it once",
        description="Generate a new secret for a line and print it once; the phone must be given it "
        "to register again. Same as pbx-admin user reset-secret.",
        epilog="examples:\n  pbx-admin line reset-secret 1001\n  pbx-admin line reset-secret k3x9q2ab",
        formatter_class=RAW,
    )
    add_reset_arguments(secret)
    secret.set_defaults(handler=reset_secret)


def add_reset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("line", metavar="LINE|USER", help=LINE_REF)
    parser.add_argument("--line", dest="pick", metavar="NAME", help="another of that user's lines")


def reset_secret(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        _, name = user_links.find_line(conn, args.line, line=args.pick)
        secret = lines.reset_secret(conn, name)
    ctx.emit({"line": name, "sip_username": name, "sip_secret": secret})
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        user = users.find_user(conn, args.user) if args.user else None
        rows = lines.list_lines(conn, user=user)
    ctx.emit(rows, COLUMNS, text=_text)
    return 0


def _show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        line_id, _ = user_links.find_line(conn, args.line)
        [row] = lines.list_lines(conn, line=line_id)
    ctx.emit(row, text=_text)
    return 0


def _add(ctx: Context, args: argparse.Namespace) -> int:
    options: dict[str, Any] = {"context": args.context, "name": args.name}
    if args.codecs is not None:
        options["codecs"] = args.codecs.split(",")
    if args.max_contacts is not None:
        options["max_contacts"] = args.max_contacts
    with ctx.write() as conn:
        user = users.find_user(conn, args.user) if args.user else None
        new = lines.create_line(conn, **options)
        if user is not None:
            lines.associate(conn, user, new.id)
    ctx.emit({"id": new.id, "line": new.name, "sip_username": new.auth_username, "sip_secret": new.secret})
    return 0


def _set(ctx: Context, args: argparse.Namespace) -> int:
    changes = {
        k: getattr(args, k)
        for k in ("context", "codecs", "max_contacts", "enabled")
        if getattr(args, k) is not None
    }
    if not changes:
        raise CommandError("nothing to change: give at least one option")
    with ctx.write() as conn:
        _, name = user_links.find_line(conn, args.line)
        changed = lines.update_line(conn, name, changes)
    ctx.emit({"line": name, "changed": changed})
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        lines.delete_line(conn, lines.line_id(conn, args.line))
    ctx.emit({"deleted": args.line})
    return 0
