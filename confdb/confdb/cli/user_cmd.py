"""pbx-admin user: users with their line, extension and voicemail box."""

from __future__ import annotations

import argparse
from typing import Any

from confdb.cli import line_cmd
from confdb.cli.context import CommandError, Context, read_secret
from confdb.writer import lines, user_links, users
from confdb.writer.user_list import UserFilter, list_users, show_user

RAW = argparse.RawDescriptionHelpFormatter
USER_REF = "id, UUID, CTI login or extension"
COLUMNS = ["id", "firstname", "lastname", "extensions", "lines", "mailbox", "cti_login", "enabled", "dnd"]

# Options shared by add and set: (flag, USER_FIELDS key, help)
FIELD_OPTIONS = (
    ("--callerid-name", "callerid_name", "caller-ID name (default: first and last name)"),
    ("--callerid-num", "callerid_num", "caller-ID number (default: the extension)"),
    ("--language", "language", "language such as en_US or fr_FR (default en_US)"),
    ("--ring-seconds", "ring_seconds", "how long the user's phones ring, 5-600 (default 30)"),
    ("--simultaneous-calls", "simultaneous_calls", "calls the user may have at once, 1-20 (default 5)"),
    ("--dnd", "dnd", "do not disturb: yes or no"),
    ("--fwd-unconditional", "fwd_unconditional", "number for the unconditional forward"),
    ("--fwd-unconditional-enabled", "fwd_unconditional_enabled", "yes or no"),
    ("--fwd-busy", "fwd_busy", "number for the forward on busy"),
    ("--fwd-busy-enabled", "fwd_busy_enabled", "yes or no"),
    ("--fwd-noanswer", "fwd_noanswer", "number for the forward on no answer"),
    ("--fwd-noanswer-enabled", "fwd_noanswer_enabled", "yes or no"),
    ("--enabled", "enabled", "yes or no"),
)


def _add_field_options(parser: argparse.ArgumentParser) -> None:
    for flag, dest, helptext in FIELD_OPTIONS:
        parser.add_argument(flag, dest=f"field_{dest}", metavar="VALUE", help=helptext)


def _fields(args: argparse.Namespace) -> dict[str, str]:
    return {
        dest: getattr(args, f"field_{dest}")
        for _, dest, _ in FIELD_OPTIONS
        if getattr(args, f"field_{dest}") is not None
    }


def _cti_password(args: argparse.Namespace) -> str | None:
    return read_secret(args.cti_password_env, args.cti_password_prompt, "CTI password")


