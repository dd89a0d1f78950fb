"""The RabbitMQ harness: publish/consume, credentials, stop and restart."""

from __future__ import annotations

import pika
import pika.exceptions
import pytest

from harness.ports import accepts
from harness.rabbitmq import RabbitMQServer


def test_publish_and_consume(rabbitmq: RabbitMQServer) -> None:
    conn = pika.BlockingConnection(rabbitmq.pika_params())
    try:
        channel = conn.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", queue, b"hello")
        consumed: list[bytes] = []
        for _method, _props, body in channel.consume(queue, auto_ack=True, inactivity_timeout=5):
            assert body is not None
            consumed.append(body)
            break
        assert consumed == [b"hello"]
    finally:
        conn.close()


def test_url_works_and_only_pbx_exists(rabbitmq: RabbitMQServer) -> None:
    assert rabbitmq.url.startswith("amqp://pbx:")
    assert rabbitmq.url.endswith(f"@127.0.0.1:{rabbitmq.port}/%2F")
    pika.BlockingConnection(pika.URLParameters(rabbitmq.url)).close()
    guest = rabbitmq.pika_params(credentials=pika.PlainCredentials("guest", "guest"))
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(guest)
    users = [line.split("\t")[0] for line in rabbitmq.ctl("list_users").splitlines()[1:]]
    assert users == ["pbx"]


def test_stop_and_restart_keep_port_and_durable_messages(rabbitmq: RabbitMQServer) -> None:
    port, url, pid = rabbitmq.port, rabbitmq.url, rabbitmq.pid
    conn = pika.BlockingConnection(rabbitmq.pika_params())
    channel = conn.channel()
    channel.queue_declare("harness.durable", durable=True)
    channel.basic_publish("", "harness.durable", b"kept", pika.BasicProperties(delivery_mode=2))
    rabbitmq.stop()
    assert not rabbitmq.running
    assert not accepts(port)
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(rabbitmq.pika_params())
    rabbitmq.restart()  # = stop (a no-op here) + start
    assert rabbitmq.pid not in (None, pid)
    assert (rabbitmq.port, rabbitmq.url) == (port, url)
    conn = pika.BlockingConnection(rabbitmq.pika_params())
    try:
        channel = conn.channel()
        method, _props, body = channel.basic_get("harness.durable", auto_ack=True)
        assert method is not None and body == b"kept"
        channel.queue_delete("harness.durable")
    finally:
        conn.close()


def listening_addresses(port: int) -> set[str]:
    """The local addresses listening on TCP ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hexport = local.split(":")
                if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                    found.add("loopback" if address in ("0100007F", "00000000000000000000000001000000")
                              else address)  # fmt: skip
    return found


def test_nothing_of_the_node_is_open_to_others(rabbitmq: RabbitMQServer) -> None:
    """The password (rabbitmq.conf), the Erlang cookie and the user database are readable by their owner
    only, and the Erlang distribution port listens on the loopback only, like AMQP."""
    assert rabbitmq.base_dir.stat().st_mode & 0o077 == 0
    assert (rabbitmq.base_dir / "rabbitmq.conf").stat().st_mode & 0o077 == 0
    assert listening_addresses(rabbitmq.port) == {"loopback"}
    assert listening_addresses(rabbitmq.dist_port) == {"loopback"}
