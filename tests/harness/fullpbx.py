"""A whole PBX for the call tests: a PBX database with the demo company, pbx-event-relay, agid, confgend,
ctid and our Asterisk, on free loopback ports under one folder.

The daemons and Asterisk are configured and started by harness.daemons exactly as the local stack does
(harness.stack); only the ports and the database differ. ``start()`` returns once Asterisk is fully
booted and both AMI users (ctid, confgend) are connected.
"""

from __future__ import annotations

import csv
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from confdb import roles
from harness import daemons, procs
from harness.cti import CtiClient
from harness.pbxconf import Ports, service_env
from testkit.pbxdb import PbxDatabase

REPO = Path(__file__).resolve().parents[2]
PBX_ADMIN = REPO / ".venv" / "bin" / "pbx-admin"
AMI_USERS = ("ctid",)  # confgend logs in only when it has a reload to send


@dataclass(frozen=True)
class DemoUser:
    """One row of the demo's credentials (the user's first line)."""

    exten: str
    name: str
    line: str
    sip_username: str
    sip_secret: str
    voicemail_pin: str
    cti_login: str
    cti_password: str


class FullPbx:
    def __init__(self, base_dir: Path, db: PbxDatabase, amqp_url: str, *, demo_users: int = 20) -> None:
        self.base_dir = base_dir
        self.db = db
        self.amqp_url = amqp_url
        self.demo_users = demo_users
        server = db.cluster.server
        self.ports = Ports.free_services(postgres=server.port, amqp=0)
        self.secrets_dir = base_dir / "secrets"
        self.env = service_env(self.ports, self.secrets_dir, amqp_url)
        self.asterisk = daemons.asterisk(base_dir, self.env)
        self.credentials_file = self.secrets_dir / "demo-credentials.csv"
        self.users: dict[str, DemoUser] = {}

    @property
    def sip(self) -> tuple[str, int]:
        return self.asterisk.host, self.asterisk.sip_port

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        self.asterisk.install.check()  # no Asterisk to run: say so before starting anything
        server = self.db.cluster.server
        roles.write_dsn_files(
            self.secrets_dir, server.host, server.port, self.db.name, self.db.cluster.passwords
        )
        if not self.users:
            self._load_demo()
        for daemon in daemons.DAEMONS:
            daemons.start(self.base_dir, daemon, self.env)
        self.asterisk.start()
        self.wait_ami_users(timeout)

    def stop(self) -> None:
        self.asterisk.stop()
        for daemon in reversed(daemons.DAEMONS):
            daemons.stop(self.base_dir, daemon)

    def wait_ami_users(self, timeout: float) -> None:
        """Until ctid is logged in to Asterisk's AMI (its events are what the CTI tests check)."""
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = self.asterisk.cli("manager show connected")
            users = {line.split()[0] for line in shown.splitlines()[1:] if line.split()}
            if users.issuperset(AMI_USERS):
                return
            time.sleep(0.5)
        raise procs.ServerError(
            f"AMI users {AMI_USERS} not all connected within {timeout:g} s; "
            f"`manager show connected`:\n{shown}\n{self.log_tail()}"
        )

    # -- the demo company -------------------------------------------------------------------------

    def _load_demo(self) -> None:
        """`pbx-admin demo`, as the stack's demo step runs it; its secrets are read back into ``users``.
        Its config events are left in the outbox for pbx-event-relay (no bus URL: with one, a demo of
        at most 200 users and entries fails with "publish the outbox after the commit", a confdb bug)."""
        env = os.environ | self.env | {"PBX_ADMIN_DSN": self.db.dsn(roles.WRITER), "PBX_ADMIN_BUS_URL": ""}
        self.credentials_file.unlink(missing_ok=True)
        argv = [str(PBX_ADMIN), "demo", "--users", str(self.demo_users), "--phonebook", "20", "--seed", "13"]
        argv += ["--no-progress", "--credentials", str(self.credentials_file)]
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
        if done.returncode != 0:
            raise procs.ServerError(
                f"pbx-admin demo failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
            )
        with self.credentials_file.open(newline="") as rows:
            for row in csv.DictReader(rows):
                self.users.setdefault(row["exten"], DemoUser(**row))

    def user(self, exten: str) -> DemoUser:
        if exten not in self.users:
            raise KeyError(f"no demo user on {exten}; there are {sorted(self.users)}")
        return self.users[exten]

    def cti(self, exten: str) -> CtiClient:
        """A CTI session logged in as the user of ``exten``."""
        who = self.user(exten)
        client = CtiClient(self.ports.cti)
        client.login(who.cti_login, who.cti_password)
        return client

    # -- logs -------------------------------------------------------------------------------------

    def daemon_log(self, name: str) -> str:
        path = daemons.log_file(self.base_dir, name)
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self) -> str:
        parts = [self.asterisk.log_tail(60)]
        for daemon in daemons.DAEMONS:
            parts.append(
                f"--- {daemon.name} ---\n{procs.log_tail(daemons.log_file(self.base_dir, daemon), 20)}"
            )
        return "\n".join(parts)

    def log_sections(self) -> list[tuple[str, str]]:
        """What a failing test shows (harness.plugin): Asterisk's log, then each daemon's."""
        sections = self.asterisk.log_sections()
        for daemon in daemons.DAEMONS:
            log = daemons.log_file(self.base_dir, daemon)
            sections.append((f"{daemon.name} log", procs.log_tail(log, 60)))
        return sections