def _text(row: dict[str, Any]) -> dict[str, Any]:
    """The main line marked with '*' in text output (JSON has main_line)."""
    return row | {"lines": [n + ("*" if n == row["main_line"] else "") for n in row["lines"]]}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "user",
        help="create, change, delete and list users",
        description="Users of the PBX. A user is created with, in one transaction, "
        "its SIP line, its extension and optionally its voicemail box.",
        epilog="A user is named by its id, UUID, CTI login or extension.\n\n"
        "examples:\n  pbx-admin user add --firstname Alice --lastname Martin --exten 1001 --voicemail\n"
        "  pbx-admin user list --name martin\n  pbx-admin user show 1001\n"
        "  pbx-admin user set 1001 --exten 1005 --email alice@example.com\n"
        "  pbx-admin user reset-secret 1001",
        formatter_class=RAW,
    )
    cmds = parser.add_subparsers(dest="user_command", metavar="ACTION", required=True)

    add = cmds.add_parser(
        "add",
        help="create a user with line, extension and voicemail",
        description="Create a user. With --exten it gets a new SIP line (name and secret generated; "
        "the secret is printed once and stored only as a digest) unless --shared-line joins an existing line "
        "(a phone shared by several users) or --no-line is given.",
        epilog="examples:\n"
        "  pbx-admin user add --firstname Alice --lastname Martin --exten 1001 --voicemail\n"
        "  pbx-admin user add --firstname Bob --exten 1002 --shared-line k3x9q2ab\n"
        "  PW=s3cret-pass pbx-admin user add --firstname Carol --exten 1003 "
        "--cti-login carol --cti-password-env PW",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("--firstname", required=True, help="first name (128 characters at most)")
    add.add_argument("--lastname", default="", help="last name")
    add.add_argument("--exten", help="the user's extension number")
    add.add_argument(
        "--context", default="internal", help="internal context of the extension (default internal)"
    )
    line = add.add_mutually_exclusive_group()
    line.add_argument("--shared-line", metavar="LINE", help="join this existing line instead of a new one")
    line.add_argument("--no-line", action="store_true", help="create no line")
    add.add_argument(
        "--voicemail", action="store_true", help="create a voicemail box numbered like the extension"
    )
    add.add_argument("--voicemail-pin", metavar="PIN", help="4-16 digits (default: generated and printed)")
    add.add_argument("--email", help="where voicemail notifications go")
    add.add_argument("--cti-login", help="login for CTI clients (2-64 of a-z, 0-9, '.', '_', '-')")
    pw = add.add_mutually_exclusive_group()
    pw.add_argument("--cti-password-env", metavar="VAR", help="read the CTI password from this variable")
    pw.add_argument(
        "--cti-password-prompt",
        action="store_true",
        help="prompt for the CTI password (or read one line from standard input)",
    )
    _add_field_options(add)
    add.set_defaults(handler=_add)

    set_ = cmds.add_parser(
        "set",
        help="change a user's settings, extension or voicemail box",
        description="Change the user given by id, UUID, CTI login or extension; options not given are "
        "left as they are. All the changes land in one transaction, or none.",
        epilog="A new extension replaces the user's; a caller-ID number that was the old extension follows "
        "it. --context moves the extension, and the lines only this user uses, to another internal "
        "context. The voicemail box keeps its number when the extension changes.\n\n"
        "examples:\n  pbx-admin user set 1001 --exten 1005\n"
        "  pbx-admin user set alice --voicemail yes --email alice@example.com\n"
        "  pbx-admin user set 1001 --voicemail-pin 4321 --dnd yes\n"
        "  pbx-admin user set 1001 --no-exten",
        formatter_class=RAW,
    )
    set_.add_argument("user", help=USER_REF)
    set_.add_argument("--firstname", help="first name")
    set_.add_argument("--lastname", help="last name ('' removes it)")
    exten = set_.add_mutually_exclusive_group()
    exten.add_argument("--exten", help="new extension number (replaces the current one)")
    exten.add_argument("--no-exten", action="store_true", help="remove the user's extension")
    set_.add_argument("--context", help="move the extension to this internal context")
    set_.add_argument(
        "--voicemail", metavar="yes|no", help="yes: create a box numbered like the extension; no: delete it"
    )
    set_.add_argument("--voicemail-pin", metavar="PIN", help="new voicemail PIN, 4-16 digits")
    set_.add_argument("--email", help="where voicemail notifications go ('' removes the address)")
    set_.add_argument("--cti-login", help="login for CTI clients (needs a CTI password if it has none)")
    pw = set_.add_mutually_exclusive_group()
    pw.add_argument("--cti-password-env", metavar="VAR", help="read the new CTI password from this variable")
    pw.add_argument("--cti-password-prompt", action="store_true", help="prompt for the new CTI password")
    _add_field_options(set_)
    set_.set_defaults(handler=_set)

    delete = cmds.add_parser(
        "delete",
        help="delete a user, its extensions, voicemail and unshared lines",
        description="Delete a user with its extensions, its voicemail box and the lines nobody else uses. "
        "Refused while an incall or a schedule sends calls to the user.",
        epilog="example:\n  pbx-admin user delete 1001",
        formatter_class=RAW,
    )
    delete.add_argument("user", help=USER_REF)
    delete.set_defaults(handler=_delete)

    show_all = cmds.add_parser(
        "list",
        help="list users with their extensions and lines (main line marked *)",
        description="List users by id with their extensions, lines (the main line marked * in text; "
        "main_line in JSON) and voicemail box. Filters combine: every one given must match.",
        epilog="examples:\n  pbx-admin user list --name dupont\n  pbx-admin user list --exten 1001\n"
        "  pbx-admin user list --context internal --limit 50 --offset 100 --json",
        formatter_class=RAW,
    )
    show_all.add_argument(
        "--name", metavar="TEXT", help="first and last name or caller-ID name contains TEXT"
    )
    show_all.add_argument("--exten", help="has this extension")
    show_all.add_argument("--context", help="has an extension in this context")
    show_all.add_argument("--limit", metavar="N", help="at most N users")
    show_all.add_argument("--offset", metavar="N", default=0, help="skip the first N users (default 0)")
    show_all.set_defaults(handler=_list)

    show = cmds.add_parser(
        "show",
        help="show one user",
        description="Show one user with every setting: the fields of user list and more.",
        epilog="examples:\n  pbx-admin user show 1001\n  pbx-admin user show alice --json",
        formatter_class=RAW,
    )
    show.add_argument("user", help=USER_REF)
    show.set_defaults(handler=_show)

    join = cmds.add_parser(
        "add-line",
        help="put a user on one more line (shared phone or second phone)",
        description="Put a user on one more line: a phone shared with others, or a second phone.",
        epilog="example:\n  pbx-admin user add-line 1002 k3x9q2ab",
        formatter_class=RAW,
    )
    join.add_argument("user", help=USER_REF)
    join.add_argument("line", help="line name")
    join.set_defaults(handler=_add_line)

    leave = cmds.add_parser(
        "remove-line",
        help="take a user off a line",
        description="Take a user off a line; the line stays (pbx-admin line delete removes it).",
        epilog="example:\n  pbx-admin user remove-line 1002 k3x9q2ab",
        formatter_class=RAW,
    )
    leave.add_argument("user", help=USER_REF)
    leave.add_argument("line", help="line name")
    leave.set_defaults(handler=_remove_line)

    secret = cmds.add_parser(
        "reset-secret",
        help="generate a new SIP secret for a user's line and print it once",
        description="Generate a new SIP secret for the main line of a user (or the line named) and print "
        "it once; the phone must be given it to register again.",
        epilog="examples:\n  pbx-admin user reset-secret 1001\n  pbx-admin user reset-secret alice --line "
        "k3x9q2ab\n  pbx-admin user reset-secret k3x9q2ab",
        formatter_class=RAW,
    )
    line_cmd.add_reset_arguments(secret)
    secret.set_defaults(handler=line_cmd.reset_secret)


def _add(ctx: Context, args: argparse.Namespace) -> int:
    spec = users.UserSpec(
        firstname=args.firstname,
        lastname=args.lastname,
        fields=_fields(args),
        exten=args.exten,
        context=args.context,
        new_line=not args.no_line,
        shared_line=args.shared_line,
        voicemail=args.voicemail,
        voicemail_pin=args.voicemail_pin,
        email=args.email,
        cti_login=args.cti_login,
        cti_password=_cti_password(args),
    )
    with ctx.write() as conn:
        created = users.create_user(conn, spec)
    result = {"id": created.id, "uuid": created.uuid, "exten": created.exten}
    if created.line:
        result |= {
            "line": created.line.name,
            "sip_username": created.line.auth_username,
            "sip_secret": created.line.secret,
        }
    elif created.shared_line:
        result["line"] = created.shared_line
    if created.voicemail_pin:
        result["voicemail_pin"] = created.voicemail_pin
    ctx.emit(result)
    return 0


def _set(ctx: Context, args: argparse.Namespace) -> int:
    changes: dict[str, object] = _fields(args)
    for name in ("firstname", "lastname"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    password = _cti_password(args)
    exten = "" if args.no_exten else args.exten
    others = (args.cti_login, password, exten, args.context, args.voicemail, args.voicemail_pin, args.email)
    if not changes and all(v is None for v in others):
        raise CommandError("nothing to change: give at least one option")
    with ctx.write() as conn:
        user_id = users.find_user(conn, args.user)
        changed = users.update_user(conn, user_id, changes, cti_login=args.cti_login, cti_password=password)
        changed += user_links.set_extension(conn, user_id, exten=exten, context=args.context)
        more, pin = user_links.set_voicemail(
            conn, user_id, enabled=args.voicemail, pin=args.voicemail_pin, email=args.email
        )
    result: dict[str, Any] = {"id": user_id, "changed": sorted(set(changed + more))}
    if pin is not None:
        result["voicemail_pin"] = pin
    ctx.emit(result)
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        user_id = users.find_user(conn, args.user)
        users.delete_user(conn, user_id)
    ctx.emit({"deleted": user_id})
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    found = UserFilter(
        name=args.name, exten=args.exten, context=args.context, limit=args.limit, offset=args.offset
    )
    with ctx.connect() as conn:
        rows = list_users(conn, found)
    ctx.emit(rows, COLUMNS, text=_text)
    return 0


def _show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        row = show_user(conn, users.find_user(conn, args.user))
    ctx.emit(row, text=_text)
    return 0


def _add_line(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        lines.associate(conn, users.find_user(conn, args.user), lines.line_id(conn, args.line))
    return 0


def _remove_line(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        lines.dissociate(conn, users.find_user(conn, args.user), lines.line_id(conn, args.line))
    return 0
