"""The PBX daemons, for the local stack and the call tests alike: started detached, with their config,
pid file and log under ``<run dir>/daemons/``, and the PBX's Asterisk under ``<run dir>/asterisk/``.

Each entry of DAEMONS names an executable in .venv/bin (or a module run by .venv's python) and writes its
configuration from the environment of harness.pbxconf.service_env. A daemon whose executable is not
installed is skipped and said so. ``asterisk()`` gives the Asterisk that pulls its configuration from
that confgend, on the same ports. ``PROBES`` asks each daemon that listens whether it answers, over its own
protocol (agid: FastAGI ``ping``; ctid: CTI ``ping``; confgend: a file fetch), within a timeout.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.asterisk import AsteriskServer
from harness.ports import LOOPBACK, port_is_free

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"


@dataclass(frozen=True)
class Daemon:
    name: str
    # (config dir, stack environment) -> argv after the executable
    configure: Callable[[Path, dict[str, str]], list[str]]
    # run as `.venv/bin/python -m <module>` when the component declares no console script
    module: str = ""
    # the environment key of the port it listens on: start() waits until it accepts
    port_key: str = ""

    @property
    def command(self) -> list[str]:
        return [str(BIN / "python"), "-m", self.module] if self.module else [str(BIN / self.name)]


def _relay(config_dir: Path, env: dict[str, str]) -> list[str]:
    _write_yaml(
        config_dir / "config.yml",
        {
            "db": {"dsn_file": str(Path(env["PBX_SECRETS_DIR"]) / "pbx_writer.dsn")},
            "bus": {"url": env["PBX_AMQP_URL"]},
        },
    )
    return ["--config", str(config_dir / "config.yml")]


def _agid(config_dir: Path, env: dict[str, str]) -> list[str]:
    settings = {
        "listen_address": "127.0.0.1",
        "listen_port": int(env["PBX_AGID_PORT"]),
        "db_dsn_file": str(Path(env["PBX_SECRETS_DIR"]) / "pbx_agid.dsn"),
    }
    _write_yaml(config_dir / "config.yml", settings)
    return ["--config-dir", str(config_dir)]


def _ami_secret(env: dict[str, str], user: str) -> Path:
    """The AMI secret of ``user``, made once: what confgend writes into manager.conf and ctid logs in with."""
    path = Path(env["PBX_SECRETS_DIR"]) / f"ami-{user}.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24) + "\n")
    return path


def _confgend(config_dir: Path, env: dict[str, str]) -> list[str]:
    secrets_dir = Path(env["PBX_SECRETS_DIR"])
    users = [
        {"name": "ctid", "secret_file": str(_ami_secret(env, "ctid")),
         "read": "system,call,agent,user,dtmf,reporting", "write": "system,call,originate,agent,reporting"},
        {"name": "confgend", "secret_file": str(_ami_secret(env, "confgend")),
         "read": "system", "write": "system,config"},
    ]  # fmt: skip
    _write_yaml(
        config_dir / "config.yml",
        {
            "listen": {"host": "127.0.0.1", "port": int(env["PBX_CONFGEND_PORT"])},
            "db": {"dsn_file": str(secrets_dir / "pbx_confgend.dsn")},
            "cache": {"directory": str(config_dir / "cache")},
            "bus": {"url": env["PBX_AMQP_URL"]},
            "ami": {"port": int(env["PBX_AMI_PORT"]), "secret_file": str(_ami_secret(env, "confgend"))},
            "asterisk": {
                "manager": {"port": int(env["PBX_AMI_PORT"]), "users": users},
                "pjsip": {
                    "transports": {proto: f"127.0.0.1:{env['PBX_SIP_PORT']}" for proto in ("udp", "tcp")}
                },
                "agid": {"host": "127.0.0.1", "port": int(env["PBX_AGID_PORT"])},
                "rtp": {"start": int(env["PBX_RTP_START"]), "end": int(env["PBX_RTP_END"])},
            },
        },
    )
    return ["--config", str(config_dir / "config.yml")]


def _ctid(config_dir: Path, env: dict[str, str]) -> list[str]:
    _write_yaml(
        config_dir / "config.yml",
        {
            "ami": {"port": int(env["PBX_AMI_PORT"]), "secret_file": str(_ami_secret(env, "ctid"))},
            "cti": {"host": "127.0.0.1", "port": int(env["PBX_CTI_PORT"])},
            "db": {"dsn_file": str(Path(env["PBX_SECRETS_DIR"]) / "pbx_ctid.dsn")},
            "bus": {"url": env["PBX_AMQP_URL"]},
        },
    )
    return ["--config", str(config_dir / "config.yml")]


DAEMONS: tuple[Daemon, ...] = (
    Daemon("pbx-event-relay", _relay),
    Daemon("agid", _agid, port_key="PBX_AGID_PORT"),
    Daemon("confgend", _confgend, port_key="PBX_CONFGEND_PORT"),
    Daemon("ctid", _ctid, module="ctid.main", port_key="PBX_CTI_PORT"),
)


def asterisk(run_dir: Path, env: dict[str, str], *, detached: bool = False) -> AsteriskServer:
    """The PBX's Asterisk: configuration from the confgend above, SIP/AMI/RTP ports from ``env``."""
    return AsteriskServer(
        run_dir / "asterisk",
        confgend_port=int(env["PBX_CONFGEND_PORT"]),
        ami_port=int(env["PBX_AMI_PORT"]),
        sip_port=int(env["PBX_SIP_PORT"]),
        rtp_range=(int(env["PBX_RTP_START"]), int(env["PBX_RTP_END"])),
        detached=detached,
    )


