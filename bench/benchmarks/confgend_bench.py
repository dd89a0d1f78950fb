"""confgend benchmarks: generation of every file for 10,000 users, the client's CPU per call, and a
storm of 1,000 writes against the reload path (real PostgreSQL, RabbitMQ and an AMI test peer)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from support import REPO, Env, child_env, python, result, run_timed

USERS = 10_000
QUEUES = 100
GENERATE_TARGET = 0.5
CLIENT_TARGET = 0.030
STORM_WRITES = 1000


def _paths() -> None:
    for sub in ("confgend", "ctid"):
        path = str(REPO / sub)
        if path not in sys.path:
            sys.path.insert(0, path)


def _env() -> dict[str, str]:
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "confgend"), str(REPO / "ctid"), env["PYTHONPATH"]])
    return env


def _populate(db: Any, users: int, queues_count: int) -> None:
    from confdb.writer import bulk_users, queues
    from confdb.writer import users as users_w

    specs = [
        users_w.UserSpec(
            firstname=f"First{i}", lastname=f"Last{i}", exten=str(10_000 + i), voicemail=True,
            email=f"user{i}@example.com",
        )
        for i in range(users)
    ]  # fmt: skip
    with psycopg.connect(db.dsn()) as conn:
        outcomes = bulk_users.create_users(conn, specs, hasher=bulk_users.placeholder_hashes)
        ids = [o.user_id for o in outcomes if getattr(o, "user_id", None)]
        for q in range(queues_count):
            queues.create_queue(conn, f"queue{q}", f"Queue {q}", exten=str(5000 + q))
            for user_id in ids[q * 10 : q * 10 + 10]:
                queues.add_member(conn, f"queue{q}", user_id=user_id)
        conn.execute("DELETE FROM outbox")


_GENERATE = r"""
import contextlib, json, logging, sys, time, psycopg
from pathlib import Path
from confdb.read.confgend import load_snapshot
from confgend.engine import Engine
logging.disable(logging.WARNING)  # manager.conf: no AMI secret files here
runs, cpu, snaps, sizes = [], [], [], {}
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    # What a reload round does: one snapshot through the connection, every generator, every changed
    # file written to the cache (atomically, fsync'd): the first run writes them all.
    engine = Engine(lambda: contextlib.nullcontext(conn), Path(sys.argv[3]))
    for _ in range(int(sys.argv[2])):
        started, started_cpu = time.perf_counter(), time.process_time()
        files = engine.generate_all()
        runs.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        sizes = {name: len(data) for name, data in files.items()}
        started = time.perf_counter()
        snap = load_snapshot(conn)
        snaps.append(time.perf_counter() - started)
print(json.dumps({"runs": runs, "cpu": cpu, "snapshot": snaps, "sizes": sizes, "users": len(snap.users),
                  "lines": len(snap.lines), "queues": len(snap.queues), "files": len(sizes)}))
