"""Free loopback TCP ports for servers started by the harness."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Below the kernel's ephemeral range: an outgoing connection never takes one of these as its local
# port. Inside that range, a client retrying a stopped server's port can connect to itself (TCP
# simultaneous open) and hold the port, so the server cannot bind it again on restart.
_FALLBACK_LOW, _FALLBACK_HIGH = 20000, 32767

_handed_out: set[int] = set()


def _listen_range() -> tuple[int, int]:
    try:
        ephemeral_low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_LOW, _FALLBACK_HIGH
    high = min(_FALLBACK_HIGH, ephemeral_low - 1)
    low = max(1024, min(_FALLBACK_LOW, high - 2000))
    return low, high


def free_port(host: str = LOOPBACK, *, udp: bool = False) -> int:
    """Return a TCP port (also free in UDP if ``udp``) free on ``host`` now and not handed out before.

    The port is only probed, not reserved: start the server soon after. Ports already returned
    are skipped so that several servers of one test session never race for the same port. Ports
    come from below the ephemeral range, so no client socket can take one while its server is down.
    """
    low, high = _listen_range()
    for _ in range(200):
        port = random.randint(low, high)
        if port not in _handed_out and port_is_free(port, host) and (not udp or udp_port_is_free(port, host)):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free TCP port found in {low}-{high}")


def free_udp_range(count: int, host: str = LOOPBACK) -> int:
    """The first (even) port of ``count`` consecutive UDP ports free on ``host`` (an RTP range); like
    free_port, none of them was handed out before in this process."""
    low, high = _listen_range()
    for _ in range(200):
        start = random.randint(low, high - count) & ~1
        block = range(start, start + count)
        if not _handed_out.intersection(block) and all(udp_port_is_free(p, host) for p in block):
            _handed_out.update(block)
            return start
    raise RuntimeError(f"no {count} consecutive free UDP ports found in {low}-{high}")


def udp_port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if no socket is bound to UDP ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if nothing listens on ``host:port`` (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_free(port: int, timeout: float, host: str = LOOPBACK, interval: float = 0.1) -> bool:
    """Poll until ``host:port`` can be bound (a lingering client socket may hold it for a moment)."""
    deadline = time.monotonic() + timeout
    while not port_is_free(port, host):
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
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
