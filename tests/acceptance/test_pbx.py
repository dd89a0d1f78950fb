"""What an installed PBX must be, checked on each target (see conftest.py): packages and services, the
listening sockets, the database roles of the daemons, secrets, confgen's files, agid and ctid answering,
and a clean journal. Tests marked `running` are skipped on a chroot target."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
import time

import pytest

PACKAGES = (
    "pbx",
    "pbx-confdb",
    "python3-confdb",
    "pbx-agid",
    "pbx-ctid",
    "pbx-confgend",
    "asterisk",
    "asterisk-core-sounds-en-gsm",
    "asterisk-moh-opsound-gsm",
    "postgresql-15",
    "rabbitmq-server",
    "openssh-server",
)
PBX_UNITS = ("pbx-event-relay.service", "pbx-agid.service", "pbx-ctid.service", "pbx-confgend.service")
UNITS = (
    *PBX_UNITS,
    "asterisk.service",
    "postgresql@15-main.service",
    "rabbitmq-server.service",
    "ssh.service",
)
# Sockets every PBX has, on loopback only: (protocol, port) -> what.
LOOPBACK_SERVICES = {
    ("tcp", 4573): "agid (FastAGI)",
    ("tcp", 5003): "ctid (CTI)",
    ("tcp", 8669): "confgend",
    ("tcp", 5432): "PostgreSQL",
    ("tcp", 5672): "RabbitMQ (AMQP)",
    ("tcp", 5038): "Asterisk (AMI)",
}
# Our Asterisk package (packages/asterisk/README.md): its unit's sandbox, its layout.
ASTERISK_UNIT = "/lib/systemd/system/asterisk.service"
ASTERISK_UNIT_DIRECTIVES = (
    "User=asterisk",
    "Group=asterisk",
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=\n",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "SystemCallFilter=@system-service",
    "RestrictAddressFamilies=",
    "Restart=on-failure",
)
ASTERISK_DIRECTORIES = {
    "astmoddir": "/usr/lib/asterisk/modules",
    "astdatadir": "/usr/share/asterisk",
    "astvarlibdir": "/var/lib/asterisk",
    "astspooldir": "/var/spool/asterisk",
    "astlogdir": "/var/log/asterisk",
    "astrundir": "/run/asterisk",
}
# The only ports that may listen beyond loopback: SSH, SIP, and on UDP the DHCP clients and RTP.
PUBLIC_TCP = {22, 5060, 5061}
PUBLIC_UDP = {68, 546, 5060}
RTP = range(10000, 20001)
EPHEMERAL_UDP = range(32768, 65536)  # clients' own sockets (resolvers), not services
DAEMON_DB_ROLES = ("pbx_agid", "pbx_ctid", "pbx_confgend")
SECRETS = "/etc/pbx/secrets"
WELL_KNOWN_DEFAULTS = {"", "guest", "password", "secret", "changeme", "admin", "pbx", "asterisk", "1234"}
DEMO_CREDENTIALS = "/root/pbx-acceptance-demo-credentials.csv"
running = pytest.mark.running


def sh(host, command: str) -> str:
    """Run on the target; fail with its output unless it succeeds."""
    result = host.run(command)
    assert result.rc == 0, f"{command!r} exited with {result.rc}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def psql(host, dsn_file: str, sql: str, *, check: bool = True):
    command = f'psql "$(cat {dsn_file})" -XAtq -v ON_ERROR_STOP=1 -c "{sql}"'
    return sh(host, command) if check else host.run(command)


# --- the journal first: later tests make their own log lines ---


@running
def test_journal_shows_no_error_from_our_units_at_boot(host):
    units = " ".join(f"-u {u}" for u in (*PBX_UNITS, "pbx-firstboot.service", "pbx-image-*.service"))
    errors = sh(host, f"journalctl -b -q --no-pager -p err {units} -o short-monotonic")
    assert not errors.strip(), f"errors logged by our units since boot:\n{errors}"


# --- packages, units ---


@pytest.mark.parametrize("name", PACKAGES)
def test_package_is_installed(host, name):
    assert host.package(name).is_installed, f"{name} is not installed"


@pytest.mark.parametrize("unit", UNITS)
def test_unit_is_enabled(host, unit):
    # postgresql@15-main is started by postgresql.service, which is the one enabled.
    name = "postgresql.service" if unit.startswith("postgresql@") else unit
    assert host.service(name).is_enabled, f"{name} is not enabled"


@running
@pytest.mark.parametrize("unit", UNITS)
def test_unit_is_active(host, unit):
    state = host.run(f"systemctl is-active {unit}").stdout.strip()
    assert state == "active", (
        f"{unit} is {state}: {host.run(f'systemctl status --no-pager -n 20 {unit}').stdout}"
    )


# --- Asterisk ---


def test_asterisk_unit_is_hardened(host):
    unit = host.file(ASTERISK_UNIT).content_string
    missing = [d.strip() for d in ASTERISK_UNIT_DIRECTIVES if d not in unit]
    assert not missing, f"{ASTERISK_UNIT} lacks {missing}"
    assert "CAP_" not in unit and "User=root" not in unit


def test_asterisk_configuration_matches_the_package_layout(host):
    conf = host.file("/etc/asterisk/asterisk.conf").content_string
    assert re.search(r"^\[directories\]$", conf, re.M), conf  # not "[directories](!)": ignored
    for name, path in ASTERISK_DIRECTORIES.items():
        assert re.search(rf"^{name} => {re.escape(path)}$", conf, re.M), f"{name}: {conf}"
        assert host.file(path).is_directory or name == "astrundir", f"{path} is missing"
    assert re.search(r"^execincludes = yes$", conf, re.M), conf
    assert host.file("/usr/share/asterisk/sounds/en/hello-world.gsm").exists  # Debian's sounds
    assert sh(host, "ls /usr/share/asterisk/moh").strip(), "no music on hold"
    for folder in ("/var/lib/asterisk", "/var/spool/asterisk", "/var/log/asterisk"):
        assert host.file(folder).user == "asterisk", f"{folder} is not Asterisk's"


@running
def test_asterisk_runs_as_its_user_with_the_generated_modules(host):
    users = sh(host, "ps -o user= -C asterisk").split()
    assert users and set(users) == {"asterisk"}, f"asterisk runs as {users}"
    version = sh(host, "asterisk -rx 'core show version'")
    assert version.startswith("Asterisk 22."), version
    # modules.conf comes from confgend (#exec stub, autoload = no): its modules are there
    modules = sh(host, "asterisk -rx 'module show like pjsip'")
    assert "chan_pjsip.so" in modules and "res_pjsip.so" in modules, modules


# --- network ---


def listening(host) -> list[tuple[str, str, int, str]]:
    """(protocol, address, port, process) of every listening TCP socket and bound UDP socket."""
    sockets = []
    for line in sh(host, "ss -Hlntup").splitlines():
        fields = line.split()
        proto, local = fields[0], fields[4]
        address, _, port = local.rpartition(":")
        address = address.strip("[]").split("%")[0]
        sockets.append((proto, address, int(port), fields[-1] if len(fields) > 6 else ""))
    return sockets


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # "*": every address
        return False


@running
def test_pbx_services_listen_on_loopback(host):
    sockets = listening(host)
    for (proto, port), what in LOOPBACK_SERVICES.items():
        bound = [s for s in sockets if s[0] == proto and s[2] == port]
        assert bound, f"{what} does not listen on {proto} port {port}"
        assert all(is_loopback(s[1]) for s in bound), f"{what} listens beyond loopback: {bound}"


@running
def test_nothing_else_listens_beyond_loopback(host):
    exposed = []
    for proto, address, port, process in listening(host):
        if is_loopback(address):
            continue
        if proto == "tcp" and port in PUBLIC_TCP:
            continue
        if proto == "udp" and (port in PUBLIC_UDP or port in RTP or port in EPHEMERAL_UDP):
            continue
        exposed.append(f"{proto} {address}:{port} {process}")
    assert not exposed, "listening beyond loopback:\n" + "\n".join(exposed)


# --- database roles ---


@running
@pytest.mark.parametrize("role", DAEMON_DB_ROLES)
def test_daemon_db_role_reads_but_cannot_write(host, role):
    dsn_file = f"{SECRETS}/{role}.dsn"
    assert host.file(dsn_file).exists, f"{dsn_file} is missing: the database was not set up"
    # It connects and reads (so a refusal below is about privileges, not a broken DSN) ...
    assert psql(host, dsn_file, "SELECT current_user").strip() == role
    for sql in (
        "INSERT INTO users (firstname) VALUES ('intruder')",
        "UPDATE users SET firstname = firstname",
        "DELETE FROM users",
        "CREATE TABLE acceptance_probe (x int)",
    ):
        result = psql(host, dsn_file, sql, check=False)
        assert result.rc != 0, f"{role} could run: {sql}"
        assert "permission denied" in result.stderr, f"{role}: {sql}: {result.stderr}"


# --- secrets ---


def test_secrets_folder_is_root_only(host):
    folder = host.file(SECRETS)
    # The pbx role makes it on every target (the image keeps it, empty, for the first boot's secrets).
    assert folder.exists, f"{SECRETS} is missing: the daemons' secrets have nowhere root-only to live"
    assert (folder.user, folder.mode) == ("root", 0o700)
    for name in sh(host, f"ls -A {SECRETS}").split():
        secret = host.file(f"{SECRETS}/{name}")
        assert (secret.user, secret.mode & 0o077) == ("root", 0), f"{name}: {secret.user} {oct(secret.mode)}"


def test_root_cannot_log_in_with_an_empty_password(host):
    field = sh(host, "getent shadow root").split(":")[1]
    assert field != "", "root has an empty password"
    if host.backend.NAME == "chroot":
        assert field.startswith(("!", "*")), "an image must not ship a root password"


def test_an_image_ships_no_per_machine_secret(host):
    if host.backend.NAME != "chroot":
        pytest.skip("only a root filesystem (image) must be free of per-machine secrets")
    shipped = sh(
        host,
        f"find {SECRETS} -mindepth 1; ls -d /etc/ssh/ssh_host_*_key /etc/ssl/private/ssl-cert-snakeoil.key "
        "/var/lib/rabbitmq/.erlang.cookie /etc/rabbitmq/*.secret 2>/dev/null || true",
    ).split()
    assert not shipped, f"secrets baked into the image (every machine would share them): {shipped}"
    assert not host.file("/etc/machine-id").content_string.strip(), "the image has a machine id"


@running
def test_secrets_are_generated_and_no_default(host):
    values = {}
    for name in sh(host, f"ls -A {SECRETS}").split():
        values[name] = host.file(f"{SECRETS}/{name}").content_string.strip()
    for needed in ("pbx_agid.dsn", "pbx_ctid.dsn", "pbx_confgend.dsn", "pbx_writer.dsn", "amqp.url"):
        assert needed in values, f"{SECRETS}/{needed} was not generated"
    passwords = {n: v for n, v in values.items() if n.endswith((".password", ".secret"))}
    assert passwords, "no generated password"
    for name, value in passwords.items():
        assert value.lower() not in WELL_KNOWN_DEFAULTS and len(value) >= 16, f"{name} is weak or a default"
    assert len(set(passwords.values())) == len(passwords), "two secrets are the same"
    users = sh(host, "rabbitmqctl -q list_users")
    assert "guest" not in users.split(), "RabbitMQ still has the guest account"
    settings = dict(line.split(" ", 1) for line in sh(host, "sshd -T").splitlines() if " " in line)
    assert settings.get("permitrootlogin") in ("prohibit-password", "without-password", "no")
    assert settings.get("permitemptypasswords") == "no"


# --- the demo data, confgen ---


@pytest.fixture(scope="module")
def demo(host):
    """Credentials of the demo company: created once when the database has no user yet (a fresh appliance
    or a throw-away VM); a database holding real users is never touched."""
    if host.backend.NAME == "chroot":
        pytest.skip("needs a running system: a chroot target has no services, ports or journal")
    if not host.file(DEMO_CREDENTIALS).exists:
        users = int(psql(host, f"{SECRETS}/pbx_writer.dsn", "SELECT count(*) FROM users"))
        if users:
            pytest.skip(f"the database already has {users} users: no demo data is loaded into it")
        sh(host, f"pbx-admin demo --users 20 --credentials {DEMO_CREDENTIALS}")
    rows = list(csv.DictReader(io.StringIO(host.file(DEMO_CREDENTIALS).content_string)))
    assert rows, "the demo wrote no credentials"
    return rows


def confgen(host, name: str, expect: list[str], timeout: float = 90) -> str:
    """pbx-confgen's output once it holds every expected string (confgend follows the bus)."""
    deadline = time.monotonic() + timeout
    while True:
        result = host.run(f"pbx-confgen {name}")
        missing = [e for e in expect if e not in result.stdout]
        if result.rc == 0 and not missing:
            return result.stdout
        if time.monotonic() > deadline:
            pytest.fail(f"pbx-confgen {name} (exit {result.rc}) lacks {missing[:5]}: {result.stderr[-500:]}")
        time.sleep(3)


