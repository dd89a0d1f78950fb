"""Ansible roles, playbooks and the Vagrant box (issue 7).

- ansible-lint's production profile passes on site.yml, image/image.yml and roles/;
- ``vagrant validate`` passes, with the Debian box and with the image's box;
- site.yml against a fresh Debian bookworm booted with ``systemd-nspawn -b`` (its own network namespace,
  reached with the nsenter connection): the daemons run and answer, everything listens on loopback, the
  firewall drops by default; a second run changes nothing;
- image/image.yml against a bookworm root filesystem through the chroot connection: nothing starts,
  units are enabled, no secret stays in the image; a second run changes nothing; the image then boots
  and its first boot sets up the database, the bus and the secrets, and the daemons answer.

The bookworm root filesystem comes from mmdebstrap (Debian's mirror) once and is kept as a tarball in
build/ansible-test/, with an apt archive cache shared by the runs. Needs root (mmdebstrap, chroot,
systemd-nspawn) and the Makefile's apt packages.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "ansible-test"
ARCHIVES = CACHE / "apt-archives"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# A fresh minimal host: what a Debian server has before Ansible reaches it (systemd, python3).
BASE_PACKAGES = ("systemd-sysv", "dbus", "python3", "ca-certificates")
SYSTEM_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}
PBX_UNITS = ("pbx-event-relay", "pbx-agid", "pbx-ctid", "pbx-confgend")
GENERATED = (
    "pjsip.conf",
    "extensions.conf",
    "voicemail.conf",
    "queues.conf",
    "agents.conf",
    "musiconhold.conf",
    "features.conf",
    "manager.conf",
    "modules.conf",
)
# The test host's network: a veth pair, the host side (where the apt proxy listens) and the container's.
HOST_IP, GUEST_IP, PREFIX = "10.254.73.1", "10.254.73.2", 30
# Asterisk's SIP port (confgend's transports bind every address; the firewall filters).
SIP_PORT = 5060
EPHEMERAL_UDP = range(32768, 65536)
MACHINE = "pbxtest"
# Extra variables of the site.yml run: SIP open from the host side of the veth pair (and a documentation
# network), RTP from a documentation network only, SIP over TLS and CTI closed.
SITE_VARS = {
    "common_firewall_sip_sources": [f"{HOST_IP}/32", "2001:db8::/32"],
    "common_firewall_rtp_sources": ["192.0.2.0/24"],
}

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap, chroot and systemd-nspawn need root"),
    pytest.mark.timeout(1800),
]


def run(cmd: list[str], timeout: float = 900, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run with Debian's tools only (no venv on PATH); on failure, fail with the end of the output."""
    env = {**SYSTEM_ENV, **kwargs.pop("env", {})}
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd[:4])} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-6000:]}")
    return proc


RECAP = r"^\S+\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"


