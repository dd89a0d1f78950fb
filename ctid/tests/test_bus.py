"""The ctid daemon (its real entry point, in a process of its own) on the config bus of a real RabbitMQ that
goes away and comes back: back within about two seconds, the directory reloaded, one log line each way,
nothing from pika, and one log stream on stderr (every line with its timestamp)."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import psycopg
import pytest
import yaml

from confdb.writer import users
from harness.rabbitmq import RabbitMQServer

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[(?P<system>[^\]]+)\] ")  # twisted's


class Ctid:
    """``python -m ctid.main`` with its stderr read line by line, each with the time it came."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ctid.main", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._new: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            entry = (time.monotonic(), line.rstrip("\n"))
            self.lines.append(entry)
            self._new.put(entry)

    def wait_for(self, pattern: str, timeout: float = 20) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                entry = self._new.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no log line {pattern!r}; got:\n" + self.text()) from None
            if re.search(pattern, entry[1]):
                return entry

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def stop(self) -> int | None:
        """SIGTERM; the exit status, or None if it had to be killed."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cti_login(port: int, login: str, password: str) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        reader = s.makefile("rb")
        assert json.loads(reader.readline())["class"] == "welcome"
        request = {"class": "login", "id": 1, "login": login, "password": password}
        s.sendall(json.dumps(request).encode() + b"\n")
        return json.loads(reader.readline())


def eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def ctid(pbx_db, rabbitmq: RabbitMQServer, tmp_path: Path) -> Iterator[tuple[Ctid, int, str]]:
    exchange = f"pbx.config.ctid-test-{time.monotonic_ns()}"
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "ami": {"port": free_port(), "secret": "unused"},  # no Asterisk: not what this test is about
                # logins are polled until the directory has the user: no limit on failures here
                "cti": {"port": port, "login_max_failures": 1000, "login_account_failures": 1000},
                "db": {"dsn": pbx_db.dsn("pbx_ctid")},
                "bus": {"url": rabbitmq.url, "exchange": exchange},
            }
        )
    )
    daemon = Ctid(config)
    try:
        daemon.wait_for(r"\[ctid\.bus#info\] .*connected")
        yield daemon, port, exchange
    finally:
        status = daemon.stop()
        if not rabbitmq.running:
            rabbitmq.start()
    assert status == 0, daemon.text()  # a clean stop, the bus thread included


def add_user(pbx_db, login: str) -> int:
    with psycopg.connect(pbx_db.dsn()) as conn:
        spec = users.UserSpec(login.title(), cti_login=login, cti_password=f"{login}-password")
        return users.create_user(conn, spec).id


def test_ctid_follows_the_bus_through_a_broker_restart(pbx_db, rabbitmq: RabbitMQServer, ctid) -> None:
    daemon, port, exchange = ctid
    user_id = add_user(pbx_db, "alice")  # no relay runs here: ctid learns of it from the event below
    conn = pika.BlockingConnection(rabbitmq.pika_params())
    conn.channel().basic_publish(exchange, "user.created", json.dumps({"data": {"id": user_id}}).encode())
    conn.close()
    eventually(lambda: cti_login(port, "alice", "alice-password")["class"] == "response")

    stopped = len(daemon.lines)
    rabbitmq.stop()
    daemon.wait_for(r"\[ctid\.bus#warn\]")
    add_user(pbx_db, "bob")  # while the bus is away: no event will tell
    time.sleep(3)  # several attempts fail meanwhile: still one line
    rabbitmq.start()
    back = time.monotonic()
    connected, _ = daemon.wait_for(r"\[ctid\.bus#info\] .*connected")
    # the consumer's backoff is 2 s at most, then the connection itself
    assert connected - back < 4, f"back on the bus {connected - back:.1f} s after the broker"
    eventually(lambda: cti_login(port, "bob", "bob-password")["class"] == "response")  # reloaded

    outage = [line for _, line in daemon.lines[stopped:] if "[ctid.bus#" in line]
    assert len(outage) == 2, outage  # lost (with its reason), then connected
    assert "connection lost (" in outage[0] and "()" not in outage[0], outage
    for _, line in daemon.lines:
        match = LINE.match(line)
        assert match, f"not a line of ctid's log: {line!r}"
        assert not match["system"].startswith("pika"), line