def _write_yaml(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)


def pid_file(run_dir: Path, daemon: Daemon) -> Path:
    return run_dir / "daemons" / f"{daemon.name}.pid"


def log_file(run_dir: Path, daemon: Daemon | str) -> Path:
    name = daemon if isinstance(daemon, str) else daemon.name
    return run_dir / "daemons" / f"{name}.log"


def running_pid(run_dir: Path, daemon: Daemon) -> int | None:
    try:
        pid = int(pid_file(run_dir, daemon).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start(run_dir: Path, daemon: Daemon, env: dict[str, str], timeout: float = 20.0) -> str:
    """Start ``daemon`` detached; wait until it listens on its port (or 1 s for one without a port)."""
    executable = Path(daemon.command[0])
    if not executable.exists():
        return f"skipped ({executable} is not installed)"
    if pid := running_pid(run_dir, daemon):
        return f"already running (pid {pid})"
    config_dir = run_dir / "daemons" / daemon.name
    argv = [*daemon.command, *daemon.configure(config_dir, env)]
    log = log_file(run_dir, daemon)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ | env,
        )
    pid_file(run_dir, daemon).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + (timeout if daemon.port_key else 1.0)
    port = int(env[daemon.port_key]) if daemon.port_key else 0
    while proc.poll() is None and time.monotonic() < deadline:
        if port and not port_is_free(port):  # it listens (checked without connecting: no noise in its log)
            return f"started (pid {proc.pid}, log {log})"
        time.sleep(0.05)
    if proc.poll() is None and not port:  # a daemon that dies on a bad config does so at once
        return f"started (pid {proc.pid}, log {log})"
    code = proc.poll()
    stop(run_dir, daemon)
    tail = " | ".join(log.read_text(errors="replace").splitlines()[-8:])
    if code is None:
        raise RuntimeError(f"{daemon.name} does not listen on 127.0.0.1:{port} after {timeout:g} s: {tail}")
    raise RuntimeError(f"{daemon.name} exited with {code}: {tail}")


def stop(run_dir: Path, daemon: Daemon, timeout: float = 10.0) -> str:
    pid = running_pid(run_dir, daemon)
    if pid is None:
        return "was not running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                break
        except ChildProcessError:  # not our child: poll its existence
            try:
                os.kill(pid, 0)
            except OSError:
                break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    pid_file(run_dir, daemon).unlink(missing_ok=True)
    return "stopped"


def by_name(name: str) -> Daemon:
    """The entry of DAEMONS called ``name`` ("agid", "confgend", ...)."""
    for daemon in DAEMONS:
        if daemon.name == name:
            return daemon
    raise KeyError(f"no daemon {name!r}; there are {[d.name for d in DAEMONS]}")


def freeze(run_dir: Path, daemon: Daemon) -> int:
    """SIGSTOP a running daemon, as a hung process: its socket still accepts (the kernel queues the
    connections) but nothing is answered. Its pid; thaw() it in a finally."""
    pid = running_pid(run_dir, daemon)
    if pid is None:
        raise RuntimeError(f"{daemon.name} does not run: nothing to freeze")
    os.kill(pid, signal.SIGSTOP)
    return pid


def thaw(run_dir: Path, daemon: Daemon) -> None:
    """SIGCONT what freeze() stopped (no-op when it does not run)."""
    pid = running_pid(run_dir, daemon)
    if pid is not None:
        os.kill(pid, signal.SIGCONT)


# -- health probes: each daemon asked over its own protocol, with a deadline --------------------------


class ProbeError(RuntimeError):
    """A daemon did not answer its probe (refused, timed out, or answered wrong); the message says which."""


