"""``agid`` command line: configuration, logging, run the server until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import yaml

from agid import __version__
from agid.config import DEFAULT_CONFIG_DIR, LOG_LEVELS, Config, ConfigError, load_config
from agid.server import AGIServer
from agid.services import close_context, open_context
from confdb import logs

log = logging.getLogger("agid")

DESCRIPTION = """\
FastAGI server for the PBX dialplan. Asterisk runs
AGI(agi://127.0.0.1:4573/NAME,ARG1,ARG2,...) and agid answers with the handler registered under NAME:
it reads the channel's AGI environment, runs the handler (reverse lookup, user routing, DID routing,
...), then sets the channel variable AGID_STATUS to OK, or to FAILED when the handler raised, ran out
of time, is unknown, or agid is overloaded, and closes the connection so that the dialplan continues.
"""

EPILOG = """\
configuration:
  Options are read from built-in defaults, then CONFIG_DIR/config.yml, then
  CONFIG_DIR/conf.d/*.yml in name order, then the command line; later values
  win. Each file is a YAML mapping of the options below; missing files are
  skipped. The merged configuration is checked once at start: a bad value is
  reported with its option name and the file it came from, and agid exits 2.

    listen_address   IP address to listen on (127.0.0.1)
    listen_port      TCP port, 0 for any free port (4573)
    max_sessions     handlers running at once; a session beyond that gets
                     AGID_STATUS=FAILED at once, without waiting (100)
    max_connections  open connections (400); when full, a new one takes the place
                     of the oldest that has not sent its AGI environment yet,
                     else it is closed at once
    session_timeout  seconds per session from accept to close, all included;
                     the handler is cancelled when status_timeout remain (10)
    env_timeout      seconds to receive the AGI environment after the accept (2)
    status_timeout   seconds of session_timeout kept to set AGID_STATUS (1)
    log_level        DEBUG, INFO, WARNING, ERROR or CRITICAL (INFO)
    db_dsn           libpq connection string of role pbx_agid; empty: read
                     db_dsn_file (/run/credentials/pbx-agid.service/db.dsn,
                     which systemd loads from /etc/pbx/secrets/pbx_agid.dsn)
    db_pool_min, db_pool_max
                     database connections kept open / at most (2, 10)
    db_timeout       seconds of database work per handler, also the
                     statement_timeout; past it the handler degrades (0.5)
    db_connect_timeout, db_retry_interval
                     seconds to connect (2); seconds of failing fast after
                     3 database failures in a row (1)
    country          ISO country for number normalisation (FR)
    lookup_budget    seconds reverse_lookup waits for all sources (0.2)
    lookup_sources   sources in priority order ([users, phonebook, csv])
    lookup_csv_files CSV files with "number" and "name" columns ([])
    lookup_cache_ttl, lookup_cache_size
                     seconds and entries of the lookup cache (60, 10000)

dialplan contract:
  Before closing, agid sets AGID_STATUS to OK or FAILED whenever the channel
  and the connection are still there. Closing ends AGI() and the dialplan
  goes on. Test for OK; treat anything else, an unset AGID_STATUS included,
  as failure and take the safe default.

database:
  agid reads PostgreSQL as role pbx_agid through a bounded pool. When the
  database is down, slow or frozen, handlers answer within db_timeout (or
  lookup_budget) with their default decision and AGID_DEGRADED=1; agid starts
  even if the database is unreachable. See docs/agid.md.

logging:
  To standard error (journald under systemd), one line per event; handler
  errors are followed by their traceback. Lines about a call carry its
  channel name and uniqueid.

signals:
  SIGTERM and SIGINT stop accepting connections, let running sessions finish
  (each one is bounded by session_timeout) and exit 0.

exit status:
  0 after a clean stop, 1 if the server could not start (address in use...),
  2 for a usage or configuration error.

files:
  /etc/agid/config.yml, /etc/agid/conf.d/*.yml
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agid",
        description=textwrap.fill(DESCRIPTION, 78, break_on_hyphens=False),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-c",
        "--config-dir",
        type=Path,
        default=DEFAULT_CONFIG_DIR,
        metavar="DIR",
        help="read DIR/config.yml and DIR/conf.d/*.yml (default: %(default)s)",
    )
    parser.add_argument("--listen-address", metavar="ADDR", help="IP address to listen on")
    parser.add_argument(
        "--listen-port", type=int, metavar="PORT", help="TCP port to listen on (0: any free port)"
    )
    parser.add_argument("--max-sessions", type=int, metavar="N", help="handlers running at once")
    parser.add_argument("--max-connections", type=int, metavar="N", help="open connections at once")
    parser.add_argument("--session-timeout", type=float, metavar="SECONDS", help="deadline of one session")
    parser.add_argument(
        "--status-timeout", type=float, metavar="SECONDS", help="time kept to set AGID_STATUS"
    )
    parser.add_argument(
        "-l",
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        metavar="LEVEL",
        help="logging threshold: " + ", ".join(LOG_LEVELS),
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="print the merged configuration as YAML and exit (0 if valid, 2 if not)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def setup_logging(level: str) -> None:
    logs.setup(level)


async def run(config: Config) -> int:
    context = await open_context(config)
    server = AGIServer(config, context=context)
    try:
        await server.start()
    except OSError as exc:
        log.critical("cannot listen on %s:%s: %s", config.listen_address, config.listen_port, exc)
        await close_context(context)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("stopping")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await server.stop()
        log_counters(server)
        await close_context(context)
    return 0


def log_counters(server: AGIServer) -> None:
    """What happened since start, for the journal: sessions, database calls and batches."""
    log.info("sessions: %s", dataclasses.asdict(server.stats))
    db = server.context.db
    if db is not None:
        log.info("database calls: %s; batches: %s", db.stats, db.batch_stats)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {
        "listen_address": args.listen_address,
        "listen_port": args.listen_port,
        "max_sessions": args.max_sessions,
        "max_connections": args.max_connections,
        "session_timeout": args.session_timeout,
        "status_timeout": args.status_timeout,
        "log_level": args.log_level,
    }
    try:
        config = load_config(args.config_dir, overrides)
    except ConfigError as exc:
        print(f"agid: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        sys.stdout.write(yaml.safe_dump(config.as_dict(), sort_keys=False))
        return 0
    setup_logging(config.log_level)
    return asyncio.run(run(config))


if __name__ == "__main__":
    sys.exit(main())
