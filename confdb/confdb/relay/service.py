"""The relay loop: wait for a NOTIFY on `outbox` (or the poll interval), publish what is pending, repeat.

Failure paths:
- RabbitMQ down, refusing or slow: the rows stay pending; retries follow a capped exponential backoff,
  during which notifications are not acted upon (they only queue up). One log line when the bus goes
  down and one when it is back, not one per attempt.
- PostgreSQL down: the connection is dropped and reopened with the same backoff; on reconnect the relay
  LISTENs again and publishes everything pending (the poll would find it anyway).
- Another publisher (pbx-admin) holds the outbox lock: try again shortly, since it may have looked
  before the last commit.
`stop()` (from a signal handler) ends the loop after the current batch; each broker wait is bounded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import psycopg

from confdb import outbox
from confdb.events import NOTIFY_CHANNEL
from confdb.relay.settings import Settings

log = logging.getLogger("pbx-event-relay")

BUSY_RETRY = 0.5  # seconds before looking again when another publisher held the lock
KEEPALIVE_INTERVAL = 10.0  # an idle AMQP connection answers heartbeats at least this often


class Next(NamedTuple):
    ok: bool  # everything pending was published
    delay: float  # seconds before the next round
    backoff: bool = False  # after a failure: do not let notifications cut the delay short


class Backoff:
    """Delays 0.5, 1, 2, 4 ... seconds, capped at `cap`."""

    def __init__(self, cap: float, initial: float = 0.5) -> None:
        self.cap = cap
        self.initial = min(initial, cap)
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * 2 ** min(self.failures, 30))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


class Link:
    """Up/down state of one dependency; logs only the transitions."""

    def __init__(self, name: str, cap: float) -> None:
        self.name = name
        self.up = True
        self.backoff = Backoff(cap)

    def failed(self, error: BaseException | str, detail: str = "") -> float:
        """Record a failure; return how long to wait before the next attempt."""
        error = " ".join(str(error).split())  # psycopg's messages span lines
        if self.up:
            log.warning("%s unavailable, retrying with backoff%s: %s", self.name, detail, error)
            self.up = False
        else:
            log.debug("%s still unavailable: %s", self.name, error)
        return self.backoff.next_delay()

    def succeeded(self, detail: str = "") -> None:
        if not self.up:
            log.info("%s available again%s", self.name, detail)
            self.up = True
        self.backoff.reset()


class Relay:
    def __init__(
        self,
        settings: Settings,
        *,
        connect: Callable[..., psycopg.Connection[Any]] = psycopg.connect,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._connect = connect
        self._clock = clock
        self._db: psycopg.Connection[Any] | None = None
        self._publisher = outbox.Publisher(
            settings.bus_url, exchange=settings.exchange, timeout=settings.publish_timeout
        )
        self.postgres = Link("PostgreSQL", settings.max_backoff)
        self.rabbitmq = Link("RabbitMQ", settings.max_backoff)
        self._notified = False
        self._stopping = False
        self._next_purge = clock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.published = 0  # since start

    # -- control --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end; safe to call from a signal handler."""
        self._stopping = True
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def run(self, *, once: bool = False) -> bool:
        """Relay until stop(); with `once`, publish what is pending and return whether all of it went out."""
        log.info(
            "relaying the outbox to exchange %s, polling every %gs",
            self.settings.exchange,
            self.settings.poll_interval,
        )
        try:
            while not self._stopping:
                after = self.step()
                if once and (after.ok or after.backoff):
                    return after.ok
                if after.backoff:
                    self._sleep(after.delay)
                elif after.delay > 0:
                    self._wait(after.delay)
            return True
        finally:
            self.close()
            log.info("stopped; %d events published since start", self.published)

    def close(self) -> None:
        self._publisher.close()
        self._drop_db()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # -- one round ------------------------------------------------------------------------------

    def step(self) -> Next:
        """Publish what is pending and purge if due; say when to look again."""
        if self._db is None:
            try:
                self._db = self._open_db()
            except psycopg.Error as exc:
                return Next(False, self.postgres.failed(exc), backoff=True)
            self.postgres.succeeded()
        self._notified = False
        try:
            result = outbox.drain(self._db, self._publisher, batch=self.settings.batch)
            self._purge_if_due()
        except outbox.OutboxDatabaseError as exc:
            self._drop_db()
            return Next(False, self.postgres.failed(exc), backoff=True)
        except outbox.BrokerError as exc:
            return Next(False, self.rabbitmq.failed(exc, self._pending_detail()), backoff=True)
        self.published += result.published
        if result.published or self._publisher.connected:
            self.rabbitmq.succeeded(f", published {result.published} pending events")
        if result.published:
            log.debug("published %d events", result.published)
        if result.lock_busy:
            return Next(False, BUSY_RETRY)
        if self._notified:
            return Next(True, 0.0)  # a commit arrived while we were publishing: look again now
        return Next(True, self.settings.poll_interval)

    def _pending_detail(self) -> str:
        if self._db is None:
            return ""
        try:
            return f" ({outbox.status(self._db).pending} events waiting)"
        except psycopg.Error:
            return ""

    def _purge_if_due(self) -> None:
        if self.settings.retention_days <= 0 or self._clock() < self._next_purge:
            return
        assert self._db is not None
        try:
            deleted = outbox.purge_published(self._db, self.settings.retention_days)
        except psycopg.Error as exc:
            raise outbox.OutboxDatabaseError(f"PostgreSQL: {' '.join(str(exc).split())}") from exc
        self._next_purge = self._clock() + self.settings.purge_interval
        if deleted:
            log.info(
                "deleted %d events published more than %g days ago", deleted, self.settings.retention_days
            )

    # -- PostgreSQL -----------------------------------------------------------------------------

    def _open_db(self) -> psycopg.Connection[Any]:
        s = self.settings
        conn = self._connect(
            s.dsn,
            autocommit=True,
            connect_timeout=s.connect_timeout,
            options=f"-c statement_timeout={s.statement_timeout_ms}",
            application_name="pbx-event-relay",
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        try:
            conn.add_notify_handler(self._on_notify)
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except psycopg.Error:
            conn.close()
            raise
        return conn

    def _drop_db(self) -> None:
        conn, self._db = self._db, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _on_notify(self, _notify: psycopg.Notify) -> None:
        self._notified = True

    # -- waiting --------------------------------------------------------------------------------

    def _wait(self, timeout: float) -> None:
        """Until a notification may have arrived, stop() was called, or `timeout` passed."""
        deadline = self._clock() + timeout
        while not self._stopping:
            self._publisher.keepalive()
            remaining = deadline - self._clock()
            if remaining <= 0 or self._db is None:
                return
            readable, _, _ = select.select(
                [self._db.fileno(), self._wake_r], [], [], min(remaining, KEEPALIVE_INTERVAL)
            )
            self._drain_wake_pipe()
            if self._db.fileno() in readable:
                return  # drain() reads the notification (or the error, if the server went away)

    def _sleep(self, seconds: float) -> None:
        """Back off for `seconds`, interrupted only by stop()."""
        if self._stopping:
            return
        with contextlib.suppress(InterruptedError):
            select.select([self._wake_r], [], [], seconds)
        self._drain_wake_pipe()

    def _drain_wake_pipe(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wake_r, 64):
                pass
