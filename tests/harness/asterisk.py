"""Our Asterisk, run from its package's files with a private configuration folder and loopback ports.

The configuration is what the appliance has: an ``asterisk.conf`` and, for every file confgend
generates (read from its registry at run time), the role's stub (``roles/asterisk/templates/
stub.conf.j2``: ``#exec <pbx-confgen> asterisk/<file>``). Here ``<pbx-confgen>`` is a two-line wrapper
in the private folder that runs ``.venv/bin/pbx-confgen`` against this PBX's confgend, with its own
cache. Every directory Asterisk writes (run, log, spool, lib, cache) is in ``base_dir``; the data
folder links to the package's (or bookworm's) sounds, music on hold and documentation.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from harness import procs
from harness.asterisk_root import AsteriskInstall, find_install
from harness.ports import LOOPBACK

REPO = Path(__file__).resolve().parents[2]
STUB_TEMPLATE = REPO / "roles" / "asterisk" / "templates" / "stub.conf.j2"
CONFGEN = REPO / ".venv" / "bin" / "pbx-confgen"
_MAX_CTL_DIR = 90  # the CLI's unix socket <run dir>/asterisk.ctl must fit in 107 bytes
_LOG_LINES = 80


def generated_files() -> list[str]:
    """The Asterisk files confgend publishes (``asterisk/<file>`` in its registry), read now."""
    from confgend.generators import GENERATORS

    return sorted(name.split("/", 1)[1] for name in GENERATORS if name.startswith("asterisk/"))


def render_stub(command: str, file: str) -> str:
    """The role's stub for ``file``, rendered from the role's own template."""
    import jinja2

    template = jinja2.Template(STUB_TEMPLATE.read_text(), keep_trailing_newline=True)
    return template.render(
        ansible_managed="written by harness.asterisk", asterisk_confgen_command=command, item=file
    )


class AsteriskServer:
    """An Asterisk under ``base_dir`` pulling its configuration from confgend on ``confgend_port``.

    ``ami_port`` must be the one confgend writes into manager.conf (``asterisk.manager.port``); the
    SIP and RTP ports are confgend's too, kept here for the callers. Unless ``detached``, a server still
    running when this Python process exits is killed then.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        confgend_port: int,
        ami_port: int,
        sip_port: int,
        rtp_range: tuple[int, int],
        install: AsteriskInstall | None = None,
        start_timeout: float = 60.0,
        detached: bool = False,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.confgend_port = confgend_port
        self.ami_port = ami_port
        self.sip_port = sip_port
        self.rtp_range = rtp_range
        self.host = LOOPBACK
        self._install = install
        self.start_timeout = start_timeout
        self.detached = detached
        self.config_file = self.base_dir / "etc" / "asterisk.conf"
        self.log_dir = self.base_dir / "log"
        self.console_log = self.base_dir / "console.log"
        self.confgen_cache = self.base_dir / "confgen-cache"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths ------------------------------------------------------------------------------------

    @property
    def install(self) -> AsteriskInstall:
        if self._install is None:
            self._install = find_install()
        return self._install

    @property
    def run_dir(self) -> Path:
        """``base_dir/run``, or a short folder in /tmp when that path is too long for the CLI socket."""
        run = self.base_dir / "run"
        if len(str(run)) <= _MAX_CTL_DIR:
            return run
        return Path(tempfile.gettempdir()) / f"pbx-ast-{hashlib.sha1(str(run).encode()).hexdigest()[:12]}"

    @property
    def confgen_command(self) -> Path:
        return self.base_dir / "bin" / "pbx-confgen"

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        pid = procs.read_pid(self.run_dir / "asterisk.pid")
        return pid if procs.pid_runs(pid, "asterisk") else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def write_config(self) -> None:
        """asterisk.conf, the stubs of every generated file and the pbx-confgen wrapper."""
        for sub in ("etc", "lib", "data", "spool", "log", "cache", "bin", "confgen-cache"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._link_data()
        wrapper = self.confgen_command
        wrapper.write_text(
            "#!/bin/sh\n# written by harness.asterisk: pbx-confgen aimed at this PBX's confgend\n"
            f'exec {CONFGEN} --port {self.confgend_port} --cache-dir {self.confgen_cache} "$@"\n'
        )
        wrapper.chmod(0o755)
        etc = self.base_dir / "etc"
        for file in generated_files():
            (etc / file).write_text(render_stub(str(wrapper), file))
        self.config_file.write_text(self._asterisk_conf())

    def start(self) -> None:
        """Write the configuration, start Asterisk, wait until AMI answers and it is fully booted."""
        if self.running:
            return
        install = self.install
        self.write_config()
        (self.run_dir / "asterisk.ctl").unlink(missing_ok=True)
        with self.console_log.open("ab") as out:
            out.write(f"--- harness: starting {install.binary} ({install.origin}) ---\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                [str(install.binary), "-f", "-n", "-C", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=self._env(),
                start_new_session=True,
            )
        if not self.detached:
            atexit.register(self.kill)
        self._wait_booted(time.monotonic() + self.start_timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """``core stop now``, then SIGTERM, then SIGKILL; no-op if it does not run."""
        atexit.unregister(self.kill)
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(procs.ServerError, subprocess.TimeoutExpired):
            self.cli("core stop now", timeout=timeout)
        if not self._wait_exit(pid, timeout):
            procs.signal_quietly(pid, signal.SIGTERM)
            if not self._wait_exit(pid, 5.0):
                self.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL, as a crash would; the next start() starts it afresh."""
        atexit.unregister(self.kill)
        pid = self.pid
        if pid is not None:
            procs.signal_quietly(pid, signal.SIGKILL)
            self._wait_exit(pid, 5.0)

    # -- talking to it ----------------------------------------------------------------------------

    def cli(self, command: str, timeout: float = 10.0) -> str:
        """``asterisk -C <conf> -rx <command>``: its output; ServerError when the CLI cannot connect."""
        done = subprocess.run(
            [str(self.install.binary), "-C", str(self.config_file), "-rx", command],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = done.stdout + done.stderr
        if done.returncode != 0 or "Unable to connect to remote asterisk" in output:
            raise procs.ServerError(
                f"asterisk -rx {command!r} failed (exit {done.returncode}): {output.strip()}"
            )
        return done.stdout

    def ami_answers(self) -> bool:
        """True when AMI on ``ami_port`` accepts a connection and greets with its banner."""
        try:
            with socket.create_connection((self.host, self.ami_port), timeout=1.0) as sock:
                return sock.recv(64).startswith(b"Asterisk Call Manager/")
        except OSError:
            return False

    # -- logs -------------------------------------------------------------------------------------

    def log_files(self) -> list[Path]:
        """Its console output, then every file of its log folder (messages, full, ...)."""
        files = sorted(p for p in self.log_dir.glob("*") if p.is_file()) if self.log_dir.is_dir() else []
        return [self.console_log, *files]

    def log_text(self) -> str:
        parts = []
        for path in self.log_files():
            if path.exists():
                parts.append(f"--- {path} ---\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def log_tail(self, lines: int = _LOG_LINES) -> str:
        """The end of each log, without the lines of our own CLI calls (``-- Remote UNIX connection``)."""
        parts = []
        for path in self.log_files():
            if path.exists():
                kept = [
                    line
                    for line in path.read_text(errors="replace").splitlines()
                    if "Remote UNIX connection" not in line
                ]
                parts.append(f"--- {path} ---\n" + "\n".join(kept[-lines:]))
        return "\n".join(parts)

    def log_sections(self) -> list[tuple[str, str]]:
        """What a failing test shows (see harness.plugin)."""
        return [("asterisk log", self.log_tail(200))]

    # -- helpers ----------------------------------------------------------------------------------

    def _wait_booted(self, deadline: float) -> None:
        seen = "nothing"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise self._failure(f"Asterisk exited with {self._proc.returncode} while starting")
            if not self.ami_answers():
                seen = f"AMI on {self.host}:{self.ami_port} does not answer"
            else:
                try:
                    self.cli("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
                    return
                except (procs.ServerError, subprocess.TimeoutExpired) as exc:
                    seen = str(exc)
            time.sleep(0.2)
        self.kill()
        raise self._failure(f"Asterisk not fully booted within {self.start_timeout:g} s ({seen})")

    def _failure(self, what: str) -> procs.ServerError:
        return procs.ServerError(f"{what}\n{self.log_tail()}")

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        return procs.wait_gone(pid, timeout)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PBX_CONFGEN_", "LD_"))}
        if path := self.install.library_path:
            env["LD_LIBRARY_PATH"] = path
        return env

    def _link_data(self) -> None:
        """data/: links to the sounds, music on hold and documentation (Asterisk reads them there)."""
        data = self.base_dir / "data"
        wanted: Mapping[str, Path | None] = {
            "sounds": self.install.shared("sounds"),
            "moh": self.install.shared("moh"),
            "documentation": self.install.documentation,
        }
        for name, target in wanted.items():
            link = data / name
            if link.is_symlink():
                link.unlink()
            if target is not None and not link.exists():
                link.symlink_to(target)
            elif target is None:
                link.mkdir(exist_ok=True)

    def _asterisk_conf(self) -> str:
        base = self.base_dir
        directories = {
            "astcachedir": base / "cache",
            "astetcdir": base / "etc",
            "astmoddir": self.install.modules_dir,
            "astvarlibdir": base / "lib",
            "astdbdir": base / "lib",
            "astkeydir": base / "lib",
            "astdatadir": base / "data",
            "astagidir": base / "data" / "agi-bin",
            "astspooldir": base / "spool",
            "astrundir": self.run_dir,
            "astlogdir": self.log_dir,
            "astsbindir": self.install.binary.parent,
        }
        # The role's folders, each in base_dir. No runuser: it runs as whoever starts it. Verbose 3: the
        # console log shows the dialplan as it runs, which is what a failing call test needs.
        options = {"execincludes": "yes", "verbose": "3"}
        lines = ["; written by harness.asterisk", "[directories]"]
        lines += [f"{key} => {value}" for key, value in directories.items()]
        lines += ["", "[options]"] + [f"{key} = {value}" for key, value in options.items()]
        return "\n".join(lines) + "\n"
