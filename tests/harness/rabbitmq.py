"""A private RabbitMQ node in a directory, on free (or given) loopback ports, without plugins."""

from __future__ import annotations

import atexit
import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from harness import procs
from harness.ports import LOOPBACK, free_port, wait_accepts, wait_free

if TYPE_CHECKING:
    import pika

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
RABBITMQ_APPS = Path("/usr/lib/rabbitmq/lib")
EPMD = "epmd"
USER = "pbx"
# Plugin applications are left out of the node's code path: with ~40 fewer directories to search,
# every module load is cheaper and the node starts about a second faster. The broker's own apps
# (rabbit, rabbit_common, rabbitmq_prelaunch) and their libraries stay.
_CORE_RABBITMQ_APPS = ("rabbit-", "rabbit_common-", "rabbitmq_prelaunch-")


class RabbitMQServer:
    """A RabbitMQ node under ``base_dir`` with its own node name, cookie, mnesia, logs and epmd.

    The only user is ``pbx`` with a random password; ``guest`` is never created. Node name, password
    and ports are kept in ``base_dir/instance.json``: a new object on the same directory reuses them
    unless ports are given. ``detached=True`` leaves the node running after this process exits (for
    the local stack; stop() then works from any process); otherwise a node still running at exit is
    stopped then.
    """

    def __init__(
        self,
        base_dir: Path,
        port: int | None = None,
        *,
        dist_port: int | None = None,
        epmd_port: int | None = None,
        detached: bool = False,
        start_timeout: float = 90.0,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        saved = self._load_state()
        self.host = LOOPBACK
        self.port = port or saved.get("port") or free_port()
        self.dist_port = dist_port or saved.get("dist_port") or free_port()
        self.epmd_port = epmd_port or saved.get("epmd_port") or free_port()
        self.node = str(saved.get("node") or f"pbx-{self.port}@localhost")
        self.user = USER
        self.password = str(saved.get("password") or secrets.token_hex(18))
        self.detached = detached
        self.start_timeout = start_timeout
        self.log_file = self.base_dir / "log" / "rabbit.log"
        self.startup_log = self.base_dir / "log" / "startup.log"
        self.pid_file = self.base_dir / "rabbit.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- addresses ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """AMQP URL of the default vhost ``/`` for the ``pbx`` user."""
        return f"amqp://{self.user}:{quote(self.password, safe='')}@{self.host}:{self.port}/%2F"

    def pika_params(self, **overrides: object) -> pika.ConnectionParameters:
        """pika connection parameters for the ``pbx`` user; keyword overrides are passed through."""
        import pika

        options: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "virtual_host": "/",
            "credentials": pika.PlainCredentials(self.user, self.password),
            "connection_attempts": 1,
            "socket_timeout": 5,
            "blocked_connection_timeout": 30,
        } | overrides
        return pika.ConnectionParameters(**options)  # type: ignore[arg-type]

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The Erlang VM's pid if the node runs."""
        pid = procs.read_pid(self.pid_file)
        return pid if procs.pid_runs(pid, "beam.smp") else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def start(self) -> None:
        """Start the node and wait until the ``pbx`` user can open an AMQP connection."""
        if self.running:
            return
        for port in (self.port, self.dist_port):
            if not wait_free(port, 5.0, self.host):
                raise procs.fail(f"RabbitMQ port {self.host}:{port} is already in use", self.log_file)
        self._save_state()
        self._write_files()
        self._start_epmd()
        self.pid_file.unlink(missing_ok=True)
        started = time.monotonic()
        with self.startup_log.open("ab") as out:
            self._proc = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                cwd=self.base_dir,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(started)
        except procs.ServerError:
            self._kill()
            raise
        if not self.detached:
            atexit.register(self.stop)

    def stop(self, keep_epmd: bool = False) -> None:
        """Stop the node gracefully (SIGTERM, then SIGKILL after a timeout) and its epmd."""
        atexit.unregister(self.stop)
        pid = self.pid
        if pid is not None:
            procs.signal_quietly(pid, signal.SIGTERM)
            if not procs.wait_gone(pid, self.start_timeout):
                procs.signal_quietly(pid, signal.SIGKILL)
                procs.wait_gone(pid, 10)
        self._reap()
        self.pid_file.unlink(missing_ok=True)
        if not keep_epmd:
            self._stop_epmd()

    def restart(self) -> None:
        """Stop and start again with the same data, ports and credentials."""
        self.stop(keep_epmd=True)
        self.start()

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """Run ``rabbitmqctl`` against this node and return its output."""
        result = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "--quiet", *args],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise procs.fail(
                f"rabbitmqctl {' '.join(args)} failed", self.log_file, result.stdout + result.stderr
            )
        return result.stdout

    def env(self) -> dict[str, str]:
        """Environment for the server and its CLI tools: everything lives under ``base_dir``."""
        base = self.base_dir
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        return keep | {
            "HOME": str(base / "home"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": self.host,
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            # not the host's /etc/rabbitmq/conf.d, which RabbitMQ would read after rabbitmq.conf
            "RABBITMQ_CONFIG_FILES": str(base / "conf.d"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_PLUGINS_DIR": str(base / "plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(base / "plugins-expand"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(base / "feature_flags"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_MNESIA_DIR": str(base / "mnesia" / self.node),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_LOGS": str(self.log_file),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "ERL_CRASH_DUMP": str(base / "log" / "erl_crash.dump"),
        }

    # -- helpers --------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        """Ports, node name and password of an earlier run in this directory, if any."""
        try:
            saved = json.loads((self.base_dir / "instance.json").read_text())
        except (OSError, ValueError):
            return {}
        return saved if isinstance(saved, dict) else {}

    def _save_state(self) -> None:
        """Keep node name, password and ports so that a restart (or another process) finds them."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "node": self.node,
            "user": self.user,
            "password": self.password,
            "port": self.port,
            "dist_port": self.dist_port,
            "epmd_port": self.epmd_port,
        }
        fd = os.open(self.base_dir / "instance.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(state, out, indent=1)

    def _write_files(self) -> None:
        base = self.base_dir
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o700)  # the password (rabbitmq.conf), the cookie and the user database are in there
        for sub in ("home", "log", "mnesia", "conf.d"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        cookie = base / "home" / ".erlang.cookie"
        if not cookie.exists():
            fd = os.open(cookie, os.O_WRONLY | os.O_CREAT, 0o400)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(20))
        (base / "rabbitmq-env.conf").write_text("# intentionally empty: the harness sets the environment\n")
        (base / "enabled_plugins").write_text("[].\n")
        self._link_core_apps(base / "plugins")
        conf = base / "rabbitmq.conf"
        conf.unlink(missing_ok=True)
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self._conf())

    def _conf(self) -> str:
        return (
            "# written by harness.rabbitmq at each start\n"
            f"listeners.tcp.default = {self.host}:{self.port}\n"
            # Erlang distribution (rabbitmqctl) on the loopback too, and on its one port
            f"distribution.listener.interface = {self.host}\n"
            f"distribution.listener.port_range.min = {self.dist_port}\n"
            f"distribution.listener.port_range.max = {self.dist_port}\n"
            f"default_user = {self.user}\n"
            f"default_pass = {self.password}\n"
            "default_vhost = /\n"
            "default_user_tags.administrator = true\n"
            "default_permissions.configure = .*\n"
            "default_permissions.read = .*\n"
            "default_permissions.write = .*\n"
            "log.console = false\n"
            "log.file.level = info\n"
            "disk_free_limit.absolute = 10MB\n"
        )

    @staticmethod
    def _link_core_apps(target: Path) -> None:
        """Fill ``target`` with symlinks to the broker's applications, without the optional plugins."""
        target.mkdir(exist_ok=True)
        for source_dir in sorted(RABBITMQ_APPS.glob("rabbitmq_server-*/plugins")):
            for app in source_dir.iterdir():
                optional = app.name.startswith("rabbitmq_") and not app.name.startswith(_CORE_RABBITMQ_APPS)
                link = target / app.name
                if app.is_dir() and not optional and not link.exists():
                    link.symlink_to(app)

    def _start_epmd(self) -> None:
        if wait_accepts(self.epmd_port, timeout=0.05, host=self.host):
            return
        subprocess.run(
            [EPMD, "-port", str(self.epmd_port), "-address", self.host, "-daemon"],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            check=True,
        )

    def _stop_epmd(self) -> None:
        subprocess.run(
            [EPMD, "-port", str(self.epmd_port), "-kill"],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise procs.fail(
                    f"RabbitMQ exited with {self._proc.returncode} during start", self.log_file,
                    procs.log_tail(self.startup_log),
                )  # fmt: skip
            if wait_accepts(self.port, timeout=0.2, host=self.host) and self._amqp_ok():
                return
        raise procs.fail(
            f"RabbitMQ did not accept AMQP on {self.host}:{self.port} within {self.start_timeout:.0f}s",
            self.log_file, procs.log_tail(self.startup_log),
        )  # fmt: skip

    def _amqp_ok(self) -> bool:
        import pika
        import pika.exceptions

        try:
            pika.BlockingConnection(self.pika_params(socket_timeout=2)).close()
        except pika.exceptions.AMQPError:
            return False
        return True

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            for pid in [*procs.descendants(self._proc.pid), self._proc.pid]:
                procs.signal_quietly(pid, signal.SIGKILL)
        self._reap()
        self._stop_epmd()

    def _reap(self) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