@running
def test_confgen_prints_a_complete_pjsip_conf(host, demo):
    lines = psql(host, f"{SECRETS}/pbx_writer.dsn", "SELECT name FROM lines WHERE enabled").split()
    assert {row["line"] for row in demo} <= set(lines), "a demo user's line is missing or disabled"
    text = confgen(host, "asterisk/pjsip.conf", [f"[{name}]" for name in lines])
    assert text.endswith("\n")
    sections = pjsip_sections(text)
    for name in lines:
        types = {section_type(sections, templates, options) for templates, options in sections[name]}
        assert {"endpoint", "auth", "aor"} <= types, (name, types)


HEADER = re.compile(r"^\[([^\]]+)\](?:\(([^)]*)\))?\s*$")


def pjsip_sections(text: str) -> dict[str, list[tuple[list[str], dict[str, str]]]]:
    """Sections by name (pjsip.conf repeats a name for an endpoint, its auth and its aor): for each, its
    templates (``[name](tpl1,tpl2)``; ``!`` marks a template itself) and its options."""
    sections: dict[str, list[tuple[list[str], dict[str, str]]]] = {}
    options: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split(";", 1)[0].strip()
        header = HEADER.match(line)
        if header:
            templates = [t.strip() for t in (header.group(2) or "").split(",") if t.strip() not in ("", "!")]
            options = {}
            sections.setdefault(header.group(1), []).append((templates, options))
        elif "=" in line:
            key, _, value = line.partition("=")
            options.setdefault(key.strip().rstrip(">").strip(), value.strip())
    return sections


