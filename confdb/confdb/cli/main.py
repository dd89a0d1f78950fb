"""pbx-admin entry point: global options, then one subcommand module per object type."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import NoReturn

import psycopg

from confdb import config
from confdb.cli import (
    agent_cmd,
    db_cmd,
    demo_cmd,
    device_cmd,
    group_cmd,
    import_cmd,
    incall_cmd,
    line_cmd,
    outbox_cmd,
    outcall_cmd,
    phonebook_cmd,
    queue_cmd,
    schedule_cmd,
    trunk_cmd,
    user_cmd,
)
from confdb.cli.context import CONFIG_FILE, DEFAULTS, CommandError, Context
from confdb.writer.errors import WriteError

MAX_ERROR = 500  # characters of an error message printed; values in it are cut shorter (validation.shown)

# The subcommands, in the order --help lists them. Each module has register(subparsers).
COMMANDS = (
    db_cmd,
    user_cmd,
    line_cmd,
    group_cmd,
    queue_cmd,
    agent_cmd,
    schedule_cmd,
    incall_cmd,
    trunk_cmd,
    outcall_cmd,
    device_cmd,
    phonebook_cmd,
    import_cmd,
    demo_cmd,
    outbox_cmd,
)

DESCRIPTION = """\
pbx-admin is the single writer of the PBX configuration database. Every change is validated (a value
Asterisk would misread is refused with an error naming the field), written in one transaction, and
announced as a config event on the RabbitMQ bus through a transactional outbox, so no event is lost
when the bus is down.
"""

EPILOG = f"""\
configuration:
  {CONFIG_FILE}, then {CONFIG_FILE.parent}/conf.d/*.yml in name order; later files win.
    db.dsn                   libpq connection string of the writer role (pbx_writer)
    db.connect_timeout       seconds (default 5)
    db.statement_timeout_ms  per statement (default 60000)
    bus.url                  amqp:// URL; empty = leave events to the relay service
    bus.exchange             topic exchange (default pbx.config)
    directory.country        ISO code phonebook numbers are read from, for reverse lookup (default FR)
  Environment: PBX_ADMIN_DSN and PBX_ADMIN_BUS_URL override the files; --dsn overrides all.

commands:
  Each object type has the same actions where they make sense: list, show, add, set, delete (and its
  own, such as add-member). list and show print the same fields; --json, before or after the command,
  prints them as JSON (lists as arrays, numbers, booleans, null).

exit status:
  0 success, 1 refused or failed (the message says why), 2 usage error;
  import: 3 when some rows were refused and the others imported (see pbx-admin import --help).

examples:
  pbx-admin user add --firstname Alice --lastname Martin --exten 1001 --voicemail
  pbx-admin user list --name martin --limit 20
  pbx-admin user show 1001 --json
  pbx-admin user reset-secret 1001
  pbx-admin import users staff.csv --credentials staff-secrets.csv
  pbx-admin demo --users 100 --phonebook 1000
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Prose paragraphs wrapped to the terminal; indented lines (examples, tables) and `header:` lines kept
    as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        prose: list[str] = []

        def flush() -> None:
            if prose:
                out.extend(
                    textwrap.wrap(" ".join(prose), width, initial_indent=indent, subsequent_indent=indent)
                )
                prose.clear()

        for line in text.splitlines():
            if line and not line[0].isspace() and not line.endswith(":"):
                prose.append(line.strip())
                continue
            flush()
            out.append(indent + line if line else "")
        flush()
        return "\n".join(out)


class Parser(argparse.ArgumentParser):
    """argparse, whose usage errors quote at most MAX_ERROR characters (a 64 KiB argument stays out)."""

    def error(self, message: str) -> NoReturn:
        super().error(_cut(message))


def _cut(message: str) -> str:
    return message if len(message) <= MAX_ERROR else message[:MAX_ERROR] + "…"


JSON_HELP = "print results as JSON (also accepted after the command)"


def _finish(parser: argparse.ArgumentParser) -> None:
    """Every command and action: --json accepted after it too (SUPPRESS keeps a subcommand from resetting
    a global --json), and help text wrapped by HelpFormatter."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=JSON_HELP)
                _finish(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="pbx-admin",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=CONFIG_FILE,
        metavar="FILE",
        help=f"configuration file (default {CONFIG_FILE}); its conf.d/ folder is read too",
    )
    parser.add_argument("--dsn", help="database connection string (overrides the configuration)")
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    _finish(parser)
    return parser


def load_settings(args: argparse.Namespace) -> dict:
    settings = config.load(args.config, DEFAULTS)
    if os.environ.get("PBX_ADMIN_DSN"):
        settings["db"]["dsn"] = os.environ["PBX_ADMIN_DSN"]
    if os.environ.get("PBX_ADMIN_BUS_URL"):
        settings["bus"]["url"] = os.environ["PBX_ADMIN_BUS_URL"]
    if args.dsn:
        settings["db"]["dsn"] = args.dsn
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ctx = Context(load_settings(args), json_output=args.json)
        return int(args.handler(ctx, args) or 0)
    except (CommandError, WriteError, ValueError, config.ConfigError) as exc:
        print(f"pbx-admin: {_cut(str(exc))}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        message = (exc.diag.message_primary if exc.diag else None) or str(exc)
        print(f"pbx-admin: database refused the change: {_cut(message.strip())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
