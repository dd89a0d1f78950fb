"""The local development stack: ``python -m harness.stack up|down|status``.

A private PostgreSQL cluster (``run/postgres``) and RabbitMQ node (``run/rabbitmq``) on fixed loopback
ports, detached so that ``up`` returns, with data kept across down/up. ``up`` runs the steps in
``UP_STEPS`` in order; the database steps call ``pbx-admin`` from ``.venv/bin`` when it is installed
and are skipped otherwise. ``run/stack.env`` gets the DSNs and URLs (``. run/stack.env``). Last, our
Asterisk (``run/asterisk``, harness.asterisk) with its configuration from the stack's confgend: SIP on
``127.0.0.1:5060`` (udp and tcp), AMI on 5038, RTP from 10000, so that a softphone on this machine can
register a demo line (``run/secrets/demo-credentials.csv``) and call. Every port has its flag, and the
daemons, the generated configuration and Asterisk all follow it, so two stacks run side by side in two run
folders. ``status`` shows each service, its ports, and whether it answers a probe over its own protocol
within a timeout (exit 1 when a running one does not).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness import daemons
from harness.asterisk import AsteriskServer
from harness.pbxconf import Ports, service_env
from harness.ports import LOOPBACK
from harness.postgres import DURABLE_SETTINGS, PostgresServer
from harness.procs import ServerError
from harness.rabbitmq import RabbitMQServer

REPO = Path(__file__).resolve().parents[2]
WRITER_ROLE = "pbx_writer"

__all__ = ["Ports", "Stack", "main"]


@dataclass
class Stack:
    run_dir: Path
    ports: Ports = field(default_factory=Ports)
    demo_users: int = 20
    demo: bool = True

    @property
    def pbx_admin(self) -> Path:
        return REPO / ".venv" / "bin" / "pbx-admin"

    @property
    def secrets_dir(self) -> Path:
        return self.run_dir / "secrets"

    @property
    def env_file(self) -> Path:
        return self.run_dir / "stack.env"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "stack.json"

    def postgres(self) -> PostgresServer:
        # The stack's data are kept: fsync on (the tests' clusters trade it for speed).
        return PostgresServer(
            self.run_dir / "postgres", self.ports.postgres, settings=DURABLE_SETTINGS, detached=True
        )

    def rabbitmq(self) -> RabbitMQServer:
        return RabbitMQServer(
            self.run_dir / "rabbitmq",
            self.ports.amqp,
            dist_port=self.ports.rabbitmq_dist,
            epmd_port=self.ports.epmd,
            detached=True,
        )

    def asterisk(self) -> AsteriskServer:
        return daemons.asterisk(self.run_dir, service_env(self.ports, self.secrets_dir, ""), detached=True)

    def environment(self) -> dict[str, str]:
        """What run/stack.env holds, and what the pbx-admin steps get in their environment."""
        amqp_url = self.rabbitmq().url
        env = {
            "PBX_STACK_DIR": str(self.run_dir),
            "PBX_PG_HOST": LOOPBACK,
            "PBX_PG_PORT": str(self.ports.postgres),
            "PBX_PG_SUPERUSER_DSN": self.postgres().superuser_dsn("postgres"),
            "PBX_AMQP_URL": amqp_url,
            "PBX_ADMIN_BUS_URL": amqp_url,
            **service_env(self.ports, self.secrets_dir, amqp_url),
        }
        writer_dsn = self.secrets_dir / f"{WRITER_ROLE}.dsn"
        if writer_dsn.exists():
            env["PBX_ADMIN_DSN"] = writer_dsn.read_text().strip()
        return env


# -- steps of `up`: each returns a one-line result; raise StepError to stop -------------------------


class StepError(RuntimeError):
    pass


def start_postgres(stack: Stack) -> str:
    server = stack.postgres()
    state = "already running" if server.running else "started"
    server.start()
    return f"{state} on {LOOPBACK}:{server.port}, data {server.data_dir}"


def start_rabbitmq(stack: Stack) -> str:
    server = stack.rabbitmq()
    state = "already running" if server.running else "started"
    server.start()
    return f"{state} on {LOOPBACK}:{server.port}, node {server.node}"


def write_env(stack: Stack) -> str:
    lines = [f"{key}={shlex.quote(value)}" for key, value in stack.environment().items()]
    lines.append(f'PATH={shlex.quote(str(stack.pbx_admin.parent))}:"$PATH"')  # pbx-admin & co. (.venv/bin)
    header = "# written by `python -m harness.stack up`; use: set -a; . run/stack.env; set +a\n"
    _write_private(stack.env_file, header + "\n".join(lines) + "\n")
    return str(stack.env_file)


def db_init(stack: Stack) -> str:
    """Hook: roles, database and migrations, by confdb's writer CLI."""
    server = stack.postgres()
    return _pbx_admin(
        stack,
        "db", "init",
        "--superuser-dsn", server.superuser_dsn("postgres"),
        "--host", LOOPBACK,
        "--port", str(server.port),
        "--secrets-dir", str(stack.secrets_dir),
    )  # fmt: skip


