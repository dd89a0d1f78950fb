"""The confgend daemon: `confgend [--config FILE] [--port N] ...`. Thin wiring of the pieces; see
docs/confgend.md for what it does when a dependency fails."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from confdb import logs
from confdb.busconsumer import quiet_pika
from confdb.config import ConfigError, read_secret
from confgend.config import DEFAULT_CONFIG_FILE, Settings, load_settings

log = logging.getLogger("confgend")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="confgend",
        description="Asterisk configuration generator daemon: generates Asterisk 20's configuration files "
        "from the PBX database, serves them to the pbx-confgen client that Asterisk's #exec runs, and asks "
        "Asterisk over AMI to reload what changed when a config event arrives on RabbitMQ.",
        epilog="Configuration: built-in defaults, then --config (/etc/confgend/config.yml), then the *.yml "
        "files of the conf.d/ folder beside it in name order, then these options. Secrets (database DSN, "
        "AMQP URL, AMI secret) are read from the files that systemd hands over as credentials "
        "(/run/credentials/pbx-confgend.service/), copied from the root-only /etc/pbx/secrets; there is no "
        "default secret. "
        "Exit status: 0 after a clean stop, 2 for a configuration error (the message names the file and the "
        "setting; an unknown setting is an error). "
        "What it does when PostgreSQL, RabbitMQ or Asterisk fails: docs/confgend.md.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_FILE,
        help=f"main configuration file ({DEFAULT_CONFIG_FILE})",
    )
    parser.add_argument("--host", help="listen address (listen.host)")
    parser.add_argument("--port", type=int, help="listen port (listen.port)")
    parser.add_argument("--dsn-file", help="file holding the database DSN (db.dsn_file)")
    parser.add_argument("--cache-dir", help="directory of the last good copies (cache.directory)")
    parser.add_argument("--bus-url-file", help="file holding the AMQP URL (bus.url_file)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.host:
        out.setdefault("listen", {})["host"] = args.host
    if args.port:
        out.setdefault("listen", {})["port"] = args.port
    if args.dsn_file:
        out["db"] = {"dsn": None, "dsn_file": args.dsn_file}
    if args.cache_dir:
        out["cache"] = {"directory": args.cache_dir}
    if args.bus_url_file:
        out["bus"] = {"url": None, "url_file": args.bus_url_file}
    return out


class Daemon:
    """Built from validated settings (nothing runs yet: a bad setting is a ConfigError here); `start()`
    starts the workers, the pool, the listening port and the bus listener, `stop()` undoes it. Used by
    main() and by the tests."""

    def __init__(self, settings: Settings, reactor: Any) -> None:
        from psycopg_pool import ConnectionPool
        from twisted.python.threadpool import ThreadPool

        from confgend import cache
        from confgend.ami import AMIReloader
        from confgend.engine import Engine
        from confgend.generators import GENERATORS
        from confgend.protocol import ConfgenFactory
        from confgend.service import ConfigService

        if not settings.dsn:
            raise ConfigError("db.dsn or db.dsn_file: no database DSN")
        self.settings = settings
        self.reactor = reactor
        self.threads = ThreadPool(minthreads=1, maxthreads=settings.threads, name="confgend")
        # Opened without waiting: confgend serves its last good copies while PostgreSQL is down.
        self.dbpool = ConnectionPool(
            settings.dsn,
            min_size=1,
            max_size=settings.pool_size,
            timeout=settings.pool_timeout,
            reconnect_timeout=60,  # then the slot is dropped; the next request tries again
            kwargs={
                "options": f"-c statement_timeout={settings.statement_timeout_ms}",
                "connect_timeout": max(1, int(settings.pool_timeout)),
                "application_name": "confgend",
            },
            open=False,
            name="confgend",
        )
        self.engine = Engine(
            self.dbpool.connection, settings.cache_dir, settings.asterisk, check_connections=self.dbpool.check
        )
        last_good = {n: d for n in GENERATORS if (d := cache.read(cache.path_for(settings.cache_dir, n)))}
        for name, data in last_good.items():
            self.engine.knows_on_disk(name, data)
        self.service = ConfigService(
            reactor,
            self.threads,
            self.engine,
            deadline=settings.generation_timeout,
            last_good=last_good,
            db_retry=settings.db_retry_after,
        )
        self.factory = ConfgenFactory(self.service, reactor, settings.max_connections, settings.idle_timeout)
        self.port: Any = None
        self.started = False
        self.reloader = None
        self.listener = None
        if settings.bus_url:
            ami = AMIReloader(
                settings.ami_host,
                settings.ami_port,
                settings.ami_username,
                _ami_secret(settings),
                settings.ami_timeout,
                settings.busy_retries,
                settings.busy_delay,
            )
            from confdb.busconsumer import BusConsumer
            from confgend.reload import Reloader, interesting

            self.reloader = Reloader(
                reactor,
                self.threads,
                self.engine,
                ami.reload,
                coalesce_seconds=settings.coalesce_seconds,
                min_interval=settings.min_interval,
                baseline=last_good,
            )
            self.service.on_served.append(lambda reply: self.reloader.served(reply.name, reply.data))
            poke = self.reloader.poke
            self.listener = BusConsumer(
                settings.bus_url,
                lambda key, _payload: poke() if interesting(key) else None,
                poke,  # events may have been missed while away: one round compares everything
                exchange=settings.exchange,
                dispatch=reactor.callFromThread,
                log=logging.getLogger("confgend.bus"),
                name="confgend bus",
            )

    def start(self) -> None:
        """Start the workers, open the pool without waiting (confgend serves its last good copies while
        PostgreSQL is down), listen, then listen to the bus. Once only."""
        if self.started:
            raise RuntimeError("confgend: Daemon.start() called twice")
        self.started = True
        settings = self.settings
        self.threads.start()
        self.dbpool.open(wait=False)
        self.port = self.reactor.listenTCP(settings.port, self.factory, interface=settings.host)
        if self.listener is not None:
            self.listener.start()
        else:
            log.warning("no bus.url: Asterisk gets new configuration only when it reloads by itself")
        log.info("confgend listening on %s:%d", settings.host, self.port.getHost().port)

    def stop(self) -> Any:
        """Stop listening, the bus listener, the workers and the pool; a second call does nothing."""
        from twisted.internet import defer

        if getattr(self, "stopped", None) is not None:
            return self.stopped
        if self.listener is not None and self.started:
            self.listener.stop()
        if self.reloader is not None:
            self.reloader.stop()
        d = self.port.stopListening() if self.port is not None else defer.succeed(None)
        if self.started:
            self.threads.stop()
        self.dbpool.close(timeout=2)
        self.stopped = d
        return d


def _ami_secret(settings: Settings) -> str:
    return read_secret("ami.secret", None, settings.ami_secret_file, required=True) or ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.setup(logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:
        quiet_pika()
    try:
        settings = load_settings(args.config, overrides(args))
    except ConfigError as exc:
        print(f"confgend: {exc}", file=sys.stderr)
        return 2
    from twisted.internet import reactor

    try:
        daemon = Daemon(settings, reactor)
    except ConfigError as exc:
        print(f"confgend: {exc}", file=sys.stderr)
        return 2
    daemon.start()
    reactor.addSystemEventTrigger("before", "shutdown", daemon.stop)
    reactor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