class PlaybookRun:
    def __init__(self, proc: subprocess.CompletedProcess, log: Path) -> None:
        self.output = proc.stdout + proc.stderr
        self.returncode = proc.returncode
        log.write_text(self.output)
        recap = re.findall(RECAP, self.output, re.M)
        assert recap, f"no PLAY RECAP in the output:\n{self.output[-6000:]}"
        self.ok, self.changed, self.unreachable, self.failed = (int(n) for n in recap[-1])

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported a change (from the default callback's output)."""
        names, current = [], ""
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                current = line.split("[", 1)[1].rsplit("]", 1)[0]
            elif line.startswith("changed:"):
                names.append(current)
        return names

    def assert_succeeded(self) -> None:
        assert self.returncode == 0 and self.failed == 0 and self.unreachable == 0, self.output[-8000:]


def ansible_playbook(playbook: str, inventory: str, log: Path, *args: str) -> PlaybookRun:
    cmd = ["ansible-playbook", "-i", inventory, playbook, *args]
    env = {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    started = time.monotonic()
    proc = run(cmd, timeout=1500, check=False, cwd=ROOT, env=env)
    print(f"$ ansible-playbook {playbook}: {time.monotonic() - started:.0f}s")
    return PlaybookRun(proc, log)


@pytest.fixture(scope="session")
def debs_dir() -> Path:
    """Our packages: build/debs, built with packages/build-debs when it is missing or lacks the PBX or our
    Asterisk (packages/build-asterisk's cache makes Asterisk's share instant when it is unchanged)."""
    debs = ROOT / "build" / "debs"
    names = {deb.name.split("_")[0] for deb in debs.glob("*.deb")}
    if not (debs / "Packages").exists() or not {"pbx", "asterisk"} <= names:
        run([str(ROOT / "packages" / "build-debs"), "-o", str(debs)], timeout=3000)
    return debs


@pytest.fixture(scope="session")
def base_tarball() -> Path:
    """A minimal bookworm (systemd, python3) from Debian's mirror, made once and kept."""
    key = hashlib.sha256(repr((BASE_PACKAGES, MIRRORS)).encode()).hexdigest()[:12]
    tarball = CACHE / f"bookworm-base-{key}.tar"
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial.tar")
        run(
            [
                "mmdebstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                "bookworm",
                str(partial),
                *MIRRORS,
            ],
            timeout=900,
        )
        partial.rename(tarball)
    return tarball


def remove_rootfs(rootfs: Path) -> None:
    """Delete a root filesystem, unless something is still mounted in it (never delete through a mount)."""
    mounts = Path("/proc/self/mounts").read_text().split("\n")
    if any(f" {rootfs}/" in line or f" {rootfs} " in line for line in mounts):
        print(f"left {rootfs} in place: still mounted")
        return
    shutil.rmtree(rootfs, ignore_errors=True)


def unpack(tarball: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    run(["tar", "-C", str(dest), "-xpf", str(tarball)])
    (ARCHIVES / "partial").mkdir(parents=True, exist_ok=True)
    return dest


class AptProxy(http.server.ThreadingHTTPServer):
    """The container reaches Debian's mirror only through this HTTP proxy on the host side of its veth."""

    daemon_threads = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), _ProxyHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    ALLOWED_HOSTS = frozenset({"deb.debian.org"})
    FORWARDED = frozenset(
        {"range", "if-modified-since", "if-range", "if-none-match", "user-agent", "cache-control"}
    )
    DROPPED = frozenset({"connection", "keep-alive", "transfer-encoding", "proxy-connection"})

    def do_GET(self) -> None:
        self._forward("GET")

    def do_HEAD(self) -> None:
        self._forward("HEAD")

    def _forward(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.scheme != "http" or url.hostname not in self.ALLOWED_HOSTS:
            self.send_error(403, "only Debian's mirror")
            return
        upstream = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=120)
        try:
            path = url.path + (f"?{url.query}" if url.query else "")
            headers = {k: v for k, v in self.headers.items() if k.lower() in self.FORWARDED}
            upstream.request(method, path, headers=headers)
            response = upstream.getresponse()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in self.DROPPED:
                    self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            if method == "GET":
                shutil.copyfileobj(response, self.wfile, 1 << 16)
        except OSError as exc:
            self.log_error("proxy: %s", exc)
        finally:
            upstream.close()
            self.close_connection = True

    def log_message(self, format: str, *args) -> None:
        pass


class Machine:
    """A bookworm root filesystem booted with systemd-nspawn in its own network namespace."""

    def __init__(self, rootfs: Path, log: Path) -> None:
        self.rootfs = rootfs
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.pid = 0

    def boot(self) -> None:
        """Boot; the container's network is a veth pair with the host (no route beyond it)."""
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "-D", str(self.rootfs), "-M", MACHINE, "-b",
             "--network-veth", "--register=no", "--keep-unit",
             f"--bind={ARCHIVES}:/var/cache/apt/archives"],
            stdin=subprocess.DEVNULL, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=SYSTEM_ENV,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.pid and time.monotonic() < deadline:
            assert self.proc.poll() is None, f"systemd-nspawn exited:\n{self.log.read_text()[-4000:]}"
            ps = ["ps", "-o", "pid=,comm=", "--ppid", str(self.proc.pid)]
            children = run(ps, check=False).stdout.split()
            if len(children) == 2 and children[1] == "systemd":
                self.pid = int(children[0])
            time.sleep(0.2)
        assert self.pid, f"no systemd in the container:\n{self.log.read_text()[-4000:]}"
        # Both ends of the veth pair, with the host's ip(8) (the container has no iproute2).
        host_if = f"ve-{MACHINE}"
        run(["ip", "addr", "replace", f"{HOST_IP}/{PREFIX}", "dev", host_if])
        run(["ip", "link", "set", host_if, "up"])
        run([*self.nsenter("--net"), "ip", "addr", "replace", f"{GUEST_IP}/{PREFIX}", "dev", "host0"])
        run([*self.nsenter("--net"), "ip", "link", "set", "host0", "up"])
        deadline, state = time.monotonic() + 180, ""
        while state not in ("running", "degraded") and time.monotonic() < deadline:
            # Empty while systemd does not answer on its bus yet.
            state = self.sh("systemctl is-system-running --wait", check=False, timeout=180).stdout.strip()
            time.sleep(0 if state else 0.5)
        assert state in ("running", "degraded"), f"booted into {state!r}:\n{self.log.read_text()[-4000:]}"

    def use_proxy(self, proxy: AptProxy) -> None:
        """apt reaches Debian's mirror through the proxy (test plumbing: the role knows nothing of it)."""
        conf = self.rootfs / "etc/apt/apt.conf.d/00pbx-test-proxy"
        conf.write_text(f'Acquire::http::Proxy "{proxy.url}";\n')

    def nsenter(self, *namespaces: str) -> list[str]:
        return ["nsenter", *namespaces, f"--target={self.pid}", "--"]

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """A shell command inside the container (its mounts, network, processes)."""
        cmd = [*self.nsenter("--ipc", "--mount", "--net", "--pid", "--uts"), "/bin/sh", "-c", script]
        return run(cmd, check=check, timeout=timeout)

    def is_active(self, unit: str) -> bool:
        return self.sh(f"systemctl is-active {unit}", check=False).stdout.strip() == "active"

    def journal(self, unit: str) -> str:
        script = f"systemctl status --no-pager {unit}; journalctl -n 80 --no-pager -u {unit}"
        return self.sh(script, check=False).stdout

    def wait_active(self, unit: str, timeout: float = 120) -> None:
        """Until the unit is active; fail at once with its journal if it failed."""
        deadline = time.monotonic() + timeout
        while (state := self.sh(f"systemctl is-active {unit}", check=False).stdout.strip()) != "active":
            if state == "failed" or time.monotonic() > deadline:
                pytest.fail(f"{unit} is {state}:\n{self.journal(unit)[-6000:]}")
            time.sleep(1)

    def listeners(self) -> list[tuple[str, str, int]]:
        return [
            (kind, host, int(port))
            for kind, host, port in map(str.split, self.python(LISTENERS).splitlines())
        ]

    def wait_listening(self, unit: str, port: int, timeout: float = 60) -> None:
        """Until the unit listens on its port; else fail with its journal."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p == port and kind.startswith("tcp") for kind, _, p in self.listeners()):
                return
            time.sleep(1)
        pytest.fail(f"{unit} does not listen on {port} after {timeout:.0f}s:\n{self.journal(unit)[-6000:]}")

    def python(self, code: str, timeout: float = 60) -> str:
        return self.sh(f"python3 - <<'PY'\n{code}\nPY", timeout=timeout).stdout

    def inventory(self, path: Path) -> str:
        path.write_text(
            "[pbx]\n"
            f"pbxtest ansible_connection=community.docker.nsenter ansible_nsenter_pid={self.pid}"
            " ansible_become=false\n"
        )
        return str(path)

    def shutdown(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # nspawn asks the container's systemd to power off
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# What a client of each daemon sees, run inside the container: agid answers a FastAGI ping.
AGI_PING = """
import socket, time
for _ in range(100):
    try:
        s = socket.create_connection(("127.0.0.1", 4573), timeout=5)
        break
    except OSError:
        time.sleep(0.2)
s.sendall(b"agi_network: yes\\nagi_network_script: ping\\nagi_request: agi://127.0.0.1/ping\\n"
          b"agi_channel: PJSIP/test-1\\nagi_uniqueid: 1.1\\n\\n")
f = s.makefile("rb")
for _ in range(10):
    line = f.readline()
    if not line:
        break
    print(line.decode().strip())
    s.sendall(b"200 result=1\\n")
"""

# Every listening TCP socket and bound UDP socket, with its local address.
LISTENERS = """
import socket, struct
def addr(hexaddr):
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
for name in ("tcp", "tcp6", "udp", "udp6"):
    for row in open(f"/proc/net/{name}").read().splitlines()[1:]:
        fields = row.split()
        local, state = fields[1], fields[3]
        if name.startswith("tcp") and state != "0A":
            continue
        host, port = local.rsplit(":", 1)
        print(name, addr(host), int(port, 16))
"""


def check_pbx_answers(machine: Machine) -> dict[str, str]:
    """The daemons run as their units and answer; returns what they said, for the report."""
    for unit in PBX_UNITS:
        machine.wait_active(unit)
    for unit, port in (("pbx-agid", 4573), ("pbx-confgend", 8669), ("pbx-ctid", 5003)):
        machine.wait_listening(unit, port)
    pong = machine.python(AGI_PING)
    assert "AGID_PONG" in pong and "pong" in pong, pong
    # The stub's own #exec line fetches the generated pjsip.conf from confgend (database role pbx_confgend).
    stub = machine.sh("cat /etc/asterisk/pjsip.conf").stdout
    command = re.search(r"^#exec (.+)$", stub, re.M)
    assert command, stub
    pjsip = machine.sh(command.group(1)).stdout
    assert "[" in pjsip and "type" in pjsip, pjsip[-2000:]
    return {"agid": pong, "pjsip": pjsip}


def check_loopback_only(machine: Machine) -> None:
    """Everything on loopback but Asterisk's SIP (5060, udp and tcp: the firewall decides who reaches it)
    and, as in tests/acceptance, clients' own UDP sockets on ephemeral ports (Asterisk's resolver)."""
    listeners = machine.listeners()
    assert listeners, "nothing listens"
    outside = [
        (proto, address, port)
        for proto, address, port in listeners
        if address != "::1"
        and not address.startswith("127.")
        and port != SIP_PORT
        and not (proto.startswith("udp") and port in EPHEMERAL_UDP)
    ]
    assert not outside, f"listening beyond loopback: {outside}"
    ports = {entry[2] for entry in listeners}
    assert {5432, 5672, 4369, 25672, 4573, 8669, 5038, SIP_PORT} <= ports, sorted(ports)


def check_bus_and_secrets(machine: Machine) -> None:
    users = machine.sh("rabbitmqctl -q list_users").stdout
    assert re.search(r"^pbx\s", users, re.M) and not re.search(r"^guest\s", users, re.M), users
    plugins = machine.sh("cat /etc/rabbitmq/enabled_plugins").stdout
    assert "management" not in plugins
    modes = machine.sh(
        "stat -c '%a %U %n' /etc/pbx/secrets /etc/pbx/secrets/* /etc/rabbitmq/pbx-user.secret"
    ).stdout.splitlines()
    assert modes[0].startswith("700 root "), modes
    assert all(line.startswith("600 root ") for line in modes[1:]), modes
    names = {line.rsplit("/", 1)[1] for line in modes[1:]}
    assert {"amqp.url", "pbx_agid.dsn", "pbx_owner.dsn", "ami-ctid.secret", "ami-confgend.secret"} <= names
    url = machine.sh("cat /etc/pbx/secrets/amqp.url").stdout.strip()
    password = machine.sh("cat /etc/rabbitmq/pbx-user.secret").stdout.strip()
    assert url == f"amqp://pbx:{password}@127.0.0.1:5672/%2F" and len(password) >= 24
    machine.sh(f"rabbitmqctl -q authenticate_user -- pbx {shlex.quote(password)}")


def check_asterisk_stubs(machine: Machine) -> None:
    """Our Asterisk package installed, asterisk.conf with the package's [directories], the stubs."""
    conf = machine.sh("cat /etc/asterisk/asterisk.conf").stdout
    assert re.search(r"^\[options\]$", conf, re.M) and re.search(r"^execincludes = yes$", conf, re.M), conf
    assert re.search(r"^\[directories\]$", conf, re.M), conf
    assert re.search(r"^astdatadir => /usr/share/asterisk$", conf, re.M), conf
    for name in GENERATED:
        stub = machine.sh(f"cat /etc/asterisk/{name}").stdout
        assert f"#exec /usr/bin/pbx-confgen asterisk/{name}\n" in stub, stub
    version = machine.sh("dpkg-query -W -f '${Version}' asterisk").stdout
    assert "+pbx" in version, f"asterisk {version} is not our package"


