"""``pbx-event-relay`` command line: configuration, logging, signals, then the relay loop."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from confdb import logs
from confdb.config import LOG_LEVELS, ConfigError
from confdb.relay import settings as relay_settings
from confdb.relay.service import Relay
from confdb.relay.settings import CONFIG_FILE
from confdb.secretpaths import RELAY_BUS_URL, RELAY_DB_DSN

DESCRIPTION = """\
Publishes the PBX config events to RabbitMQ. pbx-admin writes each event into the outbox table in the
transaction of the change; this service publishes the committed rows, in id order, to the topic exchange
(pbx.config) with publisher confirms, and marks a row published only once the broker has confirmed it. A
NOTIFY on channel "outbox", sent at each commit, wakes it at once; it also polls in case a notification
was missed. When RabbitMQ is down the events wait in the outbox and go out, in order, once it is back.
See docs/events.md for routing keys, payloads and delivery guarantees.
"""

EPILOG = f"""\
configuration:
  Built-in defaults, then FILE (default {CONFIG_FILE}), then
  conf.d/*.yml next to it in name order, then the command line; later values
  win. Each file is a YAML mapping; missing files are skipped. The merged
  configuration is checked once at start: a bad value or an unknown key is
  reported with its file and key, and the relay exits 2.

    db.dsn                   libpq connection string of the writer role
                             (pbx_writer: reads, marks, deletes outbox rows)
    db.dsn_file              file holding db.dsn, used when db.dsn is empty
                             ({RELAY_DB_DSN.path})
    db.connect_timeout       seconds (5)
    db.statement_timeout_ms  per statement (30000)
    bus.url                  amqp://user:password@host:port/vhost of RabbitMQ
    bus.url_file             file holding bus.url, used when bus.url is empty
    bus.exchange             topic exchange, declared durable (pbx.config)
    bus.publish_timeout      seconds any one broker operation may take: connect,
                             confirm of one message, close (2.0)
    relay.poll_interval      seconds between looks when no NOTIFY came (5.0)
    relay.batch              rows published per transaction (500)
    relay.max_backoff        cap in seconds of the retry delay, which doubles
                             from 0.5 s while a server is down (30)
    relay.retention_days     published rows older than this are deleted; 0 keeps
                             them forever (7)
    relay.purge_interval     seconds between two such deletions (3600)
    log_level                {", ".join(LOG_LEVELS)} (INFO)

failures:
  RabbitMQ down or slow: events stay in the outbox, nothing is lost; one
  warning when it goes, one line when it is back. PostgreSQL down: reconnect
  with the same backoff. Several relays (or pbx-admin) may run at once: an
  advisory lock lets one publish at a time, in order.

logging:
  To standard error (journald under systemd), one line per state change.

signals:
  SIGTERM and SIGINT finish the batch being published (each broker wait is
  bounded by bus.publish_timeout), close the connections and exit 0.

exit status:
  0 after a clean stop (with --once: everything pending was published),
  1 with --once if some events could not be published, 2 for a usage or
  configuration error.

example:
  # /etc/pbx-event-relay/config.yml
  db:
    dsn_file: {RELAY_DB_DSN.path}
  bus:
    url_file: {RELAY_BUS_URL.path}
  relay:
    retention_days: 30

  pbx-event-relay --check-config
  pbx-event-relay --once --log-level debug

files:
  {CONFIG_FILE}, {CONFIG_FILE.parent}/conf.d/*.yml
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbx-event-relay",
        description=textwrap.fill(DESCRIPTION, 78, break_on_hyphens=False),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=CONFIG_FILE,
        metavar="FILE",
        help="configuration file; its folder's conf.d/*.yml is read too (default: %(default)s)",
    )
    parser.add_argument(
        "--poll-interval", type=float, metavar="SECONDS", help="overrides relay.poll_interval"
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
        "--once",
        action="store_true",
        help="publish what is pending, then exit (0 if all of it went out, 1 if not)",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="print the checked configuration (secrets hidden) as YAML and exit (0, or 2)",
    )
    return parser


def setup_logging(level: str) -> None:
    logs.setup(level)
    if logging.getLogger().level > logging.DEBUG:
        # pika logs each refused connection at ERROR; the relay logs the state changes itself.
        logging.getLogger("pika").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.poll_interval is not None:
        overrides["relay"] = {"poll_interval": args.poll_interval}
    if args.log_level:
        overrides["log_level"] = args.log_level
    try:
        settings = relay_settings.load(args.config, overrides)
    except ConfigError as exc:
        print(f"pbx-event-relay: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        yaml.safe_dump(relay_settings.redacted(settings), sys.stdout, sort_keys=False)
        return 0
    setup_logging(settings.log_level)
    relay = Relay(settings)
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, lambda *_: relay.stop()) for signum in signals}
    try:
        ok = relay.run(once=args.once)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
