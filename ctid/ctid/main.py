"""``ctid``: the CTI server daemon (entry point)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from ctid.config import DEFAULT_CONFIG_FILE, ConfigError, load

HELP = """\
Configuration: built-in defaults, then CONFIG (default /etc/ctid/config.yml), then
<its folder>/conf.d/*.yml
in order, then the options below; later layers win. Sections and keys (see docs/ctid.md):
  ami:  host, port, username, secret | secret_file (/run/credentials/pbx-ctid.service/ami.secret),
        events, action_timeout, ping_interval, backoff_*, ...
  cti:  host (127.0.0.1), port (5003), backlog (1024), tls_cert, tls_key, max_message_bytes,
        max_output_bytes, max_clients, login_timeout, login_max_failures, login_window,
        login_account_failures (5), login_account_max_delay (60), dial_context, dial_timeout, ...
  db:   dsn | dsn_file (/run/credentials/pbx-ctid.service/db.dsn), pool_size, statement_timeout_ms,
        connect_timeout
  bus:  url | url_file (/run/credentials/pbx-ctid.service/bus.url), exchange (pbx.config), timeout
  log:  level (debug, info, warn, error)
Signals: SIGTERM/SIGINT stop cleanly. Exit status: 0 stopped, 2 bad configuration."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ctid",
        description="CTI server: Asterisk AMI in, CTI clients (JSON over TCP) out.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG_FILE, help="configuration file")
    parser.add_argument("--cti-host", help="CTI listening address (cti.host)")
    parser.add_argument("--cti-port", type=int, help="CTI listening port (cti.port)")
    parser.add_argument("--ami-host", help="Asterisk manager address (ami.host)")
    parser.add_argument("--ami-port", type=int, help="Asterisk manager port (ami.port)")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    return parser.parse_args(argv)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for opt, section, key in (
        ("cti_host", "cti", "host"),
        ("cti_port", "cti", "port"),
        ("ami_host", "ami", "host"),
        ("ami_port", "ami", "port"),
    ):
        value = getattr(args, opt)
        if value is not None:
            out.setdefault(section, {})[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load(args.config, overrides(args))
    except ConfigError as exc:
        print(f"ctid: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print("ctid: configuration OK")
        return 0

    from twisted.internet import reactor
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    from confdb.busconsumer import quiet_pika
    from ctid.daemon import Ctid
    from ctid.logbridge import journal_observer, route_stdlib

    level = LogLevel.levelWithName(config.log_level)
    # under systemd the journal stamps each line and reads its priority; elsewhere the line is stamped
    write = (
        journal_observer(sys.stderr) if os.environ.get("JOURNAL_STREAM") else textFileLogObserver(sys.stderr)
    )
    observer = FilteringLogObserver(write, [LogLevelFilterPredicate(level)])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    route_stdlib(config.log_level, reactor.callFromThread)  # the bus consumer logs through logging
    if config.log_level != "debug":
        quiet_pika()  # its ERROR lines with tracebacks for every refused connection: ours say it in one
    daemon = Ctid(config, reactor)

    def stop(*_: Any) -> None:
        reactor.callFromThread(lambda: daemon.stop().addBoth(lambda _: reactor.stop()))

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    reactor.callWhenRunning(daemon.start)
    reactor.run(installSignalHandlers=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