def section_type(sections: dict, templates: list[str], options: dict[str, str]) -> str | None:
    """``type`` of a section, its own or inherited from its templates (the first that sets it)."""
    if "type" in options:
        return options["type"]
    for template in templates:
        for parents, inherited in sections.get(template, []):
            found = section_type(sections, parents, inherited)
            if found:
                return found
    return None


@running
def test_confgen_prints_a_complete_extensions_conf(host, demo):
    sql = "SELECT exten FROM extensions WHERE type = 'user'"
    extens = psql(host, f"{SECRETS}/pbx_writer.dsn", sql).split()
    assert extens
    text = confgen(host, "asterisk/extensions.conf", [f"{e}," for e in extens])
    assert text.endswith("\n")
    for row in demo:
        assert row["exten"] in text


# --- agid, ctid ---

FASTAGI_PROBE = r"""
import socket
sock = socket.create_connection(("127.0.0.1", 4573), timeout=15)
sock.sendall(b"agi_network: yes\nagi_network_script: ping\nagi_request: agi://127.0.0.1:4573/ping\n"
             b"agi_channel: PJSIP/acceptance-00000001\nagi_uniqueid: 1700000000.1\nagi_context: default\n\n")
stream = sock.makefile("rwb")
while True:
    line = stream.readline()
    if not line:
        break
    print(line.decode().rstrip())
    stream.write(b"200 result=1\n")
    stream.flush()
"""