def check_asterisk_runs(machine: Machine) -> str:
    """asterisk.service runs as asterisk under systemd, with the modules of confgend's modules.conf."""
    machine.wait_active("asterisk")
    assert machine.sh("ps -o user= -C asterisk").stdout.split() == ["asterisk"]
    version = machine.sh("asterisk -rx 'core show version'").stdout
    assert version.startswith("Asterisk 22."), version
    modules = machine.sh("asterisk -rx 'module show like pjsip'").stdout
    assert "chan_pjsip.so" in modules, modules
    return version.split(" built")[0]


def tcp_answer(port: int) -> str:
    """From the host, through the veth pair: "refused" (the firewall let it through to a closed port),
    "open", or "dropped" (no answer)."""
    try:
        with socket.create_connection((GUEST_IP, port), timeout=2):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "dropped"


@pytest.fixture
def booted_fresh_host(base_tarball: Path, tmp_path: Path) -> Iterator[Machine]:
    machine = Machine(unpack(base_tarball, tmp_path / "rootfs"), tmp_path / "console.log")
    proxy = None
    try:
        machine.boot()
        proxy = AptProxy(HOST_IP)
        machine.use_proxy(proxy)
        yield machine
    finally:
        machine.shutdown()
        if proxy:
            proxy.close()
        remove_rootfs(machine.rootfs)