def load_demo(stack: Stack) -> str:
    """Hook: demo data, once (run/.demo-loaded records it; remove that file to load again)."""
    stamp = stack.run_dir / ".demo-loaded"
    if not stack.demo:
        return "skipped (--no-demo)"
    if stamp.exists():
        return f"skipped (loaded before; remove {stamp} to load again)"
    credentials = stack.secrets_dir / "demo-credentials.csv"
    credentials.unlink(missing_ok=True)
    result = _pbx_admin(
        stack, "demo", "--users", str(stack.demo_users), "--no-progress", "--credentials", str(credentials)
    )
    if not result.startswith("skipped"):
        stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    return result


def start_daemons(stack: Stack) -> str:
    env = stack.environment()
    try:
        return "; ".join(f"{d.name}: {daemons.start(stack.run_dir, d, env)}" for d in daemons.DAEMONS)
    except RuntimeError as exc:
        raise StepError(str(exc)) from None


def start_asterisk(stack: Stack) -> str:
    """Hook: our Asterisk, skipped (and said how to get it) when there is none to run."""
    server = stack.asterisk()
    try:
        install = server.install
    except ServerError as exc:
        return f"skipped ({exc})"
    state = "already running" if server.running else "started"
    server.start()
    return (
        f"{state} ({install.origin}): SIP {LOOPBACK}:{stack.ports.sip} udp+tcp, "
        f"AMI {LOOPBACK}:{server.ami_port}, RTP {stack.ports.rtp_start}-{stack.ports.rtp_end}, "
        f"log {server.log_dir}"
    )


UP_STEPS: list[tuple[str, Callable[[Stack], str]]] = [
    ("postgres", start_postgres),
    ("rabbitmq", start_rabbitmq),
    ("stack.env", write_env),
    ("create roles + migrate", db_init),
    ("demo data", load_demo),
    ("stack.env (with role DSNs)", write_env),
    ("daemons", start_daemons),
    ("asterisk", start_asterisk),
]


