"""Boot a built VM image in qemu and reach it over SSH on a forwarded loopback port.

Used by the acceptance suite (tests/acceptance, --vm-image), the benchmark image.build_boot and
`image/boot`. The image is never modified (qemu's -snapshot: writes go to a temporary overlay).

Acceleration: KVM when /dev/kvm is usable for an ordinary guest, else TCG (multi-threaded). A /dev/kvm
served by the kvm_pvm module (a paravirtualised KVM for nested machines) runs only PVM-aware guest
kernels at speed; Debian's kernel and the BIOS crawl there, so "auto" takes TCG on such a host.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK) and not Path("/sys/module/kvm_pvm").exists()


def choose_accel(accel: str) -> str:
    if accel == "auto":
        return "kvm" if kvm_usable() else "tcg"
    if accel not in ("kvm", "tcg"):
        raise ValueError(f"accel must be auto, kvm or tcg, not {accel!r}")
    return accel


class VM:
    """One qemu process booting `image` (BIOS, GRUB from the disk), SSH forwarded to 127.0.0.1:ssh_port."""

    def __init__(self, image: Path, key: Path, *, accel: str = "auto", memory_mib: int = 1536, cpus: int = 2):
        self.image = Path(image).resolve()
        self.key = Path(key).resolve()
        if not self.image.is_file():
            raise FileNotFoundError(f"VM image {self.image} does not exist (build it: make image)")
        if not self.key.is_file():
            raise FileNotFoundError(
                f"SSH key {self.key} does not exist (image/build writes OUTPUT/ssh/id_ed25519)"
            )
        self.accel = choose_accel(accel)
        self.memory_mib = memory_mib
        self.cpus = cpus
        self.ssh_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="pbx-vm-"))
        self.serial_log = self.workdir / "serial.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def command(self) -> list[str]:
        fmt = "qcow2" if self.image.suffix == ".qcow2" else "raw"
        accel = ["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm" else ["-accel", "tcg,thread=multi"]
        return [
            "qemu-system-x86_64",
            *accel,
            "-m",
            str(self.memory_mib),
            "-smp",
            str(self.cpus),
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            f"file:{self.serial_log}",
            "-drive",
            f"file={self.image},format={fmt},if=virtio,snapshot=on",
            "-netdev",
            f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            "-device",
            "virtio-net-pci,netdev=net0,romfile=",
        ]

    def start(self) -> None:
        self.started_at = time.monotonic()
        log = (self.workdir / "qemu.log").open("wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def ssh_command(self, command: str) -> list[str]:
        return [
            "ssh",
            *SSH_OPTIONS,
            "-o",
            "ConnectTimeout=5",
            "-i",
            str(self.key),
            "-p",
            str(self.ssh_port),
            "root@127.0.0.1",
            command,
        ]

    def ssh(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.ssh_command(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"qemu exited with {self.proc.returncode}: {self.tail()}")

    def wait_ssh(self, timeout: float) -> float:
        """Seconds from qemu's start until root logs in over SSH."""
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if self.ssh("true", timeout=20).returncode == 0:
                    return time.monotonic() - self.started_at
            except subprocess.TimeoutExpired:
                pass
            time.sleep(1)
        raise TimeoutError(f"no SSH login after {timeout:.0f} s; end of the console: {self.tail()}")

    def wait_units(self, units: list[str], timeout: float) -> float:
        """Seconds from qemu's start until every unit is active (boot jobs done)."""
        check = f"systemctl is-active --quiet {shlex.join(units)}"
        deadline = self.started_at + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                done = self.ssh(check, timeout=30)
                if done.returncode == 0:
                    return time.monotonic() - self.started_at
                last = self.ssh(
                    f"systemctl is-active {shlex.join(units)}; systemctl list-jobs --no-legend"
                ).stdout
            except subprocess.TimeoutExpired:
                pass
            time.sleep(2)
        raise TimeoutError(f"units not all active after {timeout:.0f} s:\n{last}")

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.serial_log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no console output)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