@running
def test_agid_answers_a_fastagi_session(host):
    result = host.run("python3 -c %s", FASTAGI_PROBE)
    assert result.rc == 0, result.stderr
    commands = result.stdout.splitlines()
    assert any(c.startswith("SET VARIABLE AGID_PONG") and "pong" in c for c in commands), commands
    assert any(c.startswith("SET VARIABLE AGID_STATUS") and "OK" in c for c in commands), commands


CTI_PROBE = r"""
import json, socket, sys
login, password = sys.argv[1], sys.argv[2]
sock = socket.create_connection(("127.0.0.1", 5003), timeout=20)
stream = sock.makefile("rwb")
def send(message):
    stream.write(json.dumps(message).encode() + b"\n")
    stream.flush()
def answer(rid):
    while True:
        message = json.loads(stream.readline())
        if message.get("id") == rid:
            return message
welcome = json.loads(stream.readline())
send({"class": "login", "id": 1, "login": login, "password": password, "version": 1})
logged = answer(1)
send({"class": "subscribe", "id": 2, "topics": ["presence"]})
print(json.dumps({"welcome": welcome, "login": logged, "subscribe": answer(2)}))
"""


@running
def test_ctid_accepts_a_cti_login_and_reports_phone_status(host, demo):
    account = next((row for row in demo if row["cti_login"]), None)
    assert account is not None, "no demo user has a CTI login"
    # ctid learns of users created after it started from the bus: give it a few seconds (well under
    # its limit of 5 failed logins a minute).
    for _ in range(4):
        command = host.run("python3 -c %s %s %s", CTI_PROBE, account["cti_login"], account["cti_password"])
        assert command.rc == 0, command.stderr
        out = json.loads(command.stdout)
        if out["login"].get("code") != "login_failed":
            break
        time.sleep(15)
    assert out["welcome"]["class"] == "welcome" and out["welcome"]["version"] == 1
    assert out["login"]["class"] == "response", json.dumps(out["login"])
    user = out["login"]["user"]
    assert user["login"] == account["cti_login"] and user["exten"] == account["exten"]
    assert out["subscribe"]["class"] == "response", out["subscribe"]
    statuses = {p["user_id"]: p["status"] for p in out["subscribe"]["presence"]}
    valid = {"ringing", "on_hold", "in_use", "available", "unavailable", "unknown"}
    assert statuses.get(user["id"]) in valid, statuses