"""


def _copy_seconds(dsn: str) -> float:
    from confdb.read.confgend import COLUMNS, TABLES

    best = float("inf")
    with psycopg.connect(dsn) as conn:
        for _ in range(5):
            started = time.perf_counter()
            for table in TABLES:
                columns = ", ".join(COLUMNS.get(table, ("*",)))  # what pbx_confgend may read of it
                with conn.cursor().copy(f"COPY (SELECT {columns} FROM {table}) TO STDOUT") as copy:
                    for _block in copy:
                        pass
            best = min(best, time.perf_counter() - started)
    return best


def generate_10k(env: Env) -> dict[str, Any]:
    """All files for 10,000 users (line, extension, voicemail each) and 100 queues: snapshot, generation and
    cache writes, as a reload round does them (Engine.generate_all); snapshot_s is the snapshot alone,
    first_run_s the first round (cold: imports' first use, every file written)."""
    _paths()
    db = env.pbx_database()
    _populate(db, USERS, QUEUES)
    dsn = db.dsn("pbx_confgend")
    reference = _copy_seconds(dsn)
    script = env.scratch / "confgend_generate.py"
    script.write_text(_GENERATE)
    cmd = [python(), str(script), dsn, "7", str(env.scratch / "confgend-cache")]
    _, rss_mib, out, _ = run_timed(cmd, env=_env())
    data = json.loads(out)
    runs = data["runs"][1:]  # the first run also pays the imports' first use
    value = statistics.median(runs)
    from confgend.generators import GENERATORS

    complete = data["users"] == USERS and data["queues"] >= QUEUES and data["files"] == len(GENERATORS)
    return result(
        "confgend.generate_10k",
        value,
        "s",
        reference,
        GENERATE_TARGET,
        rows=data["users"],
        lines=data["lines"],
        best=round(min(runs), 4),
        first_run_s=round(data["runs"][0], 4),
        snapshot_s=round(statistics.median(data["snapshot"][1:]), 4),
        cpu_s=round(statistics.median(data["cpu"][1:]), 4),
        peak_rss_mib=rss_mib,
        bytes=sum(data["sizes"].values()),
        complete=complete,
        ok=complete and value <= GENERATE_TARGET,
    )


def _serve_forever(sock: socket.socket, payload: bytes, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except OSError:
            continue
        with conn:
            conn.recv(256)
            conn.sendall(b"OK %d fresh\n" % len(payload) + payload)


def _cpu_of(cmd: list[str], env: dict[str, str], runs: int) -> float:
    """Median user+system CPU seconds of `cmd`, measured with wait4."""
    cpu = []
    for _ in range(runs):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{cmd[0]} failed")
        cpu.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(cpu)


def client_cpu(env: Env) -> dict[str, Any]:
    """CPU time of one `pbx-confgen asterisk/pjsip.conf` (a 200 KB file), as Asterisk's #exec runs it."""
    payload = b"[general]\n" + b"; padding line of a generated file ...............................\n" * 3000
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    stop = threading.Event()
    threading.Thread(target=_serve_forever, args=(sock, payload, stop), daemon=True).start()
    cache_dir = tempfile.mkdtemp(prefix="pbx-confgen-bench-", dir=env.scratch)
    args = ["asterisk/pjsip.conf", "--port", str(sock.getsockname()[1]), "--cache-dir", cache_dir]
    # What the #exec stubs run (docs/confgend.md): the standalone module, without site-packages.
    system_python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else python()
    stub = [system_python, "-I", "-S", str(REPO / "confgend/confgend/client.py")]
    script = REPO / ".venv/bin/pbx-confgen"
    try:
        value = _cpu_of([*stub, *args], _env(), 30)
        reference = _cpu_of([system_python, "-I", "-S", "-c", "pass"], _env(), 30)
        script_cpu = _cpu_of([str(script), *args], _env(), 30) if script.exists() else None
    finally:
        stop.set()
        sock.close()
    return result(
        "confgend.client_cpu",
        value,
        "s",
        reference,
        CLIENT_TARGET,
        runs=30,
        file_bytes=len(payload),
        console_script_cpu=round(script_cpu, 4) if script_cpu is not None else None,
        ok=value <= CLIENT_TARGET,
    )


def reload_storm(env: Env) -> dict[str, Any]:
    """1,000 writes within about a second, each committed then announced on the bus as the relay does;
    counts the AMI reload requests confgend sends and when the first one comes."""
    _paths()
    import pika
    from twisted.internet import reactor, threads

    from confdb.config import merge
    from confgend.config import DEFAULTS, validate
    from confgend.main import Daemon
    from harness.rabbitmq import RabbitMQServer
    from testkit.ami.server_threaded import ThreadedAMITestServer

    db = env.pbx_database()
    _populate(db, 200, 0)
    rabbit_dir = Path(tempfile.mkdtemp(prefix="pbx-bench-rmq-"))
    rabbit = RabbitMQServer(rabbit_dir)
    rabbit.start()
    ami = ThreadedAMITestServer(username="confgend", secret="bench-secret-0123456789")
    ami.start()
    stamps: list[tuple[float, str]] = []

    def on_reload(conn: Any, msg: Any) -> None:
        stamps.append((time.monotonic(), msg.get("Module", "")))
        conn.reply(msg, {"Response": "Success", "Message": "Module Reloaded"})

    ami.handlers["reload"] = on_reload
    secret = env.scratch / "ami.secret"
    secret.write_text("bench-secret-0123456789\n")
    raw = merge(
        DEFAULTS,
        {
            "listen": {"port": 0},
            "db": {"dsn": db.dsn("pbx_confgend")},
            "cache": {"directory": str(env.scratch / "confgend-cache")},
            "bus": {"url": rabbit.url},
            "ami": {"port": ami.port, "secret_file": str(secret)},
        },
    )
    runner = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True)
    runner.start()
    daemon = threads.blockingCallFromThread(reactor, Daemon, validate(raw), reactor)
    try:
        if not daemon.listener.connected.wait(20):
            raise RuntimeError("confgend did not connect to RabbitMQ")
        # Let the start-up resync round finish and its min_interval pass: the storm starts from idle.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rel = daemon.reloader
            if rel.rounds and not rel.running and rel.timer is None:
                break
            time.sleep(0.1)
        time.sleep(daemon.settings.min_interval + 0.2)
        stamps.clear()
        params = pika.URLParameters(rabbit.url)
        bus = pika.BlockingConnection(params)
        channel = bus.channel()
        channel.exchange_declare("pbx.config", exchange_type="topic", durable=True)
        with psycopg.connect(db.dsn(), autocommit=True) as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM users ORDER BY id LIMIT 200")]
            first_write = time.monotonic()
            for i in range(STORM_WRITES):
                user_id = ids[i % len(ids)]
                conn.execute("UPDATE users SET callerid_name = %s WHERE id = %s", (f"Storm {i}", user_id))
                body = {"version": 1, "object": "user", "action": "updated",
                        "data": {"id": user_id, "fields": ["callerid_name"]}}  # fmt: skip
                channel.basic_publish("pbx.config", "user.updated", json.dumps(body).encode())
            writes_seconds = time.monotonic() - first_write
        bus.close()
        time.sleep(daemon.settings.min_interval + 3.0)
        reloads = list(stamps)
        first = round(reloads[0][0] - first_write, 3) if reloads else None
    finally:
        threads.blockingCallFromThread(reactor, daemon.stop)
        reactor.callFromThread(reactor.stop)
        runner.join(10)
        ami.stop()
        rabbit.stop()
        shutil.rmtree(rabbit_dir, ignore_errors=True)
    return result(
        "confgend.reload_storm",
        len(reloads),
        "reload requests",
        STORM_WRITES,
        2,
        writes=STORM_WRITES,
        writes_seconds=round(writes_seconds, 3),
        first_reload_after_s=first,
        modules=[m for _, m in reloads],
        ok=len(reloads) <= 2 and first is not None and first <= 1.0,
    )
