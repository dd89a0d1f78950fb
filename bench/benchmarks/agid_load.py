"""agid under load: incoming_user + reverse_lookup against a 1,000,000-entry phonebook, 200 concurrent
FastAGI clients; and the same load while PostgreSQL is frozen (SIGSTOP).

agid runs as its own process (``agid`` with a config directory), the clients are asyncio sockets in this
process that answer like Asterisk (SET VARIABLE -> ``200 result=1``). The reference is a bare FastAGI server
(one SET VARIABLE per session) in its own process, loaded by the same clients in the same run: the ceiling
of this machine and this client.

``AGID_BENCH_SECONDS`` (default 10) sets the length of each measured phase.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from support import REPO, Env, child_env, python, result

sys.path.insert(0, str(REPO / "agid"))

CLIENTS = 200
PHONEBOOK = 1_000_000
USERS = 200
BUDGET = 0.2
SECONDS = float(os.environ.get("AGID_BENCH_SECONDS", "10"))

BARE_SERVER = textwrap.dedent(
    """
    import asyncio, sys

    async def session(reader, writer):
        try:
            while (await reader.readline()).strip():
                pass
            writer.write(b"SET VARIABLE AGID_STATUS OK\\n")
            await reader.readline()
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(session, "127.0.0.1", int(sys.argv[1]), backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())
    """
)


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    undecided: int = 0
    errors: int = 0
    degraded: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(script: str, arg: str, index: int, *more: str) -> bytes:
    args = "".join(f"agi_arg_{n}: {value}\n" for n, value in enumerate((arg, *more), 1))
    return (
        f"agi_network: yes\nagi_network_script: {script}\nagi_request: agi://127.0.0.1/{script}\n"
        f"agi_channel: PJSIP/bench-{index:08x}\nagi_uniqueid: 1700000000.{index}\nagi_callerid: {arg}\n"
        f"agi_calleridname: \nagi_context: internal\nagi_extension: s\nagi_priority: 1\n{args}\n"
    ).encode()


async def _session(port: int, env: bytes, decision: str | None, load: Load) -> None:
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        load.errors += 1
        return
    variables: dict[bytes, bytes] = {}
    try:
        writer.write(env)
        while True:
            line = await reader.readline()
            if not line:
                break
            if line.startswith(b"SET VARIABLE "):
                name, _, value = line[13:].rstrip(b"\n").partition(b" ")
                variables[name] = value
                writer.write(b"200 result=1\n")
            elif line.startswith(b"EXEC MSet "):  # agid batches only values MSet takes literally
                pairs = line[10:].rstrip(b"\n")
                if pairs.startswith(b'"'):  # quoted for its spaces; none of its values holds '"' or '\\'
                    pairs = pairs[1:-1]
                for pair in pairs.split(b","):
                    name, _, value = pair.partition(b"=")
                    variables[name] = value
                writer.write(b"200 result=0\n")
            elif line.startswith(b"GET FULL VARIABLE"):
                writer.write(b"200 result=0\n")
            else:
                writer.write(b"510 Invalid or unknown command\n")
    except OSError:
        load.errors += 1
        return
    finally:
        writer.close()
    load.latencies.append(time.perf_counter() - started)
    decided = variables.get(b"AGID_STATUS") == b"OK" and (decision is None or decision.encode() in variables)
    if not decided:
        load.undecided += 1
    if variables.get(b"AGID_DEGRADED") == b"1":
        load.degraded += 1


async def _drive(port: int, seconds: float, bare: bool, user_ids: list[int]) -> Load:
    load = Load()
    end = time.perf_counter() + seconds
    rng = random.Random(1)
    counter = 0

    async def client() -> None:
        nonlocal counter
        while time.perf_counter() < end:
            counter += 1
            if bare:
                await _session(port, _env("bare", "1", counter), None, load)
            elif counter % 2:
                # as the dialplan library calls it: the user id and the user's calls in progress
                env = _env("incoming_user", str(rng.choice(user_ids)), counter, "0")
                await _session(port, env, "AGID_ACTION", load)
            else:
                # mostly numbers of the phonebook (misses of the cache: 1M numbers), some unknown
                number = f"01{rng.randrange(PHONEBOOK * 5 // 4):08d}"
                await _session(port, _env("reverse_lookup", number, counter), "AGID_LOOKUP_NAME", load)

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return load


def _wait_port(port: int, proc: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen")


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


def _prepare(env: Env) -> tuple[Any, list[int]]:
    from confdb.writer import users

    db = env.pbx_database()
    with psycopg.connect(db.dsn()) as conn:
        with conn.transaction():
            user_ids = [
                users.create_user(
                    conn, users.UserSpec(f"User{i}", exten=str(2000 + i), voicemail=i % 2 == 0)
                ).id
                for i in range(USERS)
            ]
        # 1,000,000 entries with one number each: "01 xx xx xx xx" normalised as in FR (33 1 xxxxxxxx)
        with conn.transaction():
            conn.execute(
                "INSERT INTO phonebook_entries (display_name, company) "
                "SELECT 'Contact ' || i, 'Company ' || (i %% 5000) FROM generate_series(1, %s) i",
                (PHONEBOOK,),
            )
            # ids are 1..N in a fresh database; the number of entry i is 01 + i on 8 digits
            conn.execute(
                "INSERT INTO phonebook_numbers (entry_id, kind, number, normalized) "
                "SELECT id, 'office', '01' || lpad(id::text, 8, '0'), '331' || lpad(id::text, 8, '0') "
                "FROM phonebook_entries"
            )
    # As after a bulk import: vacuumed, analysed and checkpointed, so that autovacuum and the checkpointer
    # do not work through the million new rows while the load is measured.
    with psycopg.connect(db.superuser_dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) phonebook_entries, phonebook_numbers, users, lines, extensions")
        conn.execute("CHECKPOINT")
    return db, user_ids


def _start_agid(env: Env, db: Any, name: str) -> tuple[subprocess.Popen[Any], int]:
    port = _free_port()
    config_dir = env.scratch / f"agid-{name}"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "config.yml").write_text(
        f"listen_port: {port}\nmax_sessions: 1000\nmax_connections: 2000\nlog_level: WARNING\n"
        f'db_dsn: "{db.dsn("pbx_agid")}"\ndb_pool_min: 8\ndb_pool_max: 32\ndb_timeout: {BUDGET}\n'
        f"lookup_budget: {BUDGET}\nlookup_cache_size: 100000\n"
    )
    environ = {**child_env(), "PYTHONPATH": child_env()["PYTHONPATH"] + os.pathsep + str(REPO / "agid")}
    proc = subprocess.Popen(
        [python(), "-m", "agid", "--config-dir", str(config_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(env.scratch / f"agid-{name}.log", "w"),  # noqa: SIM115
        env=environ,
    )
    _wait_port(port, proc)
    return proc, port


def _show_log(env: Env, name: str, lines: int = 15) -> None:
    """The end of agid's log on stderr: why sessions degraded, if they did."""
    tail = (env.scratch / f"agid-{name}.log").read_text(errors="replace").splitlines()[-lines:]
    if tail:
        print(f"agid-{name}.log (last {len(tail)} lines):", *tail, sep="\n  ", file=sys.stderr)