def _pbx_admin(stack: Stack, *args: str) -> str:
    if not stack.pbx_admin.exists():
        return f"skipped ({stack.pbx_admin} is not installed yet)"
    probe = subprocess.run([str(stack.pbx_admin), args[0], "--help"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"skipped (pbx-admin has no {args[0]!r} command yet)"
    cmd = [str(stack.pbx_admin), *args]
    result = subprocess.run(
        cmd,
        env=os.environ | stack.environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StepError(
            f"pbx-admin {' '.join(args[:2])} failed (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    summary = ", ".join(" ".join(line.split()) for line in result.stdout.splitlines() if line.strip())
    return f"pbx-admin {' '.join(args[:2])}: {summary[:300] or 'done'}"


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


# -- commands -----------------------------------------------------------------------------------------


def up(stack: Stack) -> int:
    saved = _load_ports(stack)
    if saved is not None and saved != stack.ports and _anything_running(Stack(stack.run_dir, saved)):
        print(f"the stack runs with other ports ({asdict(saved)}): run `down` first", file=sys.stderr)
        return 1
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    _write_private(stack.state_file, json.dumps({"ports": asdict(stack.ports)}, indent=1) + "\n")
    total = time.monotonic()
    for number, (name, step) in enumerate(UP_STEPS, 1):
        print(f"[{number}/{len(UP_STEPS)}] {name} ...", flush=True)
        started = time.monotonic()
        try:
            result = step(stack)
        except (ServerError, StepError) as exc:
            print(f"      FAILED after {time.monotonic() - started:.1f}s: {exc}", file=sys.stderr)
            return 1
        print(f"      {result} ({time.monotonic() - started:.1f}s)", flush=True)
    print(f"stack up in {time.monotonic() - total:.1f}s; environment: {stack.env_file}")
    return 0


def down(stack: Stack) -> int:
    stack.ports = _load_ports(stack) or stack.ports
    asterisk = stack.asterisk()
    started, running = time.monotonic(), asterisk.running
    print("asterisk ...", end=" ", flush=True)
    asterisk.stop()
    print(f"{'stopped' if running else 'was not running'} ({time.monotonic() - started:.1f}s)")
    for daemon in daemons.DAEMONS:
        print(f"{daemon.name} ... {daemons.stop(stack.run_dir, daemon)}")
    for name, server in (("rabbitmq", stack.rabbitmq()), ("postgres", stack.postgres())):
        started = time.monotonic()
        running = server.running
        print(f"{name} ...", end=" ", flush=True)
        server.stop()
        print(f"{'stopped' if running else 'was not running'} ({time.monotonic() - started:.1f}s)")
    return 0


PROBE_TIMEOUT = 2.0  # seconds each health probe of `status` may take


@dataclass
class Service:
    """One row of `status`: what runs, where it listens, and how to ask it whether it answers."""

    name: str
    pid: int | None
    address: str
    files: str
    # timeout -> what it answered (one line); raises on no answer. None: nothing to ask (its pid is all).
    probe: Callable[[float], str] | None = None


def services(stack: Stack) -> list[Service]:
    """The stack's services in start order, with their ports and probes."""
    pg, rabbit, ast = stack.postgres(), stack.rabbitmq(), stack.asterisk()
    env = service_env(stack.ports, stack.secrets_dir, "")
    rows = [
        Service(
            "postgres", pg.pid, f"{LOOPBACK}:{pg.port}", f"data {pg.data_dir}, log {pg.log_file}",
            lambda timeout: _probe_postgres(stack, timeout),
        ),
        Service(
            "rabbitmq", rabbit.pid,
            f"{LOOPBACK}:{rabbit.port} AMQP, dist {rabbit.dist_port}, epmd {rabbit.epmd_port}",
            f"node {rabbit.node}, log {rabbit.log_file}",
            lambda timeout: _probe_amqp(rabbit, timeout),
        ),
    ]  # fmt: skip
    for daemon in daemons.DAEMONS:
        port_key, probe = daemons.PROBES.get(daemon.name, ("", None))
        port = int(env[port_key]) if port_key else 0
        rows.append(
            Service(
                daemon.name,
                daemons.running_pid(stack.run_dir, daemon),
                f"{LOOPBACK}:{port}" if port else "-",
                f"log {daemons.log_file(stack.run_dir, daemon)}",
                (lambda timeout, probe=probe, port=port: probe(port, timeout)) if probe else None,
            )
        )
    rows.append(
        Service(
            "asterisk", ast.pid,
            f"SIP {LOOPBACK}:{ast.sip_port} udp+tcp, AMI {LOOPBACK}:{ast.ami_port}, "
            f"RTP {ast.rtp_range[0]}-{ast.rtp_range[1]}",
            f"log {ast.log_dir}, console {ast.console_log}",
            lambda timeout: _probe_asterisk(ast, timeout),
        )
    )  # fmt: skip
    return rows


def _probe_postgres(stack: Stack, timeout: float) -> str:
    """``SELECT 1`` over TCP as the writer role (the way the daemons connect), else as the superuser."""
    import psycopg

    writer = stack.secrets_dir / f"{WRITER_ROLE}.dsn"
    dsn = writer.read_text().strip() if writer.exists() else stack.postgres().superuser_dsn("postgres")
    seconds = max(1, round(timeout))  # libpq's connect_timeout is whole seconds
    limit = f"-c statement_timeout={seconds}s"
    try:
        with psycopg.connect(dsn, connect_timeout=seconds, options=limit) as conn:
            conn.execute("SELECT 1").fetchone()
    except psycopg.Error as exc:
        raise RuntimeError(f"SELECT 1: {exc}") from None
    return f"SELECT 1 as {WRITER_ROLE if writer.exists() else 'postgres'}"


def _probe_amqp(rabbit: RabbitMQServer, timeout: float) -> str:
    """An AMQP connection as the stack's user, opened and closed."""
    import logging

    import pika

    logging.getLogger("pika").setLevel(logging.CRITICAL)  # a failure is this probe's answer, not a traceback
    params = rabbit.pika_params(
        socket_timeout=timeout, stack_timeout=timeout, blocked_connection_timeout=timeout
    )
    started = time.monotonic()
    try:
        pika.BlockingConnection(params).close()
    except Exception as exc:  # pika raises several unrelated classes (socket, handshake, stack timeout)
        if time.monotonic() - started >= timeout * 0.9:
            raise RuntimeError(f"AMQP connect: no answer within {timeout:g} s") from None
        raise RuntimeError(f"AMQP connect: {type(exc).__name__}: {exc}") from None
    return f"AMQP connect as {rabbit.user}"


def _probe_asterisk(ast: AsteriskServer, timeout: float) -> str:
    """``core show uptime`` through Asterisk's CLI (its control socket)."""
    try:
        uptime = ast.cli("core show uptime", timeout=timeout).strip().splitlines()
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"core show uptime: no answer within {timeout:g} s") from None
    return f"core show uptime: {uptime[0] if uptime else '(empty)'}"


def _probe_all(rows: list[Service], timeout: float) -> dict[str, tuple[bool, str]]:
    """Every running service's probe at once, each in its own thread, all within one deadline: name ->
    (answered, what it said or why not). A probe still running at the deadline counts as no answer; its
    thread (a daemon) ends on its own socket or process timeout."""
    results: dict[str, tuple[bool, str]] = {}

    def run(row: Service, probe: Callable[[float], str]) -> None:
        started = time.monotonic()
        try:
            answer = probe(timeout)
        except Exception as exc:  # any failure is the probe's answer
            results[row.name] = (False, " ".join(str(exc).split())[:200] or type(exc).__name__)
            return
        results[row.name] = (True, f"{answer} ({(time.monotonic() - started) * 1000:.0f} ms)")

    threads = {
        row.name: threading.Thread(target=run, args=(row, row.probe), name=f"probe {row.name}", daemon=True)
        for row in rows
        if row.pid and row.probe
    }
    deadline = time.monotonic() + timeout + 0.5
    for thread in threads.values():
        thread.start()
    for thread in threads.values():
        thread.join(max(0.0, deadline - time.monotonic()))
    return {name: results.get(name, (False, f"no answer within {timeout:g} s")) for name in threads}


def status(stack: Stack, timeout: float = PROBE_TIMEOUT) -> int:
    """Each service: state, address, and whether it answers its probe. Exit 1 when a running one does not."""
    stack.ports = _load_ports(stack) or stack.ports
    rows = services(stack)
    answers = _probe_all(rows, timeout)
    table = [("service", "state", "listens on", "answers")]
    for row in rows:
        state = f"running (pid {row.pid})" if row.pid else "stopped"
        if row.name in answers:
            ok, said = answers[row.name]
            probe = f"{'OK' if ok else 'NOT ANSWERING'}: {said}"
        else:
            probe = "- (no port to ask: its pid is all)" if row.pid and not row.probe else "-"
        table.append((row.name, state, row.address, probe))
    widths = [max(len(line[column]) for line in table) for column in range(3)]
    for *cells, answer in table:
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        print(*padded, answer, sep="  ")
    width = widths[0]
    for row in rows:
        print(f"{row.name:<{width}}  {row.files}")
    print(f"{'env':<{width}}  {stack.env_file if stack.env_file.exists() else '(none yet)'}")
    silent = [name for name, (ok, _) in answers.items() if not ok]
    if silent:
        print(f"not answering within {timeout:g} s: {', '.join(silent)}", file=sys.stderr)
        return 1
    return 0


def _load_ports(stack: Stack) -> Ports | None:
    try:
        saved = json.loads(stack.state_file.read_text())["ports"]
        return Ports(**saved)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _anything_running(stack: Stack) -> bool:
    return stack.postgres().running or stack.rabbitmq().running or stack.asterisk().running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--run-dir", type=Path, default=REPO / "run", help="default: <repo>/run")
    defaults = Ports()
    parser.add_argument("--pg-port", type=int, default=defaults.postgres)
    parser.add_argument("--amqp-port", type=int, default=defaults.amqp)
    parser.add_argument("--rabbitmq-dist-port", type=int, default=defaults.rabbitmq_dist)
    parser.add_argument("--epmd-port", type=int, default=defaults.epmd)
    parser.add_argument("--agid-port", type=int, default=defaults.agid)
    parser.add_argument("--confgend-port", type=int, default=defaults.confgend)
    parser.add_argument("--cti-port", type=int, default=defaults.cti)
    parser.add_argument("--sip-port", type=int, default=defaults.sip, help="Asterisk's SIP, udp and tcp")
    parser.add_argument("--ami-port", type=int, default=defaults.ami)
    parser.add_argument(
        "--rtp-start", type=int, default=defaults.rtp_start, help="first of Asterisk's RTP ports"
    )
    parser.add_argument("--demo-users", type=int, default=20, help="users made by the demo step")
    parser.add_argument("--no-demo", action="store_true", help="do not load demo data")
    parser.add_argument(
        "--probe-timeout",
        type=float,
        default=PROBE_TIMEOUT,
        help=f"status: seconds each service has to answer its probe (default {PROBE_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    stack = Stack(
        run_dir=args.run_dir.absolute(),
        ports=Ports(
            args.pg_port,
            args.amqp_port,
            args.rabbitmq_dist_port,
            args.epmd_port,
            args.agid_port,
            args.confgend_port,
            args.cti_port,
            args.sip_port,
            args.ami_port,
            args.rtp_start,
        ),
        demo_users=args.demo_users,
        demo=not args.no_demo,
    )
    commands: dict[str, Callable[[Stack], int]] = {
        "up": up,
        "down": down,
        "status": lambda stack: status(stack, args.probe_timeout),
    }
    return commands[args.command](stack)


if __name__ == "__main__":
    sys.exit(main())