@dataclass(frozen=True)
class _Budget:
    """One probe's name and its absolute deadline."""

    what: str
    timeout: float
    deadline: float

    @classmethod
    def of(cls, what: str, timeout: float) -> _Budget:
        return cls(what, timeout, time.monotonic() + timeout)

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.error(f"no answer within {self.timeout:g} s")
        return left

    def error(self, why: str) -> ProbeError:
        return ProbeError(f"{self.what}: {why}")


def _read_line(sock: socket.socket, buffer: bytearray, budget: _Budget) -> bytes:
    """One LF-terminated line from ``sock`` (``buffer`` keeps what came after it); b"" at EOF."""
    while b"\n" not in buffer:
        sock.settimeout(budget.left())
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            raise budget.error(f"no answer within {budget.timeout:g} s") from None
        if not chunk:
            return b""
        buffer += chunk
        if len(buffer) > 1 << 16:
            raise budget.error("answer too long")
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


def _connect(port: int, budget: _Budget) -> socket.socket:
    try:
        return socket.create_connection((LOOPBACK, port), timeout=budget.left())
    except TimeoutError:
        raise budget.error(f"connecting to {LOOPBACK}:{port} timed out") from None
    except OSError as exc:
        raise budget.error(f"cannot connect to {LOOPBACK}:{port}: {exc.strerror or exc}") from None


def ping_agid(port: int, timeout: float) -> str:
    """agid's builtin ``ping`` handler over FastAGI: an AGI environment, then "200 result=1" to every
    command until agid closes the session; it must have set AGID_PONG=pong and AGID_STATUS=OK."""
    budget = _Budget.of("FastAGI ping", timeout)
    env = (
        f"agi_network: yes\nagi_network_script: ping\nagi_request: agi://{LOOPBACK}:{port}/ping\n"
        "agi_channel: Local/status-probe;2\nagi_uniqueid: 0.0\nagi_context: status-probe\n\n"
    )
    commands: list[str] = []
    with _connect(port, budget) as sock:
        sock.sendall(env.encode())
        buffer = bytearray()
        while line := _read_line(sock, buffer, budget):
            commands.append(line.decode(errors="replace"))
            sock.sendall(b"200 result=1\n")
    pong = any("AGID_PONG" in c and "pong" in c for c in commands)
    if not pong or not any("AGID_STATUS" in c and "OK" in c for c in commands):
        raise budget.error(f"no pong and OK in its commands: {' | '.join(commands)[:200]!r}")
    return "FastAGI ping: pong"


def ping_cti(port: int, timeout: float) -> str:
    """A CTI ``ping`` (docs/cti-protocol.md; accepted before login), after the server's welcome."""
    budget = _Budget.of("CTI ping", timeout)
    with _connect(port, budget) as sock:
        buffer = bytearray()
        welcome = _read_line(sock, buffer, budget)
        if b'"welcome"' not in welcome:
            raise budget.error(f"no welcome but {welcome[:200]!r}")
        sock.sendall(b'{"class":"ping","id":1}\n')
        while line := _read_line(sock, buffer, budget):
            answer = json.loads(line)
            if answer.get("id") == 1:
                if answer.get("class") != "response" or answer.get("ok") is not True:
                    raise budget.error(f"answered {line[:200]!r}")
                return "CTI ping: ok"
    raise budget.error("connection closed before the answer")


def fetch_confgend(port: int, timeout: float) -> str:
    """asterisk/modules.conf over confgend's protocol, by the client Asterisk runs (confgend.client)."""
    try:
        from confgend.client import Failed, fetch_reply
    except ImportError as exc:
        raise ProbeError(f"cannot probe confgend: {exc} (run `make deps`)") from None
    try:
        body, fresh = fetch_reply("asterisk/modules.conf", LOOPBACK, port, timeout, timeout)
    except Failed as exc:
        raise ProbeError(f"fetch asterisk/modules.conf: {exc}") from None
    state = "fresh" if fresh else "its last good copy (it cannot generate now)"
    return f"fetch asterisk/modules.conf: {len(body)} bytes, {state}"


# name -> (environment key of its port, probe(port, timeout) -> what it answered); pbx-event-relay has
# no port (it only talks to PostgreSQL and RabbitMQ): its pid is all there is to show.
PROBES: dict[str, tuple[str, Callable[[int, float], str]]] = {
    "agid": ("PBX_AGID_PORT", ping_agid),
    "confgend": ("PBX_CONFGEND_PORT", fetch_confgend),
    "ctid": ("PBX_CTI_PORT", ping_cti),
}
