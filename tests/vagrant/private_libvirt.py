"""A private libvirt for the Vagrant test: its own libvirtd and virtlogd, in a network namespace of their own.

As the harness starts PostgreSQL (its own server, in a temporary folder, removed afterwards), nothing of the
machine's libvirt is used or touched (Debian's libvirt-daemon without -system: no system service):

- the daemons run in a new network namespace (``ip netns add``), where libvirt makes the Vagrant
  management network (its bridge, dnsmasq and NAT rules): the machine's own network, firewall and
  iptables chains never see them; Vagrant and Ansible run in that namespace too (`command()`), to reach
  the guest;
- in a mount namespace of their own (``ip netns exec`` makes one), libvirt's fixed folders (/etc/libvirt,
  /run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt) are a temporary folder's, so
  domains, volumes, pools, networks and logs all live there; the client socket is in that folder too
  (``PrivateLibvirt.uri``: ``qemu:///system?socket=...``);
- qemu runs as root without a security driver (the test runs as root; no libvirt-qemu user is needed).

`stop()` removes every domain, volume, pool and network through virsh first (so that a leftover is
reported), then the daemons, the namespace, the mount points it had to create and the folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

SYSTEM_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}
# libvirt's fixed folders (privileged daemon) -> the temporary folder's subfolder that replaces each.
FOLDERS = {
    "/etc/libvirt": "etc",
    "/run/libvirt": "run",
    "/var/lib/libvirt": "lib",
    "/var/log/libvirt": "log",
    "/var/cache/libvirt": "cache",
}
LIBVIRTD_CONF = """\
# The Vagrant test's private libvirtd (tests/vagrant/libvirt.py).
unix_sock_dir = "{sock}"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:{log}"
"""
QEMU_CONF = """\
# qemu as root, no security driver: the test runs as root and adds no user.
user = "root"
group = "root"
security_driver = "none"
remember_owner = 0
stdio_handler = "logd"
"""


class LibvirtError(RuntimeError):
    pass


def run(cmd: list[str], timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, env=SYSTEM_ENV, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise LibvirtError(f"{' '.join(cmd)} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-3000:]}")
    return proc


class PrivateLibvirt:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pbx-libvirt-"))
        self.netns = f"pbx-vagrant-{os.getpid()}"
        self.socket = self.dir / "sock" / "libvirt-sock"
        self.uri = f"qemu:///system?socket={self.socket}"
        self.log = self.dir / "daemons.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.created_mount_points: list[Path] = []

    def command(self, cmd: list[str]) -> list[str]:
        """`cmd` run in the daemons' network namespace (where the guests' network is)."""
        return ["ip", "netns", "exec", self.netns, *cmd]

    def virsh(self, *args: str, check: bool = True) -> str:
        return run(["virsh", "-c", self.uri, *args], check=check).stdout

    def start(self, timeout: float = 30) -> None:
        for sub in (*FOLDERS.values(), "sock"):
            (self.dir / sub).mkdir(mode=0o700)
        (self.dir / "etc" / "libvirtd.conf").write_text(
            LIBVIRTD_CONF.format(sock=self.dir / "sock", log=self.dir / "libvirtd.log")
        )
        (self.dir / "etc" / "qemu.conf").write_text(QEMU_CONF)
        (self.dir / "etc" / "virtlogd.conf").write_text(f'log_outputs = "3:file:{self.dir}/virtlogd.log"\n')
        for target in map(Path, FOLDERS):
            if not target.exists():
                target.mkdir(parents=True)
                self.created_mount_points.append(target)
        run(["ip", "netns", "add", self.netns])
        run(self.command(["ip", "link", "set", "lo", "up"]))
        binds = "".join(f"mount --bind {self.dir / sub} {target}\n" for target, sub in FOLDERS.items())
        script = (
            "set -e\n"
            f"{binds}"
            # virtlogd's default pid file is /run/virtlogd.pid, outside the folders bound here: its own.
            f"virtlogd --config {self.dir}/etc/virtlogd.conf --pid-file {self.dir}/virtlogd.pid &\n"
            f"exec libvirtd --config {self.dir}/etc/libvirtd.conf --pid-file {self.dir}/libvirtd.pid\n"
        )
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command(["sh", "-c", script]),
                env=SYSTEM_ENV,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LibvirtError(f"libvirtd exited {self.proc.returncode}: {self.tail()}")
            answered = self.socket.exists() and run(["virsh", "-c", self.uri, "version"], check=False)
            if answered and answered.returncode == 0:
                return
            time.sleep(0.3)
        raise LibvirtError(f"libvirtd does not answer after {timeout:.0f} s: {self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        texts = []
        for name in ("daemons.log", "libvirtd.log", "virtlogd.log"):
            path = self.dir / name
            if path.exists():
                texts.append(f"--- {name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(texts)

    def leftovers(self) -> dict[str, list[str]]:
        """What libvirt still holds: domains, networks, pools and each pool's volumes."""
        found = {
            "domains": self.virsh("list", "--all", "--name").split(),
            "networks": self.virsh("net-list", "--all", "--name").split(),
            "pools": self.virsh("pool-list", "--all", "--name").split(),
        }
        found["volumes"] = [f"{pool}/{vol}" for pool in found["pools"] for vol in self.volumes(pool)]
        return {kind: names for kind, names in found.items() if names}

    def volumes(self, pool: str) -> list[str]:
        rows = self.virsh("vol-list", pool, check=False).splitlines()[2:]  # a header and a rule first
        return [row.split()[0] for row in rows if row.strip()]

    def remove_all(self) -> None:
        """Remove what Vagrant does not (the box's base volume, the storage pool, the management network)
        and any domain a failed test left."""
        for domain in self.virsh("list", "--all", "--name", check=False).split():
            self.virsh("destroy", domain, check=False)
            self.virsh("undefine", domain, "--remove-all-storage", "--nvram", check=False)
        for pool in self.virsh("pool-list", "--all", "--name", check=False).split():
            for vol in self.volumes(pool):
                self.virsh("vol-delete", vol, "--pool", pool, check=False)
            self.virsh("pool-destroy", pool, check=False)
            self.virsh("pool-undefine", pool, check=False)
        for network in self.virsh("net-list", "--all", "--name", check=False).split():
            self.virsh("net-destroy", network, check=False)
            self.virsh("net-undefine", network, check=False)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        run(["ip", "netns", "del", self.netns], check=False)
        for path in reversed(self.created_mount_points):
            with contextlib.suppress(OSError):
                path.rmdir()
        shutil.rmtree(self.dir, ignore_errors=True)
