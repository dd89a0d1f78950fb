"""What `pbx-admin group` and `pbx-admin queue` share: the settings options (a table of VALUE options and
one yes|no switch) and the add, set, delete, list, show and members actions with their handlers.

Each command keeps its own texts and its member actions (a group's members are users with a position, a
queue's are users or agents).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from confdb.cli.context import CommandError, Context

RAW = argparse.RawDescriptionHelpFormatter

Option = tuple[str, str, str]  # (flag, writer keyword, help); values go to the writer as typed


@dataclass(frozen=True)
class Settings:
    """VALUE options passed to the writer as typed (it validates and names the field), and one switch
    that takes yes|no and means yes when given alone."""

    options: Sequence[Option]
    switch: Option

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        for flag, dest, helptext in self.options:
            parser.add_argument(flag, dest=f"opt_{dest}", metavar="VALUE", help=helptext)
        flag, dest, helptext = self.switch
        parser.add_argument(flag, dest=f"opt_{dest}", metavar="yes|no", nargs="?", const="yes", help=helptext)

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        keys = [dest for _, dest, _ in self.options] + [self.switch[1]]
        return {k: getattr(args, f"opt_{k}") for k in keys if getattr(args, f"opt_{k}") is not None}


@dataclass(frozen=True)
class Numbered:
    """A ring group or a queue: `kind` is the word in names and arguments ("group"), `label` the one in
    sentences ("ring group"); the writer functions, and the columns `list` and `members` print."""

    kind: str
    label: str
    settings: Settings
    create: Callable[..., int]
    update: Callable[..., list[str]]
    delete: Callable[[Any, str], None]
    find_id: Callable[[Any, str], int]
    list_all: Callable[..., list[dict[str, Any]]]
    list_members: Callable[[Any, str], list[dict[str, Any]]]
    list_columns: Sequence[str]
    member_columns: Sequence[str]


def register_objects(
    cmds: argparse._SubParsersAction,
    obj: Numbered,
    *,
    add_epilog: str,
    set_epilog: str,
    show_epilog: str,
    delete_help: str,
    list_help: str,
    members_help: str,
) -> None:
    """The add, set, delete, list, show and members actions of `obj`."""
    kind, a_label = obj.kind, f"a {obj.label}"

    add = cmds.add_parser(
        "add",
        help=f"create {a_label}",
        formatter_class=RAW,
        description=f"Create {a_label}. With --exten, internal phones reach it at that extension.",
        epilog=add_epilog,
    )
    add.add_argument("name", help=f"{kind} name: letters, digits, '_', '.', '-' (40 at most)")
    add.add_argument("--exten", help=f"extension number that reaches the {kind}")
    add.add_argument(
        "--context", default="internal", help="internal context of the extension (default internal)"
    )
    obj.settings.add_to(add)
    add.set_defaults(handler=partial(_add, obj))

    set_ = cmds.add_parser(
        "set",
        help=f"change {a_label}'s settings",
        formatter_class=RAW,
        description=f"Change settings of {a_label}; options not given are left as they are.",
        epilog=set_epilog,
    )
    set_.add_argument(kind, help=f"{kind} name")
    set_.add_argument("--name", help=f"rename the {kind}")
    exten = set_.add_mutually_exclusive_group()
    exten.add_argument("--exten", help="new extension number")
    exten.add_argument("--no-exten", action="store_true", help=f"remove the {kind}'s extension")
    set_.add_argument("--context", help="move the extension to this internal context")
    obj.settings.add_to(set_)
    set_.set_defaults(handler=partial(_set, obj))

    delete = cmds.add_parser(
        "delete",
        help=delete_help,
        description=f"Delete {a_label}. Refused while an incall or a schedule sends calls to it.",
    )
    delete.add_argument(kind, help=f"{kind} name")
    delete.set_defaults(handler=partial(_delete, obj))

    show = cmds.add_parser("list", help=list_help, description=f"List every {obj.label}.")
    show.set_defaults(handler=partial(_list, obj))

    show_one = cmds.add_parser(
        "show",
        help=f"show one {obj.label}",
        description=f"Show one {obj.label}, with the fields of {kind} list.",
        epilog=show_epilog,
        formatter_class=RAW,
    )
    show_one.add_argument(kind, help=f"{kind} name")
    show_one.set_defaults(handler=partial(_show, obj))

    members = cmds.add_parser(
        "members",
        help=members_help,
        description=f"List the members of {a_label} in ring order (linear strategy).",
    )
    members.add_argument(kind, help=f"{kind} name")
    members.set_defaults(handler=partial(_members, obj))


def _add(obj: Numbered, ctx: Context, args: argparse.Namespace) -> int:
    options = obj.settings.given(args)
    display_name = options.pop("display_name", args.name)
    with ctx.write() as conn:
        new_id = obj.create(conn, args.name, display_name, exten=args.exten, context=args.context, **options)
    ctx.emit({"id": new_id, "name": args.name, "exten": args.exten})
    return 0


def _set(obj: Numbered, ctx: Context, args: argparse.Namespace) -> int:
    changes = obj.settings.given(args)
    if args.name is not None:
        changes["name"] = args.name
    if args.exten is not None or args.no_exten:
        changes["exten"] = None if args.no_exten else args.exten
    if args.context is not None:
        changes["context"] = args.context
    if not changes:
        raise CommandError("nothing to change: give at least one option")
    with ctx.write() as conn:
        changed = obj.update(conn, getattr(args, obj.kind), **changes)
    ctx.emit({"changed": changed})
    return 0


def _delete(obj: Numbered, ctx: Context, args: argparse.Namespace) -> int:
    name = getattr(args, obj.kind)
    with ctx.write() as conn:
        obj.delete(conn, name)
    ctx.emit({"deleted": name})
    return 0


def _list(obj: Numbered, ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = obj.list_all(conn)
    ctx.emit(rows, obj.list_columns)
    return 0


def _show(obj: Numbered, ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        [row] = obj.list_all(conn, obj.find_id(conn, getattr(args, obj.kind)))
    ctx.emit(row)
    return 0


def _members(obj: Numbered, ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = obj.list_members(conn, getattr(args, obj.kind))
    ctx.emit(rows, obj.member_columns)
    return 0
