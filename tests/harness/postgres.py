"""A private PostgreSQL 15 cluster in a directory: a loopback TCP port and a unix socket in that directory."""

from __future__ import annotations

import atexit
import hashlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from harness import procs
from harness.ports import LOOPBACK, free_port, wait_free

if TYPE_CHECKING:
    from psycopg.sql import Composable

PG_BINDIR = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"
# Unix socket paths are limited to 107 bytes; keep room for "/.s.PGSQL.NNNNN.lock".
_MAX_SOCKET_DIR = 80

# Speed over durability: these clusters hold test data only (the local stack keeps DURABLE_SETTINGS).
FAST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "shared_buffers": "16MB",
    "max_connections": "100",
    "max_wal_size": "256MB",
    "password_encryption": "scram-sha-256",
    "timezone": "UTC",
    "log_timezone": "UTC",
    "log_line_prefix": "%m [%p] %q%u@%d ",
}

# What the local stack's cluster restores: its data survive a crash of the machine.
DURABLE_SETTINGS: dict[str, str] = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def _pg_env() -> dict[str, str]:
    """Our environment without PG* variables that could point the tools elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C.UTF-8"}


class PostgresServer:
    """A PostgreSQL cluster under ``base_dir``: ``data/``, ``postgres.log`` and the unix socket.

    When running as root, the server runs as the ``postgres`` system user (initdb refuses root) and
    ``base_dir`` is given to that user. Data persist across stop()/start(). Unless ``detached``, a
    server still running when this Python process exits is stopped then.
    """

    def __init__(
        self,
        base_dir: Path,
        port: int | None = None,
        *,
        settings: Mapping[str, str] | None = None,
        bindir: Path = PG_BINDIR,
        start_timeout: float = 60.0,
        detached: bool = False,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.detached = detached
        self.data_dir = self.base_dir / "data"
        self.log_file = self.base_dir / "postgres.log"
        self.port = port if port is not None else free_port()
        self.host = LOOPBACK
        self.superuser = SUPERUSER
        self.settings = FAST_SETTINGS | dict(settings or {})
        self.bindir = bindir
        self.start_timeout = start_timeout
        self.run_as: str | None = SUPERUSER if os.geteuid() == 0 else None
        self._frozen: list[int] = []

    # -- paths and DSNs -------------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        """``base_dir`` itself, or a short per-cluster directory in /tmp if that path is too long."""
        if len(str(self.base_dir)) <= _MAX_SOCKET_DIR:
            return self.base_dir
        digest = hashlib.sha1(str(self.base_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"pbx-pg-{digest}"

    def superuser_dsn(self, dbname: str = "postgres") -> str:
        """libpq URI for the superuser over the unix socket (trust authentication)."""
        return (
            f"postgresql://{self.superuser}@/{quote(dbname, safe='')}"
            f"?host={quote(str(self.socket_dir), safe='')}&port={self.port}"
        )

    def dsn(self, user: str, password: str, dbname: str) -> str:
        """libpq URI for ``user`` over TCP on loopback (scram-sha-256 authentication)."""
        return (
            f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{self.host}:{self.port}/{quote(dbname, safe='')}"
        )

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    @property
    def pid(self) -> int | None:
        """The postmaster's pid if it runs."""
        pid = procs.read_pid(self.data_dir / "postmaster.pid")
        return pid if procs.pid_runs(pid, "postgres") else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def init(self) -> None:
        """Create the cluster (initdb) with our pg_hba.conf; no-op if it exists."""
        if self.initialized:
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        procs.chown_to(self.base_dir, self.run_as)
        self._check_reachable()
        self._run(
            [
                str(self.bindir / "initdb"),
                "--pgdata", str(self.data_dir),
                "--username", self.superuser,
                "--encoding", "UTF8",
                "--locale", "C.UTF-8",
                "--no-sync",
                "--no-instructions",
                "--auth-local", "trust",
                "--auth-host", "scram-sha-256",
            ],
            "initdb",
        )  # fmt: skip
        self._write_as_owner(self.data_dir / "pg_hba.conf", self._hba())
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude_if_exists = 'harness.conf'\n")

    def start(self) -> None:
        """initdb if needed, write the runtime settings, start and wait until it accepts connections."""
        if self.running:
            return
        self.init()
        if not wait_free(self.port, 5.0, self.host):
            raise procs.fail(f"PostgreSQL port {self.host}:{self.port} is already in use", self.log_file)
        socket_dir = self.socket_dir
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        procs.chown_to(socket_dir, self.run_as)
        self._write_as_owner(self.data_dir / "harness.conf", self._runtime_conf())
        self._run(
            [
                str(self.bindir / "pg_ctl"), "start",
                "--pgdata", str(self.data_dir),
                "--log", str(self.log_file),
                "--wait", "--timeout", str(int(self.start_timeout)),
                "--silent",
            ],
            "pg_ctl start",
        )  # fmt: skip
        if not self.detached:
            atexit.register(self.stop, "immediate")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (thawing it first if frozen); no-op if it is not running."""
        atexit.unregister(self.stop)
        if self._frozen:
            self.thaw()
        if not self.running:
            return
        self._run(
            [
                str(self.bindir / "pg_ctl"), "stop",
                "--pgdata", str(self.data_dir),
                "--mode", mode,
                "--wait", "--timeout", str(int(self.start_timeout)),
                "--silent",
            ],
            "pg_ctl stop",
        )  # fmt: skip

    def freeze(self) -> None:
        """SIGSTOP the postmaster and all its processes: connections hang, nothing is refused."""
        pid = self.pid
        if pid is None:
            raise procs.ServerError("cannot freeze PostgreSQL: it is not running")
        self._frozen = [pid, *procs.descendants(pid)]
        for each in self._frozen:
            procs.signal_quietly(each, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT what freeze() stopped."""
        for each in reversed(self._frozen):
            procs.signal_quietly(each, signal.SIGCONT)
        self._frozen = []

    # -- databases ------------------------------------------------------------------------------

    def execute(self, statement: str | Composable, dbname: str = "postgres") -> None:
        """Run one statement as the superuser, in autocommit mode."""
        import psycopg

        with psycopg.connect(self.superuser_dsn(dbname), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement.encode() if isinstance(statement, str) else statement)

    def create_database(self, name: str, owner: str | None = None) -> None:
        from psycopg import sql

        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner is not None:
            stmt = sql.SQL("{} OWNER {}").format(stmt, sql.Identifier(owner))
        self.execute(stmt)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, disconnecting its sessions."""
        from psycopg import sql

        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    # -- helpers --------------------------------------------------------------------------------

    def _hba(self) -> str:
        return (
            "# written by harness.postgres\n"
            "# TYPE  DATABASE  USER       ADDRESS        METHOD\n"
            f"local   all       {self.superuser:<10} trust\n"
            "local   all       all                       scram-sha-256\n"
            "host    all       all        127.0.0.1/32   scram-sha-256\n"
        )

    def _runtime_conf(self) -> str:
        values = self.settings | {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            # the superuser is trusted on the socket: no other local user may connect to it
            "unix_socket_permissions": "0700",
        }
        lines = [f"{key} = '{value}'" for key, value in values.items()]
        return "# written by harness.postgres at each start\n" + "\n".join(lines) + "\n"

    def _write_as_owner(self, path: Path, text: str) -> None:
        path.write_text(text)
        procs.chown_to(path, self.run_as)

    def _check_reachable(self) -> None:
        if self.run_as is None:
            return
        probe = subprocess.run(procs.as_user(["test", "-w", str(self.base_dir)], self.run_as), check=False)
        if probe.returncode != 0:
            raise procs.ServerError(
                f"user {self.run_as!r} cannot write {self.base_dir}: a parent directory is not searchable "
                "by it; use a directory under /tmp or one whose parents are world-searchable"
            )

    def _run(self, cmd: list[str], what: str) -> None:
        result = subprocess.run(
            procs.as_user(cmd, self.run_as),
            cwd=self.base_dir,
            env=_pg_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise procs.fail(
                f"{what} failed (exit {result.returncode}) for {self.data_dir}",
                self.log_file,
                result.stdout + result.stderr,
            )
