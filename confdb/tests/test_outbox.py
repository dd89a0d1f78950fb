"""The outbox publisher over real PostgreSQL and RabbitMQ: order, exactly once per row, outages, timeouts."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from confdb import events, outbox
from confdb.writer import users
from harness.rabbitmq import RabbitMQServer
from testkit.bus_events import EventQueue
from testkit.pbxdb import PbxDatabase

TIMEOUT = 2.0


@pytest.fixture
def broker(rabbitmq: RabbitMQServer) -> RabbitMQServer:
    """The session's RabbitMQ, started again if an earlier test left it stopped."""
    rabbitmq.start()
    return rabbitmq


@pytest.fixture
def events_queue(broker: RabbitMQServer) -> Iterator[EventQueue]:
    queue = EventQueue(broker.url)
    yield queue
    if broker.running:
        queue.delete()


@pytest.fixture
def conn(pbx_db: PbxDatabase) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pbx_db.dsn()) as connection:
        yield connection


def _rows(conn: psycopg.Connection[Any]) -> list[tuple[int, str, Any, bool]]:
    with conn.transaction():
        return conn.execute(
            "SELECT id, routing_key, payload, published_at IS NOT NULL FROM outbox ORDER BY id"
        ).fetchall()


def _emit(conn: psycopg.Connection[Any], count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        with conn.transaction():
            events.emit(conn, "user", "updated", id=i, fields=["dnd"])


def test_events_written_while_rabbitmq_is_down_arrive_in_order_exactly_once(
    conn, broker: RabbitMQServer, events_queue: EventQueue
) -> None:
    broker.stop()
    try:
        slowest = 0.0
        for i in range(100):
            with conn.transaction():
                users.create_user(conn, users.UserSpec(firstname=f"U{i}", exten=str(2000 + i)))
            started = time.monotonic()
            with pytest.raises(outbox.BrokerError):
                outbox.publish_pending(conn, broker.url, exchange=events_queue.exchange, timeout=TIMEOUT)
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < TIMEOUT + 1
    finally:
        broker.start()
    rows = _rows(conn)
    assert len(rows) >= 100 * 3  # user, line, user_line, extension... per created user
    assert not any(published for *_, published in rows)

    published = outbox.publish_pending(conn, broker.url, exchange=events_queue.exchange, timeout=TIMEOUT)
    assert published == len(rows)

    received = events_queue.collect(len(rows))
    assert [m.outbox_id for m in received] == [r[0] for r in rows]  # all, in id order, each once
    assert [(m.routing_key, m.payload) for m in received] == [(r[1], r[2]) for r in rows]
    assert sum(m.routing_key == "user.created" for m in received) == 100
    assert all(m.headers["x-outbox-id"] == m.outbox_id for m in received)
    assert {(m.content_type, m.delivery_mode) for m in received} == {("application/json", 2)}
    assert all(abs(m.timestamp - time.time()) < 600 for m in received)
    assert all(published for *_, published in _rows(conn))
    assert outbox.publish_pending(conn, broker.url, exchange=events_queue.exchange, timeout=TIMEOUT) == 0
    assert events_queue.collect(1, timeout=1.0) == []


def test_payload_format(conn, events_queue: EventQueue, broker: RabbitMQServer) -> None:
    with conn.transaction():
        created = users.create_user(conn, users.UserSpec(firstname="Alice", exten="1001"))
    outbox.publish_pending(conn, broker.url, exchange=events_queue.exchange)
    received = {m.routing_key: m.payload for m in events_queue.collect(4)}
    assert received["user.created"] == {
        "version": 1,
        "object": "user",
        "action": "created",
        "data": {"id": created.id, "uuid": created.uuid},
    }
    assert received["extension.created"]["data"]["exten"] == "1001"


def test_concurrent_publishers_neither_duplicate_nor_reorder(
    pbx_db: PbxDatabase, conn, events_queue: EventQueue, broker: RabbitMQServer
) -> None:
    writing = threading.Event()
    writing.set()
    errors: list[BaseException] = []
    counts = [0, 0]

    def publish(slot: int) -> None:
        try:
            with psycopg.connect(pbx_db.dsn()) as own:
                while True:
                    still_writing = writing.is_set()
                    counts[slot] += outbox.publish_pending(
                        own, broker.url, exchange=events_queue.exchange, timeout=10, batch=7
                    )
                    if not still_writing:
                        return
        except BaseException as exc:
            errors.append(exc)

    publishers = [threading.Thread(target=publish, args=(slot,)) for slot in (0, 1)]
    for thread in publishers:
        thread.start()
    try:
        _emit(conn, 300)
    finally:
        writing.clear()
        for thread in publishers:
            thread.join(60)
    assert not errors
    # Each publisher ends with a full pass after the last commit, but a pass that finds the lock taken
    # leaves the rest to the holder: publish what a lost race may have left.
    outbox.publish_pending(conn, broker.url, exchange=events_queue.exchange)
    rows = _rows(conn)
    received = events_queue.collect(len(rows))
    assert [m.outbox_id for m in received] == [r[0] for r in rows]
    assert all(published for *_, published in rows)
    assert sum(counts) <= len(rows)


def test_a_held_lock_makes_other_publishers_return_at_once(
    pbx_db: PbxDatabase, conn, events_queue: EventQueue, broker: RabbitMQServer
) -> None:
    _emit(conn, 3)
    with psycopg.connect(pbx_db.dsn()) as holder, holder.transaction():
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (outbox.LOCK_KEY,))
        started = time.monotonic()
        assert outbox.publish_pending(conn, broker.url, exchange=events_queue.exchange) == 0
        assert time.monotonic() - started < 2  # no waiting for the lock, no broker connection
    assert outbox.publish_pending(conn, broker.url, exchange=events_queue.exchange) == 3
    assert [m.payload["data"]["id"] for m in events_queue.collect(3)] == [0, 1, 2]


