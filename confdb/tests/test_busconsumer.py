"""The daemons' config-event consumer against a real RabbitMQ: delivery, a broker that goes away and comes
back (back on the bus within about two seconds, one log line per change of state), malformed events."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from confdb.busconsumer import BusConsumer, describe
from harness.rabbitmq import RabbitMQServer


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


@pytest.fixture
def consumer(rabbitmq: RabbitMQServer) -> Iterator[tuple[BusConsumer, list[Any], Recorder]]:
    got: list[Any] = []
    lock = threading.Lock()

    def dispatch(function: Any, *args: Any) -> None:
        with lock:
            function(*args)

    log = logging.getLogger(f"test.bus.{id(got)}")
    recorder = Recorder()
    log.addHandler(recorder)
    log.setLevel(logging.DEBUG)
    bus = BusConsumer(
        rabbitmq.url,
        lambda key, payload: got.append((key, payload)),
        lambda: got.append("connected"),
        bindings=("user.*",),
        exchange="test.bus",
        dispatch=dispatch,
        log=log,
    )
    bus.start()
    assert bus.connected.wait(10)
    yield bus, got, recorder
    bus.stop()


def publish(rabbitmq: RabbitMQServer, key: str, body: bytes) -> None:
    conn = pika.BlockingConnection(rabbitmq.pika_params())
    try:
        channel = conn.channel()
        channel.exchange_declare("test.bus", exchange_type="topic", durable=True)
        channel.basic_publish("test.bus", key, body)
    finally:
        conn.close()


def wait_for(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_events_and_malformed_ones(rabbitmq: RabbitMQServer, consumer: Any) -> None:
    bus, got, recorder = consumer
    publish(rabbitmq, "user.created", json.dumps({"id": 7}).encode())
    publish(rabbitmq, "user.edited", b"[not an object")
    publish(rabbitmq, "line.created", json.dumps({"id": 8}).encode())  # not bound
    publish(rabbitmq, "user.deleted", json.dumps({"id": 7}).encode())
    wait_for(lambda: len(got) == 3)
    assert got == ["connected", ("user.created", {"id": 7}), ("user.deleted", {"id": 7})]
    assert bus.rejected == 1 and any("malformed event user.edited" in line for line in recorder.lines)


def test_a_broker_restart_costs_two_seconds_and_a_few_lines(rabbitmq: RabbitMQServer, consumer: Any) -> None:
    bus, got, recorder = consumer
    rabbitmq.stop()
    wait_for(lambda: not bus.connected.is_set())
    time.sleep(6)  # several failed attempts: still one line
    rabbitmq.start()
    back = time.monotonic()
    assert bus.connected.wait(15)
    assert time.monotonic() - back < 4  # backoff at most 2 s, plus the connection itself
    wait_for(lambda: got.count("connected") == 2)  # the daemon is told to catch up
    warnings = [line for line in recorder.lines if line.startswith("WARNING")]
    assert len(warnings) == 1 and "connection lost" in warnings[0], recorder.lines
    assert all("()" not in line for line in recorder.lines)  # a reason, never an empty one
    publish(rabbitmq, "user.created", json.dumps({"id": 9}).encode())
    wait_for(lambda: ("user.created", {"id": 9}) in got)


def test_unreachable_is_said_once_with_a_reason() -> None:
    recorder = Recorder()
    log = logging.getLogger("test.bus.unreachable")
    log.addHandler(recorder)
    bus = BusConsumer("amqp://pbx:x@127.0.0.1:9/%2F", lambda *_: None, lambda: None, log=log)
    bus.start()
    time.sleep(3)
    bus.stop()
    warnings = [line for line in recorder.lines if line.startswith("WARNING")]
    assert len(warnings) == 1 and "unreachable (" in warnings[0] and "()" not in warnings[0], warnings
    assert describe(ValueError()) == "ValueError"