ROLES = ("common", "postgresql", "rabbitmq", "asterisk", "pbx", "xioh")


@pytest.mark.parametrize("role", ROLES)
def test_every_tunable_is_prefixed_and_documented(role: str) -> None:
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    assert all(name.startswith(f"{role}_") for name in defaults), sorted(defaults)
    assert set(defaults) == set(options), set(defaults) ^ set(options)
    assert all(option.get("description") for option in options.values())


def test_ansible_lint_production_profile() -> None:
    proc = run(
        ["ansible-lint", "--offline", "--profile", "production", "--nocolor", "site.yml", "image/image.yml",
         "roles"],
        cwd=ROOT, check=False, timeout=300,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Passed with production profile" in output, output[-6000:]


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="no vagrant (Makefile APT_PACKAGES has it)")
@pytest.mark.parametrize("box_file", [None, "build/image/pbx-vm-amd64.box"])
def test_vagrant_validate(box_file: str | None, tmp_path: Path) -> None:
    # libvirt: the provider of the image box (Debian packages it as vagrant-libvirt); validated too.
    env = {
        "VAGRANT_HOME": str(tmp_path / "vagrant.d"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "VAGRANT_DEFAULT_PROVIDER": "libvirt",
    }
    if box_file:
        env["PBX_VAGRANT_BOX"] = box_file
    proc = run(["vagrant", "validate"], cwd=ROOT, env=env, check=False, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Vagrantfile validated successfully" in proc.stdout, output


def test_site_playbook_on_a_fresh_bookworm_then_changes_nothing(
    booted_fresh_host: Machine, debs_dir: Path, tmp_path: Path
) -> None:
    machine = booted_fresh_host
    inventory = machine.inventory(tmp_path / "inventory")
    extra = [
        "-e",
        json.dumps({**SITE_VARS, "pbx_repo_path": str(debs_dir), "asterisk_debs_dir": str(debs_dir)}),
    ]

    first = ansible_playbook("site.yml", inventory, tmp_path / "first.log", *extra)
    first.assert_succeeded()
    assert first.changed > 0

    answers = check_pbx_answers(machine)
    check_asterisk_stubs(machine)
    asterisk = check_asterisk_runs(machine)
    check_loopback_only(machine)
    check_bus_and_secrets(machine)
    active = machine.sh(
        "systemctl is-active postgresql@15-main rabbitmq-server nftables epmd.socket", check=False
    ).stdout.split()
    assert active == ["active"] * 4, active

    ruleset = machine.sh("nft list table inet pbx_filter").stdout
    assert re.search(r"hook input priority filter; policy drop;", ruleset), ruleset
    assert f"ip saddr {HOST_IP} udp dport 5060 accept" in ruleset, ruleset
    assert "ip6 saddr 2001:db8::/32 tcp dport 5060 accept" in ruleset, ruleset
    assert "ip saddr 192.0.2.0/24 udp dport 10000-20000 accept" in ruleset, ruleset
    assert "tcp dport 22 accept" in ruleset
    assert "5061" not in ruleset and "5003" not in ruleset, "closed services must have no rule"

    # From the host, through the veth pair: SIP (Asterisk answers) and SSH (nothing listens: refused) pass
    # the firewall; SIP over TLS, CTI and the loopback-only daemons' ports are dropped.
    answers_from_host = {port: tcp_answer(port) for port in (22, 5060, 5061, 5003, 4573, 5432)}
    assert answers_from_host == {
        22: "refused",
        5060: "open",
        5061: "dropped",
        5003: "dropped",
        4573: "dropped",
        5432: "dropped",
    }, answers_from_host

    journald = machine.sh("cat /etc/systemd/journald.conf.d/50-pbx-common.conf").stdout
    assert "Storage=persistent" in journald and "SystemMaxUse=500M" in journald
    assert machine.sh("readlink /etc/localtime").stdout.strip() == "/usr/share/zoneinfo/Etc/UTC"

    second = ansible_playbook("site.yml", inventory, tmp_path / "second.log", *extra)
    second.assert_succeeded()
    assert second.changed == 0, f"second run changed: {second.changed_tasks()}"
    check_pbx_answers(machine)
    check_asterisk_runs(machine)
    print(
        f"site.yml: first run changed={first.changed}, second run changed=0; agid: {answers['agid']!r}; "
        f"{asterisk} runs"
    )


def chroot_mounts(rootfs: Path) -> list[Path]:
    """What an image builder's chroot has: /proc, /sys, /dev, and the shared apt archive cache."""
    mounted = []
    for source, target, args in (
        ("proc", "proc", ["-t", "proc"]),
        ("sysfs", "sys", ["-t", "sysfs"]),
        ("/dev", "dev", ["--bind"]),
        (str(ARCHIVES), "var/cache/apt/archives", ["--bind"]),
    ):
        run(["mount", *args, source, str(rootfs / target)])
        mounted.append(rootfs / target)
    return mounted


def processes_in(rootfs: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "root") == str(rootfs):
                    cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    found.append(f"{proc.name} {cmdline}")
            except OSError:
                continue
    return found


@pytest.fixture
def image_rootfs(base_tarball: Path, tmp_path: Path) -> Iterator[Path]:
    rootfs = unpack(base_tarball, tmp_path / "rootfs")
    try:
        yield rootfs
    finally:
        # A failed build may leave a process of its own in the chroot: stop it (by its pid) first.
        for entry in processes_in(rootfs):
            os.kill(int(entry.split()[0]), signal.SIGKILL)
        remove_rootfs(rootfs)


def test_image_playbook_starts_nothing_and_the_image_sets_itself_up_at_first_boot(
    image_rootfs: Path, debs_dir: Path, tmp_path: Path
) -> None:
    rootfs = image_rootfs
    extra = [
        "-c",
        "community.general.chroot",
        "-e",
        json.dumps({"pbx_repo_path": str(debs_dir), "asterisk_debs_dir": str(debs_dir)}),
    ]
    # The chroot shares the host's network; apt goes through the proxy as on the booted host.
    proxy = AptProxy("127.0.0.1")
    proxy_conf = rootfs / "etc/apt/apt.conf.d/00pbx-test-proxy"
    proxy_conf.write_text(f'Acquire::http::Proxy "{proxy.url}";\n')
    mounted = chroot_mounts(rootfs)
    try:
        first = ansible_playbook("image/image.yml", f"{rootfs},", tmp_path / "image-first.log", *extra)
        first.assert_succeeded()
        running = processes_in(rootfs)
        assert not running, f"the image build started processes: {running}"
        second = ansible_playbook("image/image.yml", f"{rootfs},", tmp_path / "image-second.log", *extra)
        second.assert_succeeded()
        assert second.changed == 0, f"second image run changed: {second.changed_tasks()}"
    finally:
        for path in reversed(mounted):
            run(["umount", "--lazy", str(path)], check=False)
        proxy.close()
        proxy_conf.unlink()

    assert not (rootfs / "usr/sbin/policy-rc.d").exists()
    assert list((rootfs / "etc/pbx/secrets").iterdir()) == [], "secrets made in the chroot stay in the image"
    assert not (rootfs / "etc/rabbitmq/pbx-user.secret").exists()
    first_boot = ("pbx-firstboot", "pbx-firstboot-bus")
    for unit in (*PBX_UNITS, *first_boot, "asterisk", "rabbitmq-server", "nftables", "postgresql"):
        # The links point into the image (dangling from here): test the links, not their targets.
        wants = (rootfs / "etc/systemd/system").glob("*.target.wants")
        assert any((folder / f"{unit}.service").is_symlink() for folder in wants), f"{unit} not enabled"
    assert (rootfs / "etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service").is_symlink()
    grub = (rootfs / "etc/default/grub.d/60-xioh-serial.cfg").read_text()
    assert "console=ttyS0,115200n8" in grub and "--speed=115200" in grub
    watchdog = rootfs / "etc/systemd/system.conf.d/60-xioh-watchdog.conf"
    assert "RuntimeWatchdogSec=30s" in watchdog.read_text()
    assert "Storage=volatile" in (rootfs / "etc/systemd/journald.conf.d/60-xioh.conf").read_text()
    assert not any((rootfs / "usr/share/man").rglob("*.gz")), "manual pages left in the image"
    assert not (rootfs / "usr/share/doc/rabbitmq-server/changelog.Debian.gz").exists()
    assert (rootfs / "usr/share/doc/rabbitmq-server/copyright").exists()

    machine = Machine(rootfs, tmp_path / "console.log")
    try:
        machine.boot()
        machine.wait_active("pbx-firstboot", timeout=300)
        answers = check_pbx_answers(machine)
        check_loopback_only(machine)
        check_bus_and_secrets(machine)
        # RabbitMQ made the PBX user itself at its first start, and its password left the configuration
        journal = machine.sh("journalctl -b -u pbx-firstboot-bus -u pbx-firstboot -o cat").stdout
        assert "RabbitMQ creates user pbx at its first start" in journal, journal
        assert "guest account deleted" not in journal, journal  # never created
        assert machine.sh("ls -A /etc/rabbitmq/conf.d").stdout.strip() == ""
        check_asterisk_stubs(machine)
        asterisk = check_asterisk_runs(machine)
        print(f"image: first boot set up, agid: {answers['agid']!r}; {asterisk} runs")
    finally:
        machine.shutdown()
