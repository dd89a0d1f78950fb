"""pbx-admin entry point: global options, then one subcommand module per object type."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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

# The subcommands, in the order --help lists them. Each module has register(subparsers).
COMMANDS = (
    db_cmd,
    user_cmd,
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

exit status:
  0 success, 1 refused or failed (the message says why), 2 usage error.

examples:
  pbx-admin user add --firstname Alice --lastname Martin --exten 1001 --voicemail
  pbx-admin user list
  pbx-admin import users staff.csv
  pbx-admin demo --users 100 --phonebook 1000
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
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
        print(f"pbx-admin: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        message = (exc.diag.message_primary if exc.diag else None) or str(exc)
        print(f"pbx-admin: database refused the change: {message.strip()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
