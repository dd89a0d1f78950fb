"""Publish the outbox to RabbitMQ: in id order, with publisher confirms, marked published once confirmed.

Rows are written by `confdb.events.emit` in the transaction of the change. `publish_pending` (called by
pbx-admin right after a commit, and by the pbx-event-relay service) publishes every unpublished row and
marks it published only after the broker confirmed it, so a row is published at least once, and exactly
once unless the publisher dies between the broker's confirm and its own commit. Publishers are
serialised by a transaction-level advisory lock; one that finds the lock taken returns at once, since
the holder publishes the rows in order. See docs/events.md for the guarantees consumers get.

Every broker operation is bounded by `timeout`: a RabbitMQ that is down, unreachable or stuck makes
these functions fail fast with `BrokerError`, and the rows stay pending.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pika
import pika.adapters.utils.connection_workflow as pika_workflow
import pika.exceptions
import psycopg
from psycopg import pq

from confdb.events import EXCHANGE

log = logging.getLogger(__name__)
# pika logs each failed connection at ERROR with a traceback; the caller reports BrokerError in one line.
# Without this, a program that configures no logging (pbx-admin) would print those via logging.lastResort.
logging.getLogger("pika").addHandler(logging.NullHandler())

# What a broker that is down, refuses or does not answer raises, besides plain socket errors.
_BROKER_FAILURES = (
    pika.exceptions.AMQPError,
    pika.exceptions.ChannelError,
    pika_workflow.AMQPConnectorException,
    OSError,
)

# pg_try_advisory_xact_lock key held while a batch is published and marked: b"pbxoutbx" as a bigint.
LOCK_KEY = int.from_bytes(b"pbxoutbx", "big")
DEFAULT_TIMEOUT = 2.0
DEFAULT_BATCH = 500


class PublishError(Exception):
    """The pending rows could not be published now; they stay in the outbox for a later attempt."""


class BrokerError(PublishError):
    """RabbitMQ refused, did not answer within the timeout, or could not be reached."""


class OutboxDatabaseError(PublishError):
    """PostgreSQL failed while reading or marking the outbox."""


@dataclass(frozen=True)
class OutboxRow:
    id: int
    routing_key: str
    payload: Any
    created_at: dt.datetime


@dataclass(frozen=True)
class DrainResult:
    published: int
    lock_busy: bool  # another publisher held the lock: it publishes what is pending


@dataclass(frozen=True)
class OutboxStatus:
    pending: int
    published: int
    oldest_pending_age: float | None  # seconds since the oldest pending row was written
    last_published_at: dt.datetime | None


def connection_parameters(url: str, timeout: float) -> pika.URLParameters:
    """pika parameters for `url` with every wait bounded by `timeout` seconds. ValueError if malformed."""
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.retry_delay = 0
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.blocked_connection_timeout = timeout
    return params


class Publisher:
    """One AMQP connection with a confirm-mode channel to the topic exchange, opened on first use.

    After any failure the connection is dropped and the next `publish` opens a new one.
    """

    def __init__(self, url: str, *, exchange: str = EXCHANGE, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url
        self.exchange = exchange
        self.timeout = timeout
        self._conn: pika.BlockingConnection | None = None
        self._channel: Any = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.is_open

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        if self.connected:
            return
        self.close()
        try:
            params = connection_parameters(self.url, self.timeout)
        except ValueError as exc:
            raise BrokerError(f"bad AMQP URL: {exc}") from None
        with self._failures("cannot connect to RabbitMQ"):
            self._conn = pika.BlockingConnection(params)
            with self._deadline("RabbitMQ did not open the channel"):
                channel = self._conn.channel()
                channel.confirm_delivery()
                channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            self._channel = channel

    def publish(self, row: OutboxRow) -> None:
        """Publish one row; on return the broker has confirmed it. BrokerError otherwise."""
        self.connect()
        body = json.dumps(row.payload, separators=(",", ":"), ensure_ascii=False).encode()
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,  # persistent
            message_id=str(row.id),
            timestamp=int(row.created_at.timestamp()),
            headers={"x-outbox-id": row.id},
        )
        with (
            self._failures(f"publishing outbox row {row.id} failed"),
            self._deadline(f"no publisher confirm within {self.timeout:g}s"),
        ):
            self._channel.basic_publish(self.exchange, row.routing_key, body, properties)

    def keepalive(self) -> None:
        """Let the idle connection answer heartbeats; drop it if the broker closed it."""
        if self._conn is None:
            return
        try:
            with self._deadline("RabbitMQ heartbeat"):
                self._conn.process_data_events(0)
        except _BROKER_FAILURES as exc:
            log.debug("AMQP connection lost while idle: %s", exc)
            self._abandon()

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is None or not conn.is_open:
            return
        try:
            with self._deadline("RabbitMQ did not confirm the close", conn):
                conn.close()
        except _BROKER_FAILURES as exc:
            log.debug("closing the AMQP connection: %s", exc)

    # -- helpers --------------------------------------------------------------------------------

    @contextmanager
    def _failures(self, what: str) -> Iterator[None]:
        try:
            yield
        except _BROKER_FAILURES as exc:
            self._abandon()
            raise BrokerError(f"{what}: {_describe(exc)}") from exc

    @contextmanager
    def _deadline(self, what: str, conn: pika.BlockingConnection | None = None) -> Iterator[None]:
        """Abort the connection if the body waits for the broker longer than `timeout`.

        BlockingConnection waits without limit for RPC replies and publisher confirms; a broker that
        accepts bytes but does not answer (stopped, overloaded, partitioned) would hang us until the
        heartbeat gives up. pika tears its stream down the same way for blocked_connection_timeout.
        """
        conn = conn or self._conn
        impl = getattr(conn, "_impl", None)
        if impl is None:
            yield
            return

        def expire() -> None:
            impl._terminate_stream(pika.exceptions.AMQPConnectionError(what))

        timer = impl._adapter_call_later(self.timeout, expire)
        try:
            yield
        finally:
            impl._adapter_remove_timeout(timer)

    def _abandon(self) -> None:
        """Forget a failed connection without waiting for the broker."""
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            try:
                with self._deadline("close", conn):
                    conn.close()
            except _BROKER_FAILURES:
                pass


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or repr(exc)
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def drain(conn: psycopg.Connection[Any], publisher: Publisher, *, batch: int = DEFAULT_BATCH) -> DrainResult:
    """Publish the unpublished rows in id order, `batch` rows per transaction, until none is left.

    `conn` must not be inside a transaction: rows of an uncommitted transaction must never be published.
    Raises BrokerError or OutboxDatabaseError; the rows confirmed before the failure are marked first.
    """
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise ValueError("publish the outbox after the commit, outside any transaction")
    total = 0
    try:
        while True:
            published, more, busy = _publish_batch(conn, publisher, batch)
            total += published
            if busy:
                return DrainResult(total, lock_busy=True)
            if not more:
                return DrainResult(total, lock_busy=False)
    except psycopg.Error as exc:
        raise OutboxDatabaseError(f"PostgreSQL: {' '.join(str(exc).split())}") from exc


def _publish_batch(conn: psycopg.Connection[Any], publisher: Publisher, batch: int) -> tuple[int, bool, bool]:
    """One transaction: take the lock, publish up to `batch` rows, mark the confirmed ones.

    Returns (rows published, rows were found, lock was busy).
    """
    failure: BrokerError | None = None
    confirmed: list[int] = []
    with conn.transaction():
        locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()
        if not (locked and locked[0]):
            return 0, False, True
        rows = [
            OutboxRow(*r)
            for r in conn.execute(
                "SELECT id, routing_key, payload, created_at FROM outbox WHERE published_at IS NULL "
                "ORDER BY id LIMIT %s",
                (batch,),
            )
        ]
        for row in rows:
            try:
                publisher.publish(row)
            except BrokerError as exc:
                failure = exc
                break
            confirmed.append(row.id)
        if confirmed:
            conn.execute(
                "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY(%s)", (confirmed,)
            )
    if failure is not None:
        raise failure
    return len(confirmed), bool(rows), False


def publish_pending(
    conn: psycopg.Connection[Any],
    url: str,
    *,
    exchange: str = EXCHANGE,
    timeout: float = DEFAULT_TIMEOUT,
    batch: int = DEFAULT_BATCH,
) -> int:
    """Publish every committed, unpublished outbox row to `exchange` at `url`; return how many.

    Returns 0 at once when another publisher holds the lock (it publishes them, in order). Connects to
    RabbitMQ only if a row is pending. Raises PublishError (BrokerError, OutboxDatabaseError) within
    about `timeout` seconds per broker operation; the rows not confirmed stay pending.
    """
    with Publisher(url, exchange=exchange, timeout=timeout) as publisher:
        return drain(conn, publisher, batch=batch).published


def purge_published(conn: psycopg.Connection[Any], older_than_days: float) -> int:
    """Delete rows published more than `older_than_days` days ago; return how many. Commits."""
    with conn.transaction():
        cur = conn.execute(
            "DELETE FROM outbox WHERE published_at IS NOT NULL "
            "AND published_at < now() - make_interval(secs => %s)",
            (older_than_days * 86400.0,),
        )
        return cur.rowcount


def status(conn: psycopg.Connection[Any]) -> OutboxStatus:
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE published_at IS NULL), count(published_at), "
        "extract(epoch FROM now() - min(created_at) FILTER (WHERE published_at IS NULL))::float8, "
        "max(published_at) FROM outbox"
    ).fetchone()
    assert row is not None
    return OutboxStatus(pending=row[0], published=row[1], oldest_pending_age=row[2], last_published_at=row[3])
