"""`Ctid`: wires AMI, the call state, the directory (database + bus) and the CTI listener together."""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from confdb.busconsumer import BusConsumer
from ctid.ami.client import AMIClient
from ctid.ami.service import AMIService
from ctid.config import Config
from ctid.cti.factory import listen
from ctid.cti.passwords import PasswordChecker
from ctid.cti.server import CTIServer
from ctid.db import CONFIG_BINDINGS, Database, DirectorySync
from ctid.directory import Directory
from ctid.resync import AMIStateSync
from ctid.state.tracker import CallTracker

log = Logger()


class Ctid:
    def __init__(self, config: Config, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        self.tracker = CallTracker()
        self.directory = Directory()
        self.sync = AMIStateSync(
            self.tracker, clock=reactor, list_timeout=max(config.ami.action_timeout, 10.0)
        )
        self.ami = AMIClient(config.ami, on_event=self.sync.on_event, clock=reactor)
        self.ami.add_connected_hook(self.sync.connected)
        self.ami.add_disconnected_hook(self.sync.disconnected)
        self.ami_service = AMIService(self.ami, reactor=reactor)
        self.passwords = PasswordChecker(
            config.cti.password_threads, config.cti.password_max_waiting, reactor=reactor
        )
        self.hub = CTIServer(
            config.cti,
            self.tracker,
            self.directory,
            clock=reactor,
            check_password=self.passwords.check,
            ami=self.ami,
            asterisk_ready=lambda: self.sync.ready,
        )
        self.db: Database | None = None
        self.directory_sync: DirectorySync | None = None
        if config.db is not None:
            self.db = Database(
                config.db.dsn,
                pool_size=config.db.pool_size,
                statement_timeout_ms=config.db.statement_timeout_ms,
                connect_timeout=config.db.connect_timeout,
                reactor=reactor,
            )
            self.directory_sync = DirectorySync(
                self.directory, self.db.run, self.hub.directory_changed, clock=reactor
            )
        self.bus: BusConsumer | None = None
        if config.bus is not None and self.directory_sync is not None:
            ds = self.directory_sync
            self.bus = BusConsumer(
                config.bus.url or "",
                ds.config_event,
                ds.request_full,  # at each (re)connection: events of the outage were not kept for us
                bindings=CONFIG_BINDINGS,
                exchange=config.bus.exchange,
                dispatch=reactor.callFromThread,
                log=logging.getLogger("ctid.bus"),
                name="ctid bus",
                timeout=config.bus.timeout,
            )
        self.port: Any = None

    def start(self) -> None:
        events = self.config.ami.events
        classes = set((events or "").lower().replace(" ", "").split(","))
        if events is not None and not {"on", "all", "system"} & classes:
            log.warn(
                "ctid: ami.events {events!r} leaves out the 'system' class: FullyBooted and Shutdown are"
                " not seen, so each resync waits for the boot timeout",
                events=events,
            )
        self.passwords.start()
        if self.db is not None and self.directory_sync is not None:
            self.db.start()
            self.directory_sync.request_full()
        else:
            log.warn("ctid: no database configured (db.dsn / db.dsn_file): no user can log in")
        if self.bus is not None:
            self.bus.start()
        self.port = listen(self.reactor, self.hub)
        self.ami_service.startService()
        log.info(
            "ctid: CTI on {host}:{port}, AMI {ahost}:{aport}",
            host=self.config.cti.host,
            port=self.port.getHost().port,
            ahost=self.config.ami.host,
            aport=self.config.ami.port,
        )

    def stop(self) -> Deferred:
        waits = [maybeDeferred(self.ami_service.stopService)]
        if self.port is not None:
            waits.append(maybeDeferred(self.port.stopListening))
        for session in list(self.hub.sessions):
            session.conn.abort()
        self.hub.stop()
        if self.directory_sync is not None:
            self.directory_sync.stop()
        if self.bus is not None:  # its thread may be in a connection attempt: waited for in a thread
            waits.append(deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self.bus.stop))
        if self.db is not None:
            self.db.stop()
        self.passwords.stop()
        return DeferredList(waits, consumeErrors=True)
