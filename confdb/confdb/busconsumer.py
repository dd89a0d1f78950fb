"""Config events from RabbitMQ, for the daemons that follow them (confgend, ctid): one consumer.

pika's BlockingConnection runs in a thread of its own, never on a daemon's event loop; each event goes to
``dispatch(on_event, routing_key, payload)`` (the daemon's ``reactor.callFromThread``). The queue is
exclusive and auto-deleted: events sent while the daemon is away are not kept for it, so ``on_connected``
is dispatched at every (re)connection and the daemon catches up from the database (docs/events.md).

While the broker is away, a new connection is tried after ``backoff_initial`` seconds, then at doubling
intervals up to ``backoff_max`` (2 s): the daemon is back on the bus within about two seconds of the
broker's return. One log line per change of state (connected, lost, unreachable, back), never one per
attempt; pika's own loggers are for debugging (``quiet_pika``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from confdb.events import EXCHANGE

Dispatch = Callable[..., object]


def quiet_pika(level: int = logging.CRITICAL) -> None:
    """pika logs every refused connection at ERROR, with a traceback: the consumer says it in one line."""
    logging.getLogger("pika").setLevel(level)


def describe(exc: BaseException) -> str:
    """A one-line reason, also for pika's errors whose str() is empty."""
    text = str(exc).strip() or ", ".join(str(a) for a in getattr(exc, "args", ()) if str(a).strip())
    cause = exc.__cause__ or exc.__context__
    if not text and cause is not None and cause is not exc:
        return f"{type(exc).__name__}: {describe(cause)}"
    return f"{type(exc).__name__}: {' '.join(text.split())}" if text else type(exc).__name__


class BusConsumer:
    """``start()`` then ``stop()``; ``connected`` is set while consuming."""

    def __init__(
        self,
        url: str,
        on_event: Callable[[str, dict[str, Any]], object],
        on_connected: Callable[[], object],
        *,
        bindings: Sequence[str] = ("#",),
        exchange: str = EXCHANGE,
        dispatch: Dispatch = lambda function, *args: function(*args),
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        name: str = "config bus",
        timeout: float = 5.0,
        backoff_initial: float = 0.25,
        backoff_max: float = 2.0,
    ) -> None:
        self.url = url
        self.on_event = on_event
        self.on_connected = on_connected
        self.bindings = tuple(bindings)
        self.exchange = exchange
        self.dispatch = dispatch
        self.log = log or logging.getLogger("confdb.bus")
        self.name = name
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.connected = threading.Event()
        self.received = 0
        self.rejected = 0
        self.connections = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self.backoff_initial
        down_since_said = False  # "unreachable" is said once per outage
        while not self._stopping.is_set():
            try:
                self._consume()
                delay = self.backoff_initial
            except Exception as exc:
                if self._stopping.is_set():
                    break
                if self.connected.is_set():
                    self.log.warning("%s: connection lost (%s); reconnecting", self.name, describe(exc))
                    down_since_said = True
                elif not down_since_said:
                    self.log.warning(
                        "%s: unreachable (%s); retrying every %g s at most, quietly",
                        self.name, describe(exc), self.backoff_max,
                    )  # fmt: skip
                    down_since_said = True
                self.connected.clear()
                self._stopping.wait(delay)
                delay = min(self.backoff_max, delay * 2)
            else:
                down_since_said = False

    def _params(self) -> Any:
        import pika

        params = pika.URLParameters(self.url)
        params.socket_timeout = self.timeout
        params.stack_timeout = self.timeout
        params.blocked_connection_timeout = self.timeout
        params.connection_attempts = 1
        params.heartbeat = 30
        return params

    def _consume(self) -> None:
        import pika

        conn = pika.BlockingConnection(self._params())
        try:
            channel = conn.channel()
            channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            for key in self.bindings:
                channel.queue_bind(queue, self.exchange, routing_key=key)
            channel.basic_qos(prefetch_count=100)
            self.connections += 1
            self.connected.set()
            self.log.info("%s: connected, following %s", self.name, self.exchange)
            self.dispatch(self.on_connected)
            for method, _props, body in channel.consume(queue, inactivity_timeout=0.5):
                if self._stopping.is_set():
                    break
                if method is None:
                    continue
                self._deliver(method.routing_key, body)
                channel.basic_ack(method.delivery_tag)
        finally:
            if conn.is_open:
                try:
                    conn.close()
                except Exception as exc:  # a broker that went away while closing
                    self.log.debug("%s: closing: %s", self.name, describe(exc))

    def _deliver(self, routing_key: str, body: bytes) -> None:
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self.rejected += 1
            self.log.warning("%s: dropping a malformed event %s: %s", self.name, routing_key, exc)
            return
        self.received += 1
        self.dispatch(self.on_event, routing_key, payload)