def test_uncommitted_events_are_not_published(
    pbx_db: PbxDatabase, conn, events_queue: EventQueue, broker: RabbitMQServer
) -> None:
    with psycopg.connect(pbx_db.dsn()) as other, other.transaction():
        events.emit(other, "user", "created", id=1)
        _emit(conn, 1, start=2)
        assert outbox.publish_pending(conn, broker.url, exchange=events_queue.exchange) == 1
    assert outbox.publish_pending(conn, broker.url, exchange=events_queue.exchange) == 1
    # The rolled-in row has the lower id but committed later: it is published after (docs/events.md).
    received = events_queue.collect(2)
    assert [m.routing_key for m in received] == ["user.updated", "user.created"]
    assert received[0].outbox_id > received[1].outbox_id


def test_publishing_inside_a_transaction_is_refused(conn, broker: RabbitMQServer) -> None:
    events.emit(conn, "user", "created", id=1)  # an implicit transaction is now open
    with pytest.raises(ValueError, match="outside any transaction"):
        outbox.publish_pending(conn, broker.url)


def test_no_connection_to_rabbitmq_when_nothing_is_pending(conn) -> None:
    assert outbox.publish_pending(conn, "amqp://nobody:x@127.0.0.1:1/%2F", timeout=0.5) == 0


# -- failing fast -----------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_a_closed_port_fails_within_the_timeout(conn) -> None:
    _emit(conn, 1)
    started = time.monotonic()
    with pytest.raises(outbox.PublishError, match="cannot connect"):
        outbox.publish_pending(conn, f"amqp://pbx:x@127.0.0.1:{_closed_port()}/%2F", timeout=TIMEOUT)
    assert time.monotonic() - started < TIMEOUT + 1
    assert not any(published for *_, published in _rows(conn))


def test_a_silent_server_fails_within_the_timeout(conn) -> None:
    _emit(conn, 1)
    with _silent_listener() as port:
        started = time.monotonic()
        with pytest.raises(outbox.BrokerError):
            outbox.publish_pending(conn, f"amqp://pbx:x@127.0.0.1:{port}/%2F", timeout=1.0)
        assert time.monotonic() - started < 1.0 + 1


