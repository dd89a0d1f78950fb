"""pbx-admin phonebook: the company directory, with numbers indexed for caller-ID reverse lookup."""

from __future__ import annotations

import argparse

from confdb import numbers
from confdb.cli.context import CommandError, Context
from confdb.writer import phonebook

KIND_HELP = "may be repeated; several numbers in one value are separated by ';'"


def country(ctx: Context) -> str:
    """directory.country, checked: the country phonebook numbers are normalised from."""
    value = str(ctx.settings.get("directory", {}).get("country", numbers.DEFAULT_COUNTRY))
    try:
        return numbers.country_rules(value).code
    except ValueError as exc:
        raise CommandError(f"directory.country: {exc}") from None


def _numbers(args: argparse.Namespace) -> list[phonebook.PhoneNumber]:
    found = []
    for kind in phonebook.NUMBER_KINDS:
        for value in getattr(args, kind) or []:
            found += [phonebook.PhoneNumber(n.strip(), kind) for n in value.split(";") if n.strip()]
    return found


def _add_entry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--display-name", help="name shown on phones (default: first and last name, or company)"
    )
    parser.add_argument("--firstname")
    parser.add_argument("--lastname")
    parser.add_argument("--company")
    parser.add_argument("--email")
    for kind in phonebook.NUMBER_KINDS:
        parser.add_argument(
            f"--{kind}", action="append", metavar="NUMBER", help=f"{kind} number; {KIND_HELP}"
        )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "phonebook",
        help="the company phonebook (reverse lookup of caller IDs)",
        description="Phonebook entries with several numbers each. Every number is also stored in E.164 form "
        "(digits without '+') computed for the country of directory.country (default FR), which "
        "is how agid finds the caller's name.",
        epilog="examples:\n  pbx-admin phonebook add --company Acme --office '01 23 45 67 89'\n"
        "  pbx-admin phonebook search acme\n  pbx-admin phonebook lookup +33123456789",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = parser.add_subparsers(dest="phonebook_command", metavar="ACTION", required=True)

    add = cmds.add_parser(
        "add",
        help="create an entry",
        description="Create a phonebook entry with its numbers.",
        epilog="example:\n  pbx-admin phonebook add --firstname Jeanne --lastname Roche --company Acme "
        "--office '01 23 45 67 89' --mobile '06 12 34 56 78'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_entry_options(add)
    add.set_defaults(handler=_add)

    set_ = cmds.add_parser(
        "set",
        help="change an entry; number options replace all its numbers",
        description="Change an entry; options not given are left as they are, and number options "
        "replace all its numbers.",
    )
    set_.add_argument("id", type=int, help="entry id")
    _add_entry_options(set_)
    set_.add_argument("--clear-numbers", action="store_true", help="remove every number of the entry")
    set_.set_defaults(handler=_set)

    delete = cmds.add_parser("delete", help="delete an entry", description="Delete an entry and its numbers.")
    delete.add_argument("id", type=int, help="entry id")
    delete.set_defaults(handler=_delete)

    show = cmds.add_parser(
        "list",
        help="list entries by display name",
        description="List entries by display name, with their numbers.",
    )
    show.add_argument("--limit", type=int, default=None, metavar="N", help="at most N entries")
    show.add_argument("--offset", type=int, default=0, metavar="N", help="skip the first N entries")
    show.set_defaults(handler=_list)

    show_one = cmds.add_parser(
        "show",
        help="show one entry",
        description="Show one entry, with the fields of phonebook list.",
        epilog="example:\n  pbx-admin phonebook show 42",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show_one.add_argument("id", type=int, help="entry id")
    show_one.set_defaults(handler=_show)

    find = cmds.add_parser(
        "search",
        help="entries whose name, company or e-mail contains TEXT, or with number TEXT",
        description="Entries whose names, company or e-mail address contain TEXT (any case), or that "
        "have the number TEXT (compared in lookup form).",
    )
    find.add_argument("text", help="text or number to look for")
    find.add_argument("--limit", type=int, default=50, metavar="N", help="at most N entries (default 50)")
    find.set_defaults(handler=_search)

    lookup = cmds.add_parser(
        "lookup",
        help="reverse lookup of a number, as agid does it",
        description="The entries having a number, found as agid finds a caller's name; exit status 1 "
        "when none has it.",
    )
    lookup.add_argument("number", help="a number as a caller ID shows it")
    lookup.set_defaults(handler=_lookup)

    renorm = cmds.add_parser(
        "renormalize",
        help="recompute the lookup form of every number (after changing directory.country)",
        description="Recompute the lookup form of every number, after directory.country changed.",
    )
    renorm.set_defaults(handler=_renormalize)


def _fields(args: argparse.Namespace) -> dict[str, str]:
    return {
        name: getattr(args, name)
        for name in (*phonebook.TEXT_FIELDS, "email")
        if getattr(args, name) is not None
    }


def _summary(entry: dict) -> dict:
    return {
        **{k: entry[k] for k in ("id", "display_name", "firstname", "lastname", "company", "email")},
        "numbers": ", ".join(f"{n['kind']}:{n['number']}" for n in entry["numbers"]),
    }


def _add(ctx: Context, args: argparse.Namespace) -> int:
    spec = phonebook.EntrySpec(**_fields(args), numbers=_numbers(args))
    with ctx.write() as conn:
        entry_id = phonebook.create_entry(conn, spec, country=country(ctx))
    ctx.emit({"id": entry_id})
    return 0


def _set(ctx: Context, args: argparse.Namespace) -> int:
    new_numbers = _numbers(args)
    if new_numbers and args.clear_numbers:
        raise CommandError("--clear-numbers and number options exclude each other")
    replace = new_numbers if new_numbers else ([] if args.clear_numbers else None)
    changes = _fields(args)
    if not changes and replace is None:
        raise CommandError("nothing to change: give at least one option")
    with ctx.write() as conn:
        changed = phonebook.update_entry(conn, args.id, changes, numbers_=replace, country=country(ctx))
    ctx.emit({"changed": changed})
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        phonebook.delete_entry(conn, args.id)
    ctx.emit({"deleted": args.id})
    return 0


def _list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = phonebook.list_entries(conn, limit=args.limit, offset=args.offset)
    ctx.emit(
        rows if ctx.json_output else [_summary(r) for r in rows],
        ["id", "display_name", "company", "email", "numbers"],
    )
    return 0


def _show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        row = phonebook.get_entry(conn, args.id)
    ctx.emit(row, text=_summary)
    return 0


def _search(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = phonebook.search(conn, args.text, country=country(ctx), limit=args.limit)
    ctx.emit(
        rows if ctx.json_output else [_summary(r) for r in rows],
        ["id", "display_name", "company", "email", "numbers"],
    )
    return 0


def _lookup(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = phonebook.lookup(conn, args.number, country=country(ctx))
    if not rows and not ctx.json_output:
        normalized = numbers.normalize(args.number, country=country(ctx))
        print(f"no entry has {args.number} (looked up as {normalized})")
        return 1
    ctx.emit(rows, ["id", "display_name", "company", "kind", "number", "normalized"])
    return 0


def _renormalize(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as conn:
        changed = phonebook.renormalize(conn, country=country(ctx))
    ctx.emit({"country": country(ctx), "numbers_changed": changed})
    return 0
