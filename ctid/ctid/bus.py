"""Config events from RabbitMQ (exchange ``pbx.config``), consumed in one background thread.

pika's BlockingConnection runs in its own thread, never on the reactor; each event is handed to the reactor
with ``callFromThread``. The queue is exclusive and auto-deleted (ctid rebuilds its directory from the
database at start and after each reconnect, as docs/events.md asks), bound to ``user.*``, ``line.*``,
``user_line.*``, ``agent.*``, ``queue.*`` and ``queue_member.*``. Reconnects with a capped backoff.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

log = Logger()

BINDINGS = ("user.*", "line.*", "user_line.*", "agent.*", "queue.*", "queue_member.*")


class BusConsumer:
    def __init__(
        self,
        url: str,
        on_event: Callable[[str, dict[str, Any]], object],
        on_connected: Callable[[], object],
        *,
        exchange: str = "pbx.config",
        call_in_reactor: Callable[..., object],
        timeout: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.url = url
        self.exchange = exchange
        self.on_event = on_event
        self.on_connected = on_connected
        self._call = call_in_reactor
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.received = 0
        self.rejected = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ctid-bus", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        delay = self.backoff_initial
        while not self._stop.is_set():
            try:
                self._consume()
                delay = self.backoff_initial
            except Exception as exc:
                if self.connected:
                    log.warn("ctid: bus connection lost ({err})", err=exc)
                else:
                    log.warn("ctid: bus unreachable ({err}); retrying in {delay:.1f} s", err=exc, delay=delay)
                self.connected = False
                self._stop.wait(delay)
                delay = min(self.backoff_max, delay * 2)

    def _consume(self) -> None:
        import pika

        params = pika.URLParameters(self.url)
        params.socket_timeout = self.timeout
        params.stack_timeout = self.timeout
        params.blocked_connection_timeout = self.timeout
        params.connection_attempts = 1
        params.heartbeat = 30
        conn = pika.BlockingConnection(params)
        try:
            channel = conn.channel()
            channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            for key in BINDINGS:
                channel.queue_bind(queue, self.exchange, routing_key=key)
            channel.basic_qos(prefetch_count=100)
            self.connected = True
            log.info("ctid: bus connected, consuming {exchange}", exchange=self.exchange)
            self._call(self.on_connected)
            for method, _props, body in channel.consume(queue, inactivity_timeout=0.5):
                if self._stop.is_set():
                    break
                if method is None:
                    continue
                self._deliver(method.routing_key, body)
                channel.basic_ack(method.delivery_tag)
            channel.cancel()
        finally:
            self.connected = False
            with contextlib.suppress(Exception):
                conn.close()

    def _deliver(self, routing_key: str, body: bytes) -> None:
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self.rejected += 1
            log.warn("ctid: ignoring a malformed config event {key}: {err}", key=routing_key, err=exc)
            return
        self.received += 1
        self._call(self.on_event, routing_key, payload)