def test_a_frozen_broker_fails_within_the_timeout_and_nothing_is_lost(
    conn, events_queue: EventQueue, broker: RabbitMQServer
) -> None:
    """A broker that accepted the connection, then stops answering (SIGSTOP): no confirm, no hang."""
    _emit(conn, 3)
    publisher = outbox.Publisher(broker.url, exchange=events_queue.exchange, timeout=1.0)
    publisher.connect()
    pid = broker.pid
    assert pid is not None
    import os

    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(outbox.BrokerError, match="confirm"):
            outbox.drain(conn, publisher)
        assert time.monotonic() - started < 1.0 + 1
        started = time.monotonic()
        publisher.close()
        assert time.monotonic() - started < 1.0 + 1
    finally:
        os.kill(pid, signal.SIGCONT)
    rows = _rows(conn)
    assert not any(published for *_, published in rows)
    assert outbox.publish_pending(conn, broker.url, exchange=events_queue.exchange) == 3
    received = [m.outbox_id for m in events_queue.collect(3)]
    # The first message reached the broker's socket before the freeze and was routed after it: without
    # its confirm it is published again, with the same message_id (docs/events.md, at least once).
    assert received in ([r[0] for r in rows], [rows[0][0]] + [r[0] for r in rows])


# -- marking, retention, status ----------------------------------------------------------------------


class _FailingPublisher:
    """Confirms `ok` rows, then fails like a broker going away."""

    def __init__(self, ok: int) -> None:
        self.ok = ok
        self.seen: list[int] = []

    def publish(self, row: outbox.OutboxRow) -> None:
        if len(self.seen) >= self.ok:
            raise outbox.BrokerError("gone")
        self.seen.append(row.id)


def test_rows_confirmed_before_a_failure_are_marked(conn) -> None:
    _emit(conn, 5)
    publisher = _FailingPublisher(ok=2)
    with pytest.raises(outbox.BrokerError):
        outbox.drain(conn, publisher)  # type: ignore[arg-type]
    rows = _rows(conn)
    assert [published for *_, published in rows] == [True, True, False, False, False]
    assert publisher.seen == [r[0] for r in rows[:2]]


def test_purge_deletes_only_old_published_rows(conn) -> None:
    _emit(conn, 4)
    with conn.transaction():
        ids = [r[0] for r in conn.execute("SELECT id FROM outbox ORDER BY id")]
        conn.execute("UPDATE outbox SET published_at = now() - interval '10 days' WHERE id = %s", (ids[0],))
        conn.execute("UPDATE outbox SET published_at = now() - interval '2 days' WHERE id = %s", (ids[1],))
        conn.execute("UPDATE outbox SET created_at = now() - interval '30 days' WHERE id = %s", (ids[2],))
    assert outbox.purge_published(conn, 7) == 1
    assert [r[0] for r in _rows(conn)] == ids[1:]
    assert outbox.purge_published(conn, 1) == 1
    assert [r[0] for r in _rows(conn)] == ids[2:]  # pending rows are never deleted, however old


def test_status(conn, events_queue: EventQueue, broker: RabbitMQServer) -> None:
    empty = outbox.status(conn)
    assert (empty.pending, empty.published, empty.oldest_pending_age) == (0, 0, None)
    assert empty.last_published_at is None
    conn.commit()
    _emit(conn, 2)
    pending = outbox.status(conn)
    assert (pending.pending, pending.published) == (2, 0)
    assert pending.oldest_pending_age is not None and pending.oldest_pending_age >= 0
    conn.commit()
    outbox.publish_pending(conn, broker.url, exchange=events_queue.exchange)
    done = outbox.status(conn)
    assert (done.pending, done.published, done.oldest_pending_age) == (2 - 2, 2, None)
    assert done.last_published_at is not None
