"""ctid.cti_latency: p99 request-to-response time of a `ping` while 1,000 logged-in CTI clients are
subscribed to presence and calls and the AMI side delivers 10,000 events/s.

ctid runs as a real daemon process (its peak RSS is reported), with its users in a fresh PBX database. A
feeder process plays Asterisk: it answers the login and the resync lists, then streams the recorded call
scenarios with fresh ids, moved onto the users' lines so that presence and call events fan out. This
process holds the 1,000 clients (non-blocking sockets, one selector), reads everything they receive, and
sends one ping every 10 ms from a rotating client. The reference is the same p99 with no AMI traffic.
The users' CTI hashes use scrypt ln=10 instead of 14, so that 1,000 logins take seconds, not a minute.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support import REPO, Env, child_env, result

CLIENTS = 1000
RATE = 10_000
LOAD_SECONDS = 10.0
IDLE_SECONDS = 3.0
PING_EVERY = 0.01
TARGET_MS = 20.0
PASSWORD = "bench-password"


# -- the users


def make_users(env: Env) -> tuple[Any, list[str]]:
    import psycopg

    from confdb import passwords
    from confdb.writer import users

    db = env.pbx_database()
    cheap = passwords.hash_password(PASSWORD, log2_n=10)
    with psycopg.connect(db.dsn()) as conn:
        for i in range(CLIENTS):
            users.create_user(conn, users.UserSpec(f"Bench{i}", exten=str(20000 + i)))
        conn.execute(
            "UPDATE users SET cti_login = 'bench' || (id - (SELECT min(id) FROM users)),"
            " cti_password_hash = %s",
            [cheap],
        )
        rows = conn.execute(
            "SELECT l.name FROM users u JOIN user_lines ul ON ul.user_id = u.id"
            " JOIN lines l ON l.id = ul.line_id ORDER BY u.id"
        ).fetchall()
    return db, [r[0] for r in rows]


# -- the feeder (a child process playing Asterisk)


def feeder_stream(lines: list[str]) -> tuple[list[bytes], int]:
    sys.path.insert(0, str(REPO / "ctid"))
    from benchmarks.ctid_ami_ingest import stream

    reads, _ = stream(repeat=60)
    data = b"".join(reads)
    # spread the three lab phones over the users' lines, a fresh trio per repetition of the scenarios
    chunks = []
    for rep, block in enumerate(data.split(b"Event: FullyBooted")):
        trio = [lines[(rep * 3 + k) % len(lines)].encode() for k in range(3)]
        block = re.sub(rb"PJSIP/100([123])", lambda m, t=trio: b"PJSIP/" + t[int(m.group(1)) - 1], block)
        chunks.append(block)
    data = b"Event: FullyBooted".join(chunks)
    messages = [m + b"\r\n\r\n" for m in data.split(b"\r\n\r\n") if m.strip()]
    count = len(messages)
    return messages, count


def feeder_main(lines_file: str) -> None:
    lines = Path(lines_file).read_text().split()
    messages, _ = feeder_stream(lines)
    go = {"flag": False}
    signal.signal(signal.SIGUSR1, lambda *_: go.update(flag=True))
    srv = socket.create_server(("127.0.0.1", 0))
    print(srv.getsockname()[1], flush=True)
    conn, _ = srv.accept()
    conn.sendall(b"Asterisk Call Manager/9.0.0\r\n")
    buf = b""
    conn.setblocking(False)
    sent = 0
    i = 0
    started: float | None = None
    while True:
        try:
            data = conn.recv(65536)
            if not data:
                break
            buf += data
        except BlockingIOError:
            pass
        while b"\r\n\r\n" in buf:
            raw, buf = buf.split(b"\r\n\r\n", 1)
            action = dict(line.split(": ", 1) for line in raw.decode().split("\r\n") if ": " in line)
            aid = action.get("ActionID", "")
            name = action.get("Action", "").lower()
            if name == "login":
                reply = f"Response: Success\r\nActionID: {aid}\r\nMessage: Authentication accepted\r\n\r\n"
            elif name in ("coreshowchannels", "devicestatelist", "queuestatus"):
                done = {
                    "coreshowchannels": "CoreShowChannelsComplete",
                    "devicestatelist": "DeviceStateListComplete",
                    "queuestatus": "QueueStatusComplete",
                }[name]
                reply = (
                    f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\nMessage: follows\r\n\r\n"
                    f"Event: {done}\r\nActionID: {aid}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
                )
            else:
                reply = f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\n\r\n"
            conn.setblocking(True)
            conn.sendall(reply.encode())
            conn.setblocking(False)
        if go["flag"]:
            now = time.monotonic()
            if started is None:
                started = now
            due = int((now - started) * RATE)
            if due > sent:
                batch = []
                while sent < due:
                    batch.append(messages[i])
                    i = (i + 1) % len(messages)
                    sent += 1
                conn.setblocking(True)
                conn.sendall(b"".join(batch))
                conn.setblocking(False)
            if now - started >= LOAD_SECONDS + 2:
                break
        time.sleep(0.002)
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - (started or time.monotonic())}), flush=True)
    conn.close()


# -- the clients


class Clients:
    def __init__(self, port: int, n: int) -> None:
        self.sel = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        self.tails: dict[int, bytes] = {}
        self.waiting: dict[int, float] = {}  # client index -> ping sent at
        self.latencies: list[float] = []
        self.received = 0
        self.logins_ok = 0
        self.subscribed = 0
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.setblocking(False)
            self.socks.append(s)
            self.sel.register(s, selectors.EVENT_READ, i)
            self.tails[i] = b""

    def send(self, i: int, obj: dict[str, Any]) -> None:
        self.socks[i].setblocking(True)
        self.socks[i].sendall(json.dumps(obj).encode() + b"\n")
        self.socks[i].setblocking(False)

    def poll(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            i = key.data
            try:
                data = key.fileobj.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                raise RuntimeError(f"client {i} was disconnected by ctid")
            now = time.perf_counter()
            self.received += data.count(b"\n")
            text = self.tails[i] + data
            if b'"request":"login","ok":true' in text:
                self.logins_ok += 1
            if b'"request":"subscribe","ok":true' in text:
                self.subscribed += 1
            if i in self.waiting and b'"request":"ping"' in text:
                self.latencies.append(now - self.waiting.pop(i))
            self.tails[i] = text[-64:] if b"\n" not in text[-64:] else text[text.rfind(b"\n") + 1 :][-64:]

    def close(self) -> None:
        for s in self.socks:
            s.close()


def measure(clients: Clients, seconds: float) -> list[float]:
    clients.latencies = []
    end = time.perf_counter() + seconds
    nxt = time.perf_counter()
    k = 0
    while time.perf_counter() < end:
        now = time.perf_counter()
        if now >= nxt:
            i = k % len(clients.socks)
            k += 1
            if i not in clients.waiting:
                clients.waiting[i] = time.perf_counter()
                clients.send(i, {"class": "ping", "id": k})
            nxt += PING_EVERY
        clients.poll(max(0.0, min(0.002, nxt - time.perf_counter())))
    deadline = time.perf_counter() + 2
    while clients.waiting and time.perf_counter() < deadline:
        clients.poll(0.01)
    return sorted(clients.latencies)


def p(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")


def cti_latency(env: Env) -> dict[str, Any]:
    db, lines = make_users(env)
    lines_file = env.scratch / "bench-lines.txt"
    lines_file.write_text("\n".join(lines))
    penv = {**child_env(), "PYTHONPATH": child_env()["PYTHONPATH"] + os.pathsep + str(REPO / "ctid")}
    penv["PYTHONPATH"] += os.pathsep + str(REPO / "bench")
    feeder = subprocess.Popen(
        [sys.executable, __file__, "feed", str(lines_file)], stdout=subprocess.PIPE, text=True, env=penv
    )
    ctid = None
    clients = None
    try:
        ami_port = int(feeder.stdout.readline())
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            cti_port = s.getsockname()[1]
        config = env.scratch / "ctid.yml"
        config.write_text(
            json.dumps(
                {
                    "ami": {"port": ami_port, "username": "bench", "secret": "bench"},
                    "cti": {"port": cti_port, "max_clients": CLIENTS + 10, "password_max_waiting": CLIENTS},
                    "db": {"dsn": db.dsn("pbx_ctid")},
                    "bus": {"url_file": str(env.scratch / "none")},
                    "log": {"level": "warn"},
                }
            )
        )
        profile = os.environ.get("CTID_BENCH_PROFILE")  # a file name: run ctid under cProfile
        prefix = ["-m", "cProfile", "-o", profile] if profile else []
        ctid = subprocess.Popen([sys.executable, *prefix, "-m", "ctid.main", "-c", str(config)], env=penv)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", cti_port)).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(1.0)  # the directory loads
        clients = Clients(cti_port, CLIENTS)
        for i in range(CLIENTS):
            clients.send(i, {"class": "login", "id": "l", "login": f"bench{i}", "password": PASSWORD})
        deadline = time.monotonic() + 120
        while clients.logins_ok < CLIENTS and time.monotonic() < deadline:
            clients.poll(0.05)
        if clients.logins_ok < CLIENTS:
            raise RuntimeError(f"only {clients.logins_ok} of {CLIENTS} clients logged in")
        for i in range(CLIENTS):
            clients.send(i, {"class": "subscribe", "id": "s", "topics": ["presence", "calls"]})
        while clients.subscribed < CLIENTS and time.monotonic() < deadline:
            clients.poll(0.05)
        idle = measure(clients, IDLE_SECONDS)
        cpu_before = time.process_time()
        feeder.send_signal(signal.SIGUSR1)
        received_before = clients.received
        loaded = measure(clients, LOAD_SECONDS)
        received = clients.received - received_before
        bench_cpu = time.process_time() - cpu_before
        out = json.loads(feeder.stdout.readline() or "{}")
    finally:
        if clients is not None:
            clients.close()
        rss = 0
        cpu = 0.0
        if ctid is not None:
            ctid.send_signal(signal.SIGTERM)
            try:
                _, _, usage = os.wait4(ctid.pid, 0)
                rss = usage.ru_maxrss // 1024
                cpu = usage.ru_utime + usage.ru_stime
            except ChildProcessError:
                pass
        feeder.kill()
        feeder.wait()
    p99 = p(loaded, 0.99)
    return result(
        "ctid.cti_latency",
        p99,
        "ms",
        p(idle, 0.99),
        TARGET_MS,
        p50_ms=round(p(loaded, 0.5), 2),
        max_ms=round(loaded[-1] * 1000, 2) if loaded else None,
        pings=len(loaded),
        clients=CLIENTS,
        ami_events=out.get("sent"),
        ami_events_per_s=round(out.get("sent", 0) / max(out.get("seconds", 1), 1e-9)),
        cti_messages_received=received,
        clients_cpu_seconds=round(bench_cpu, 1),
        peak_rss_mib=rss,
        ctid_cpu_seconds=round(cpu, 1),
        ok=p99 <= TARGET_MS and len(loaded) > 0.9 * LOAD_SECONDS / PING_EVERY,
    )


if __name__ == "__main__":
    if sys.argv[1] == "feed":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        feeder_main(sys.argv[2])
