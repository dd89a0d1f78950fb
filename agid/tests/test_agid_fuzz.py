"""Whole sessions with malformed bytes over TCP: agid never crashes, always closes, leaks nothing."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agid.handlers import ping
from agid.session import AGISession
from testkit.fastagi import WAIT, LineSocket, ServerThread, soak


async def echo(session: AGISession) -> None:
    value = await session.get_variable("IN")
    await session.set_variable("OUT", value or "")
    await session.verbose(f"echo {session.args} {dict(session.query)}")


HANDLERS = {"ping": ping.handle, "echo": echo}
VALID_ENV = b"agi_network: yes\nagi_network_script: echo?a=1\nagi_channel: Local/x-1;2\nagi_arg_1: a\n\n"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _close_and_drain(peer: LineSocket) -> None:
    try:
        peer.sock.shutdown(socket.SHUT_WR)
        peer.read_to_eof()
    except OSError:
        pass
    finally:
        peer.close()


def _ping_still_works(server: Any, fake: Any) -> None:
    env = b"agi_network: yes\nagi_network_script: ping\n\n"
    assert fake(server).run(env).variables() == {"AGID_PONG": "pong", "AGID_STATUS": "OK"}


PREFIXES = [b"", VALID_ENV, VALID_ENV[:40], b"agi_network_script: ping\n\n"]
REPLIES = [
    b"200 result=1\n",
    b"HANGUP\n",
    b"520-x\n",
    b"520 y\n",
    b"(\n",
    b"\xff\n",
    b"200 result=1 (a",
    b"\n",
]


def malformed_session(server: ServerThread, prefix: bytes, garbage: bytes, answer_first: bool) -> None:
    """One session of ``prefix`` then ``garbage``, then the peer closes and reads to EOF."""
    peer = LineSocket(server.address, WAIT)
    try:
        peer.send(prefix)
        if answer_first and prefix == VALID_ENV:
            peer.readline()  # agid's first command, then garbage as the "reply"
        peer.send(garbage)
    except OSError:
        pass  # agid may already have closed on a protocol error
    _close_and_drain(peer)


def assert_settled(server: ServerThread, sessions: int) -> None:
    """``sessions`` connections since start, each ended in exactly one way, nothing left running."""
    stats = server.server.stats
    server.wait_until(lambda: stats.accepted + stats.refused == sessions)
    server.wait_idle()
    assert stats.refused == 0
    assert stats.no_env + stats.lost + stats.ok + stats.failed == stats.accepted == sessions
    assert stats.internal_errors == 0
    assert (stats.open_connections, stats.active_sessions, server.server.tasks) == (0, 0, 0)


@pytest.fixture(scope="module")
def fuzz_server(module_agid_server: Any) -> ServerThread:
    """Shared by the examples (each example checks the server after its own session)."""
    server: ServerThread = module_agid_server(HANDLERS, session_timeout=2.0, status_timeout=0.5)
    return server


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    prefix=st.sampled_from(PREFIXES),
    garbage=st.binary(max_size=400) | st.lists(st.sampled_from(REPLIES), max_size=12).map(b"".join),
    answer_first=st.booleans(),
)
def test_malformed_sessions_property(
    fuzz_server: ServerThread, prefix: bytes, garbage: bytes, answer_first: bool
) -> None:
    server = fuzz_server
    before = server.server.stats.accepted + server.server.stats.refused
    malformed_session(server, prefix, garbage, answer_first)
    assert_settled(server, before + 1)


def test_malformed_sessions_leave_server_usable(agid_server: Any, fake: Any) -> None:
    """A server of its own: every kind of malformed session, one after the other, then a good one."""
    server: ServerThread = agid_server(HANDLERS, session_timeout=2.0, status_timeout=0.5)
    garbages = [b"", b"\x00" * 300, b"".join(REPLIES), bytes(range(256)), *REPLIES, *(r * 3 for r in REPLIES)]
    cases = [
        (prefix, garbage, answer_first)
        for prefix in PREFIXES
        for garbage in garbages
        for answer_first in (False, True)
    ]
    for prefix, garbage, answer_first in cases:
        malformed_session(server, prefix, garbage, answer_first)
    assert_settled(server, len(cases))
    _ping_still_works(server, fake)
    stats = server.server.stats
    assert stats.accepted > 100
    assert stats.no_env + stats.lost + stats.ok + stats.failed == stats.accepted == len(cases) + 1
    assert stats.ok >= 1 and stats.internal_errors == 0


def run_soak(agid_server: Any, fake: Any, n: int, caplog: pytest.LogCaptureFixture) -> None:
    """N malformed sessions, then: same fd count, no task left, the server still answers."""
    server = agid_server(HANDLERS, session_timeout=5.0, status_timeout=1.0)
    _ping_still_works(server, fake)  # warm up: lazily created fds (selectors, ...) exist before counting
    server.wait_idle()
    fds_before = open_fds()
    tasks_before = server.tasks()
    ends = soak(server.address, n, seed=n)
    assert sum(ends.values()) == n
    # a peer that closed at once may not even be accepted yet: wait for all, then for their end
    server.wait_until(lambda: server.server.stats.accepted == n + 1)
    server.wait_idle()
    server.wait_until(lambda: open_fds() <= fds_before)
    assert server.tasks() == tasks_before
    assert server.server.stats.open_connections == 0
    assert server.server.stats.active_sessions == 0
    _ping_still_works(server, fake)
    server.wait_idle()
    stats = server.server.stats
    assert stats.accepted == n + 2
    assert stats.no_env + stats.lost + stats.ok + stats.failed == n + 2
    assert stats.internal_errors == 0
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []  # "never retrieved"...


def test_soak_malformed_sessions_no_leak(
    agid_server: Any, fake: Any, caplog: pytest.LogCaptureFixture
) -> None:
    run_soak(agid_server, fake, int(os.environ.get("AGID_SOAK_SESSIONS", "2000")), caplog)
