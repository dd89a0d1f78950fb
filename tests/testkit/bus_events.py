"""Test helpers for the event bus: a durable queue bound to a private exchange, and condition waits."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions


@dataclass(frozen=True)
class Received:
    routing_key: str
    message_id: str
    headers: dict[str, Any]
    content_type: str
    delivery_mode: int
    timestamp: int
    payload: dict[str, Any]

    @property
    def outbox_id(self) -> int:
        return int(self.message_id)


class EventQueue:
    """A durable queue bound with `#` to a fresh durable topic exchange; survives a broker restart."""

    def __init__(self, url: str) -> None:
        self.url = url
        suffix = uuid.uuid4().hex[:8]
        self.exchange = f"pbx.config.test-{suffix}"
        self.queue = f"test-events-{suffix}"
        with self._channel() as channel:
            channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            channel.queue_declare(self.queue, durable=True)
            channel.queue_bind(self.queue, self.exchange, routing_key="#")

    def _channel(self) -> _Channel:
        return _Channel(self.url)

    def collect(self, count: int, timeout: float = 30.0, settle: float = 0.5) -> list[Received]:
        """Read until `count` messages arrived (or `timeout`), then `settle` seconds more for extras."""
        got: list[Received] = []
        with self._channel() as channel:
            deadline = time.monotonic() + timeout
            quiet_until: float | None = None
            while True:
                method, props, body = channel.basic_get(self.queue, auto_ack=True)
                if method is not None:
                    got.append(
                        Received(
                            method.routing_key,
                            props.message_id,
                            dict(props.headers or {}),
                            props.content_type,
                            props.delivery_mode,
                            props.timestamp,
                            json.loads(body),
                        )
                    )
                    continue
                now = time.monotonic()
                if len(got) >= count:
                    quiet_until = quiet_until or now + settle
                    if now >= quiet_until:
                        return got
                elif now >= deadline:
                    return got
                time.sleep(0.02)

    def delete(self) -> None:
        try:
            with self._channel() as channel:
                channel.queue_delete(self.queue)
                channel.exchange_delete(self.exchange)
        except pika.exceptions.AMQPError:
            pass


class _Channel:
    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> Any:
        params = pika.URLParameters(self.url)
        params.socket_timeout = 10
        params.connection_attempts = 1
        self._conn = pika.BlockingConnection(params)
        return self._conn.channel()

    def __exit__(self, *exc: object) -> None:
        if self._conn.is_open:
            self._conn.close()


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
