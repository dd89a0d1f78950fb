"""image.build_boot: the VM image built from scratch, booted in qemu until every service is active, sized.

Figures (each against the plainest equivalent measured in the same run):
  image.build_boot.build_s   image/build vm from scratch (no apt cache)   vs a bare `mmdebstrap --variant=apt`
  image.build_boot.boot_s    qemu start -> every PBX service active      vs qemu start -> SSH login
  image.build_boot.size_mib  the qcow2 file                               vs the root filesystem's files
Targets: build <= 600 s, boot <= 30 s with KVM, image <= 600 MB. Needs root, Debian's mirror and the
packages of `make debs` (built into the scratch folder when build/debs has none). On a host without a
usable KVM the boot runs on TCG (`accel` says which); its `ok` then only says whether it booted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support import REPO, Env, result

sys.path.insert(0, str(REPO / "image"))
from vm import VM  # image/vm.py

BUILD_TARGET_S = 600.0
BOOT_TARGET_S = 30.0
SIZE_TARGET_MIB = 600 * 1000 * 1000 / (1024 * 1024)  # 600 MB
UNITS = [
    "postgresql@15-main.service",
    "rabbitmq-server.service",
    "ssh.service",
    "pbx-event-relay.service",
    "pbx-agid.service",
    "pbx-ctid.service",
    "pbx-confgend.service",
]
MIRROR = "deb http://deb.debian.org/debian bookworm main"


def _timed(cmd: list[str], log: Path) -> float:
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}; see {log}: {log.read_text()[-1500:]}")
    return time.monotonic() - started


def build_boot(env: Env) -> list[dict[str, Any]]:
    out = env.scratch / "image"
    debs = REPO / "build" / "debs"
    if not (debs / "Packages").exists():
        debs = env.scratch / "debs"
        _timed([str(REPO / "packages" / "build-debs"), "-o", str(debs)], env.scratch / "debs.log")
    build_s = _timed(
        [str(REPO / "image" / "build"), "-o", str(out), "--debs", str(debs), "vm"], env.scratch / "build.log"
    )
    bare_s = _timed(
        ["mmdebstrap", "--mode=root", "--variant=apt", "bookworm", str(env.scratch / "bare.tar"), MIRROR],
        env.scratch / "bare.log",
    )
    report = json.loads((out / "report.json").read_text())["images"][0]
    qcow2 = out / "pbx-vm-amd64.qcow2"
    vm = VM(qcow2, out / "ssh" / "id_ed25519")
    vm.start()
    try:
        ssh_s = vm.wait_ssh(900)
        boot_s = vm.wait_units(UNITS, 1200)
    finally:
        vm.stop()
    size_mib = qcow2.stat().st_size / (1024 * 1024)
    common = {"accel": vm.accel, "pbx_by": report["pbx_by"]}
    return [
        result(
            "image.build_boot.build_s",
            build_s,
            "s",
            bare_s,
            BUILD_TARGET_S,
            ok=build_s <= BUILD_TARGET_S,
            **common,
        ),
        result(
            "image.build_boot.boot_s",
            boot_s,
            "s",
            ssh_s,
            BOOT_TARGET_S,
            ok=vm.accel == "kvm" and boot_s <= BOOT_TARGET_S,
            **common,
        ),
        result(
            "image.build_boot.size_mib",
            size_mib,
            "MiB",
            report["rootfs_mib"],
            round(SIZE_TARGET_MIB, 1),
            ok=size_mib <= SIZE_TARGET_MIB,
            disk_virtual_mib=report["disk_virtual_mib"],
            **common,
        ),
    ]
