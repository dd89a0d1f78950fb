"""The local stack's up/status/down, in temporary run directories on free ports; two stacks side by side."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import pika
import psycopg
import pytest

from harness import daemons, procs, stack
from harness.pbxconf import RTP_PORTS, Ports
from harness.ports import LOOPBACK, accepts, free_port, free_udp_range, udp_port_is_free
from harness.sipregister import register_once, wait_registered

PBX_ADMIN = stack.REPO / ".venv" / "bin" / "pbx-admin"
PROCESSES = ("pbx-event-relay", "agid", "confgend", "ctid", "asterisk")  # a stack's clients of its servers
FLAGS = {
    "postgres": "--pg-port", "amqp": "--amqp-port", "rabbitmq_dist": "--rabbitmq-dist-port",
    "epmd": "--epmd-port", "agid": "--agid-port", "confgend": "--confgend-port", "cti": "--cti-port",
    "sip": "--sip-port", "ami": "--ami-port", "rtp_start": "--rtp-start",
}  # fmt: skip


def _new_run_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="pbx-test-stack-"))
    path.chmod(0o755)  # like run/ in the repo: PostgreSQL runs as "postgres" and must reach run/postgres
    return path


def _remove(path: Path) -> None:
    stack.main(["down", "--run-dir", str(path)])
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = _new_run_dir()
    try:
        yield path
    finally:
        _remove(path)


@pytest.fixture
def two_run_dirs() -> Iterator[tuple[Path, Path]]:
    paths = (_new_run_dir(), _new_run_dir())
    try:
        yield paths
    finally:
        for path in paths:
            _remove(path)


def _free_ports() -> Ports:
    """Every port of a stack, free now and never handed out before in this session (so two stacks of one
    test never share one)."""
    return Ports(
        postgres=free_port(),
        amqp=free_port(),
        rabbitmq_dist=free_port(),
        epmd=free_port(),
        agid=free_port(),
        confgend=free_port(),
        cti=free_port(),
        sip=free_port(udp=True),
        ami=free_port(),
        rtp_start=free_udp_range(RTP_PORTS),
    )


def _flags(run_dir: Path, ports: Ports) -> list[str]:
    flags = ["--run-dir", str(run_dir), "--no-demo"]
    for each in fields(Ports):
        flags += [FLAGS[each.name], str(getattr(ports, each.name))]
    return flags


def _tcp_ports(ports: Ports) -> list[int]:
    """The TCP ports a stack listens on (the RTP range is UDP only)."""
    return [getattr(ports, each.name) for each in fields(Ports) if each.name != "rtp_start"]


def _env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")
    return {key: value.strip("'") for key, value in pairs}


def _status(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str], float]:
    """`status`: its exit code, each service's line by name, and how long it took."""
    capsys.readouterr()
    started = time.monotonic()
    code = stack.main(["status", "--run-dir", str(run_dir)])
    elapsed = time.monotonic() - started
    lines = capsys.readouterr().out.splitlines()
    names = [row.name for row in stack.services(stack.Stack(run_dir))]
    table = {line.split()[0]: line for line in lines if "running (pid" in line or " stopped " in line}
    assert sorted(table) == sorted(names), "\n".join(lines)
    return code, table, elapsed


