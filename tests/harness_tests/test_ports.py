"""Free-port helpers."""

from __future__ import annotations

import socket

from harness.ports import accepts, free_port, port_is_free, wait_accepts


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
