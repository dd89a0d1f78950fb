"""Free-port helpers."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from harness.ports import accepts, free_port, port_is_free, wait_accepts, wait_free


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    assert all(port_is_free(port) for port in ports)


def test_listening_port_is_seen() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not port_is_free(port)
        assert accepts(port)
        assert wait_accepts(port, timeout=1)
    assert not wait_accepts(port, timeout=0.2)


def test_free_ports_are_outside_the_ephemeral_range() -> None:
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(free_port() < ephemeral_low for _ in range(50))


def test_wait_free_waits_for_the_holder_to_close() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", free_port()))
    server.listen()
    port = server.getsockname()[1]
    assert not wait_free(port, timeout=0.2)
    threading.Timer(0.3, server.close).start()
    assert wait_free(port, timeout=3)