def _bare(env: Env) -> tuple[float, float]:
    """Sessions/s and p99 (ms) of the bare FastAGI server."""
    port = _free_port()
    proc = subprocess.Popen([python(), "-c", BARE_SERVER, str(port)], stdin=subprocess.DEVNULL)
    try:
        _wait_port(port, proc)
        load = asyncio.run(_drive(port, SECONDS, True, []))
    finally:
        _stop(proc)
    return len(load.latencies) / SECONDS, _percentile(load.latencies, 0.99) * 1000


def throughput(env: Env) -> list[dict[str, Any]]:
    started = time.monotonic()
    db, user_ids = _prepare(env)
    setup = time.monotonic() - started
    bare, bare_p99 = _bare(env)
    proc, port = _start_agid(env, db, "throughput")
    try:
        asyncio.run(_drive(port, 1.0, False, user_ids))  # warm-up: pool, caches
        load = asyncio.run(_drive(port, SECONDS, False, user_ids))
    finally:
        _stop(proc)
        _show_log(env, "throughput")
    rate = len(load.latencies) / SECONDS
    p99 = _percentile(load.latencies, 0.99) * 1000
    common = {"sessions": len(load.latencies), "errors": load.errors, "undecided": load.undecided,
              "degraded": load.degraded, "setup_seconds": round(setup, 1)}  # fmt: skip
    return [
        result(
            "agid.throughput",
            rate,
            "sessions/s",
            bare,
            3000,
            ok=rate >= 3000 and rate >= bare / 2,
            share_of_bare=round(rate / bare, 2) if bare else None,
            **common,
        ),
        result("agid.throughput_p99", p99, "ms", bare_p99, 20, ok=p99 <= 20, **common),
    ]


def db_frozen(env: Env) -> dict[str, Any]:
    db, user_ids = _prepare(env)
    proc, port = _start_agid(env, db, "frozen")
    try:
        asyncio.run(_drive(port, 1.0, False, user_ids))
        env.postgres.freeze()
        try:
            load = asyncio.run(_drive(port, SECONDS, False, user_ids))
        finally:
            env.postgres.thaw()
    finally:
        _stop(proc)
    p99 = _percentile(load.latencies, 0.99) * 1000
    target = BUDGET * 1000 + 50
    return result(
        "agid.db_frozen",
        p99,
        "ms p99",
        BUDGET * 1000,
        target,
        ok=p99 <= target and load.undecided == 0 and load.errors == 0,
        sessions=len(load.latencies),
        rate=round(len(load.latencies) / SECONDS, 1),
        undecided=load.undecided,
        degraded=load.degraded,
        errors=load.errors,
    )
