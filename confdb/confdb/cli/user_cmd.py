"""pbx-admin user: users with their line, extension and voicemail box."""

from __future__ import annotations

import argparse

from confdb.cli.context import CommandError, Context, read_secret
from confdb.writer import lines, users

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


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "user",
        help="create, change, delete and list users",
        description="Users of the PBX. A user is created with, in one transaction, "
        "its SIP line, its extension and optionally its voicemail box.",
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
    add.add_argument("--firstname", required=True)
    add.add_argument("--lastname", default="")
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
    add.add_argument("--cti-login", help="login for CTI clients")
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
        help="change a user's settings",
        description="Change settings of the user given by id, UUID, CTI login or extension.",
    )
    set_.add_argument("user", help="id, UUID, CTI login or extension")
    set_.add_argument("--firstname")
    set_.add_argument("--lastname")
    set_.add_argument("--cti-login")
    pw = set_.add_mutually_exclusive_group()
    pw.add_argument("--cti-password-env", metavar="VAR", help="read the new CTI password from this variable")
    pw.add_argument("--cti-password-prompt", action="store_true", help="prompt for the new CTI password")
    _add_field_options(set_)
    set_.set_defaults(handler=_set)

    delete = cmds.add_parser("delete", help="delete a user, its extensions, voicemail and unshared lines")
    delete.add_argument("user", help="id, UUID, CTI login or extension")
    delete.set_defaults(handler=_delete)

    show = cmds.add_parser("list", help="list users with their extensions and lines (main line marked *)")
    show.set_defaults(handler=_list)

    join = cmds.add_parser("add-line", help="put a user on one more line (shared phone or second phone)")
    join.add_argument("user", help="id, UUID, CTI login or extension")
    join.add_argument("line", help="line name")
    join.set_defaults(handler=_add_line)

    leave = cmds.add_parser("remove-line", help="take a user off a line")
    leave.add_argument("user", help="id, UUID, CTI login or extension")
    leave.add_argument("line", help="line name")
    leave.set_defaults(handler=_remove_line)

    secret = cmds.add_parser("reset-secret", help="generate a new SIP secret for a line and print it once")
    secret.add_argument("line", help="line name")
    secret.set_defaults(handler=_reset_secret)


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
    if not changes and args.cti_login is None and password is None:
        raise CommandError("nothing to change: give at least one option")
    with ctx.write() as conn:
        changed = users.update_user(
            conn, users.find_user(conn, args.user), changes, cti_login=args.cti_login, cti_password=password
        )
    ctx.emit({"changed": ", ".join(changed)})
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        user_id = users.find_user(conn, args.user)
        users.delete_user(conn, user_id)
    ctx.emit({"deleted": user_id})
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = users.list_users(conn)
    ctx.emit(
        rows, ["id", "firstname", "lastname", "extensions", "lines", "mailbox", "cti_login", "enabled", "dnd"]
    )
    return 0


def _add_line(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        lines.associate(conn, users.find_user(conn, args.user), lines.line_id(conn, args.line))
    return 0


def _remove_line(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        lines.dissociate(conn, users.find_user(conn, args.user), lines.line_id(conn, args.line))
    return 0


def _reset_secret(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        secret = lines.reset_secret(conn, args.line)
    ctx.emit({"line": args.line, "sip_secret": secret})
    return 0