def test_up_status_down_up(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ports = _free_ports()
    flags = _flags(run_dir, ports)
    assert stack.main(["up", *flags]) == 0
    env = _env(run_dir / "stack.env")
    with psycopg.connect(env["PBX_PG_SUPERUSER_DSN"]) as conn:
        conn.execute("CREATE TABLE kept (v int)")
        # the stack's data are kept: its PostgreSQL is durable (the tests' clusters are not)
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            assert conn.execute(f"SHOW {setting}").fetchone() == ("on",), setting
    pika.BlockingConnection(pika.URLParameters(env["PBX_AMQP_URL"])).close()

    # status: every service runs, shows its port and answers its probe
    code, table, _ = _status(run_dir, capsys)
    assert code == 0, table
    assert all("running (pid" in line for line in table.values()), table
    probed = {name: line for name, line in table.items() if name != "pbx-event-relay"}
    assert all("OK: " in line for line in probed.values()), table
    for name, port in (("postgres", ports.postgres), ("rabbitmq", ports.amqp), ("agid", ports.agid),
                       ("confgend", ports.confgend), ("ctid", ports.cti)):  # fmt: skip
        assert f"{LOOPBACK}:{port}" in table[name], table[name]
    assert "FastAGI ping: pong" in table["agid"]
    assert "CTI ping: ok" in table["ctid"]
    assert "fetch asterisk/modules.conf" in table["confgend"]
    assert f"SIP {LOOPBACK}:{ports.sip} udp+tcp, AMI {LOOPBACK}:{ports.ami}" in table["asterisk"]
    assert "core show uptime" in table["asterisk"]
    assert all(accepts(port) for port in _tcp_ports(ports))
    assert "Asterisk Ready" in (run_dir / "asterisk" / "console.log").read_text()

    # a hung daemon (SIGSTOP: its socket still accepts) is reported within the probe's timeout
    for name in daemons.PROBES:
        daemon = daemons.by_name(name)
        daemons.freeze(run_dir, daemon)
        try:
            code, table, elapsed = _status(run_dir, capsys)
        finally:
            daemons.thaw(run_dir, daemon)
        assert code == 1, table
        assert "NOT ANSWERING: " in table[name], table[name]
        assert f"within {stack.PROBE_TIMEOUT:g} s" in table[name], table[name]
        assert elapsed < stack.PROBE_TIMEOUT + 1.5, f"status took {elapsed:.1f} s with {name} frozen"
        others = {other: line for other, line in probed.items() if other != name}
        assert all("OK: " in table[other] for other in others), table
    assert _status(run_dir, capsys)[0] == 0

    assert stack.main(["down", "--run-dir", str(run_dir)]) == 0
    assert not any(accepts(port) for port in _tcp_ports(ports))
    code, table, _ = _status(run_dir, capsys)
    assert code == 0
    assert all(" stopped " in line for line in table.values()), table

    assert stack.main(["up", *flags]) == 0
    assert _env(run_dir / "stack.env")["PBX_AMQP_URL"] == env["PBX_AMQP_URL"]
    with psycopg.connect(env["PBX_PG_SUPERUSER_DSN"]) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)


# -- two stacks side by side -------------------------------------------------------------------------------


