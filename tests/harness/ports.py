"""Free loopback TCP ports for servers started by the harness."""

from __future__ import annotations

import socket
import time

LOOPBACK = "127.0.0.1"

_handed_out: set[int] = set()


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` now and was not handed out before in this process.

    The port is only probed, not reserved: start the server soon after. Ports already returned
    are skipped so that several servers of one test session never race for the same port.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free TCP port found")


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if nothing listens on ``host:port`` (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def accepts(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True if a TCP connection to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_accepts(port: int, timeout: float, host: str = LOOPBACK, interval: float = 0.05) -> bool:
    """Poll until ``host:port`` accepts a connection or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if accepts(port, host, timeout=interval * 4):
            return True
        time.sleep(interval)
    return False