@dataclass
class Side:
    """One of the two stacks, with the user it gets (its extension tells its calls apart in the logs)."""

    run_dir: Path
    exten: str
    ports: Ports = field(default_factory=_free_ports)
    user: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> stack.Stack:
        return stack.Stack(self.run_dir, self.ports)

    def pid(self, name: str) -> int:
        if name == "asterisk":
            pid = self.config.asterisk().pid
        else:
            pid = daemons.running_pid(self.run_dir, daemons.by_name(name))
        assert pid, f"{name} does not run in {self.run_dir}"
        return pid

    def log(self, name: str) -> str:
        if name == "asterisk":
            return (self.run_dir / "asterisk" / "console.log").read_text(errors="replace")
        return daemons.log_file(self.run_dir, name).read_text(errors="replace")

    def pbx_admin(self, *args: str) -> str:
        done = subprocess.run(
            [str(PBX_ADMIN), *args],
            env=os.environ | {k: v for k, v in _env(self.run_dir / "stack.env").items() if k != "PATH"},
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def _tcp_connections(pid: int) -> set[tuple[int, int]]:
    """(local port, remote port) of each established TCP connection that process holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cells = line.split()
            if cells[3] == "01" and cells[9] in inodes:  # 01: ESTABLISHED
                found.add((int(cells[1].rsplit(":", 1)[1], 16), int(cells[2].rsplit(":", 1)[1], 16)))
    return found


def _reloads(side: Side) -> int:
    """How many times that Asterisk reloaded its SIP configuration (confgend's AMI reload after a change)."""
    return side.log("asterisk").count("Reloading module 'res_pjsip.so'")


def _changes(side: Side) -> int:
    """How many changes that confgend has taken into account (each line names the modules it reloaded)."""
    return side.log("confgend").count("confgend.reload: changed:")


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.2)


def test_two_stacks_side_by_side(two_run_dirs: tuple[Path, Path]) -> None:
    a, b = Side(two_run_dirs[0], "1101"), Side(two_run_dirs[1], "2202")
    pairs = ((a, b), (b, a))
    for side in (a, b):
        assert stack.main(["up", *_flags(side.run_dir, side.ports)]) == 0
    assert not set(_tcp_ports(a.ports)) & set(_tcp_ports(b.ports))

    # what each stack generated follows its own flags: the dialplan's AGI address, confgend's and ctid's
    # AMI port, Asterisk's SIP/AMI/RTP, the pbx-confgen wrapper's confgend port
    for side in (a, b):
        ports, cache = side.ports, side.run_dir / "asterisk" / "confgen-cache" / "asterisk"
        extensions = (cache / "extensions.conf").read_text()
        assert f"AGI(agi://{LOOPBACK}:{ports.agid}/" in extensions
        assert extensions.count("AGI(agi://") == extensions.count(f"AGI(agi://{LOOPBACK}:{ports.agid}/")
        assert f"port = {ports.ami}\n" in (cache / "manager.conf").read_text()
        assert f"bind = {LOOPBACK}:{ports.sip}\n" in (cache / "pjsip.conf").read_text()
        assert f"rtpstart = {ports.rtp_start}\n" in (cache / "rtp.conf").read_text()
        wrapper = (side.run_dir / "asterisk" / "bin" / "pbx-confgen").read_text()
        assert f"--port {ports.confgend} " in wrapper
        for daemon in ("confgend", "ctid"):
            config = (side.run_dir / "daemons" / daemon / "config.yml").read_text()
            assert f"port: {ports.ami}\n" in config, config

    # a user on each, added by pbx-admin: its stack's confgend reloads its own Asterisk (over its own
    # AMI), never the other one; the line then registers (a real SIP REGISTER) on that Asterisk only
    for side, other in pairs:
        other_reloads, changes = _reloads(other), _changes(side)
        side.user = json.loads(
            side.pbx_admin("user", "add", "--firstname", "Side", "--lastname", side.exten,
                           "--exten", side.exten, "--json")
        )  # fmt: skip
        _wait_for(f"{side.run_dir}'s confgend reloads", lambda side=side, n=changes: _changes(side) > n)
        wait_registered((LOOPBACK, side.ports.sip), side.user["line"], side.user["sip_secret"], timeout=20)
        assert _reloads(other) == other_reloads, f"{other.run_dir} reloaded on {side.run_dir}'s change"
    for side, other in pairs:
        code = register_once((LOOPBACK, other.ports.sip), side.user["line"], side.user["sip_secret"])
        assert code in (401, 403), f"{side.run_dir}'s line answered {code} on the other Asterisk"

    # a call to the user's extension on each: its dialplan asks its own agid, and only that one
    for side in (a, b):
        side.config.asterisk().cli(f"channel originate Local/{side.exten}@internal application Wait 1")
    for side, other in pairs:
        _wait_for(
            f"{side.run_dir}'s agid runs incoming_user",
            lambda side=side: (
                f"Local/{side.exten}@internal" in side.log("agid") and "incoming_user OK" in side.log("agid")
            ),
        )
        sessions = [line for line in side.log("agid").splitlines() if "agid.handler: channel=" in line]
        assert sessions, side.log("agid")
        assert all(f"Local/{side.exten}@internal" in line for line in sessions), sessions
        assert f"Local/{other.exten}@" not in side.log("agid")
    for side in (a, b):
        side.config.asterisk().cli("channel request hangup all")

    # AMI: each Asterisk's only manager session is its own ctid's, and no process of one stack holds a
    # connection to a port of the other
    for side, other in pairs:
        asterisk = side.config.asterisk()
        shown = asterisk.cli("manager show connected")
        assert [row.split()[0] for row in shown.splitlines()[1:-1] if row.strip()] == ["ctid"], shown
        ami = side.ports.ami
        ami_clients = {remote for local, remote in _tcp_connections(side.pid("asterisk")) if local == ami}
        ctid_ends = {local for local, remote in _tcp_connections(side.pid("ctid")) if remote == ami}
        assert ami_clients and ami_clients == ctid_ends, (ami_clients, ctid_ends)
        peers = {name: {port for _, port in _tcp_connections(side.pid(name))} for name in PROCESSES}
        for name, remote in peers.items():
            assert not remote & set(_tcp_ports(other.ports)), f"{side.run_dir}'s {name} talks to the other"
        assert side.ports.postgres in peers["agid"]
        assert {side.ports.postgres, side.ports.amqp, ami} <= peers["ctid"]
        messages = (side.run_dir / "asterisk" / "log" / "messages.log").read_text(errors="replace")
        assert "failed to authenticate" not in messages

    # both down: nothing of either listens any more, no process of either is left
    pids = [side.pid(name) for side in (a, b) for name in PROCESSES]
    pids += [server.pid for side in (a, b) for server in (side.config.postgres(), side.config.rabbitmq())]
    for side in (a, b):
        assert stack.main(["down", "--run-dir", str(side.run_dir)]) == 0
    for side in (a, b):
        listening = [port for port in _tcp_ports(side.ports) if accepts(port)]
        assert not listening, f"{side.run_dir}: still listening on {listening}"
        assert udp_port_is_free(side.ports.sip)
    assert not [pid for pid in pids if procs.pid_alive(pid)]
