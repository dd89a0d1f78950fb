"""The Makefile's apt groups: what each target installs, read from `make -n -B <target>` (every recipe it
would run, none run), so the dependency graph itself is checked, not only the lists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The CI toolchain: none of it is what the stack runs.
CI_ONLY = {
    "vagrant", "vagrant-libvirt", "qemu-system-x86", "qemu-utils", "ansible", "ansible-lint", "lintian",
    "grub-pc-bin", "mmdebstrap", "systemd-container", "sip-tester",
}  # fmt: skip
_GROUP = re.compile(r'group=(\w+); missing=""; +for pkg in ([^;]*); do')


def _make(*args: str, cwd: Path = REPO) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        ["make", "--no-print-directory", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.replace("\\\n", " ")


def apt_groups(target: str, cwd: Path = REPO) -> dict[str, set[str]]:
    """The apt groups `make <target>` would install: group -> its packages."""
    plan = _make("-n", "-B", target, cwd=cwd)
    return {group: set(packages.split()) for group, packages in _GROUP.findall(plan)}


def _asterisk_build_depends() -> set[str]:
    control = (REPO / "packages" / "asterisk" / "debian" / "control").read_text()
    block = re.search(r"^Build-Depends:(.*?)^\S", control, re.M | re.S).group(1)
    deps = {re.split(r"[\s(\[]", d.strip())[0] for d in block.split(",") if d.strip()}
    return deps - {"debhelper-compat"}


@pytest.mark.parametrize("target", ["stack", "deps"])
def test_the_stack_installs_only_what_it_runs(target: str) -> None:
    groups = apt_groups(target)
    assert set(groups) == {"stack"}, groups
    packages = groups["stack"]
    assert not packages & CI_ONLY, sorted(packages & CI_ONLY)
    assert not [p for p in packages if p.startswith(("qemu", "grub", "vagrant", "ansible"))]
    # what it runs: the servers, the runtime's python3 packages, Asterisk's sounds; and what builds the
    # Asterisk it runs (`make asterisk-deb`)
    assert {"postgresql-15", "rabbitmq-server", "util-linux", "python3-twisted", "python3-pika"} <= packages
    assert {"asterisk-core-sounds-en-gsm", "asterisk-moh-opsound-gsm"} <= packages
    assert {"devscripts", "debian-keyring", "debhelper", "dpkg-dev"} | _asterisk_build_depends() <= packages


def test_the_other_targets_install_their_own_groups() -> None:
    every = apt_groups("apt-deps")
    assert set(every) == {"stack", "debs", "image", "test"}
    assert set(apt_groups("test")) == set(every)
    assert set(apt_groups("debs")) == {"stack", "debs"}
    assert set(apt_groups("debs-test")) == {"stack", "debs", "test"}
    for target in ("image", "image-vm", "acceptance"):
        assert set(apt_groups(target)) == {"stack", "debs", "image"}, target
    assert {"dh-python", "pybuild-plugin-pyproject", "git"} <= every["debs"]
    assert {"qemu-system-x86", "qemu-utils", "grub-pc-bin", "mmdebstrap", "ansible"} <= every["image"]
    assert {"lintian", "vagrant", "vagrant-libvirt", "ansible-lint", "systemd-container"} <= every["test"]
    # nothing was lost in the split: the CI toolchain is still installed by `make test`
    assert set().union(*apt_groups("test").values()) >= CI_ONLY


def test_the_deps_stamp_is_redone_when_an_apt_list_changes(tmp_path: Path) -> None:
    """The one stamp (.venv/.deps-stamp) depends on the Makefile, where the lists are."""
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / "requirements-dev.txt").write_text("")
    stamp = tmp_path / ".venv" / ".deps-stamp"
    stamp.parent.mkdir()
    stamp.touch()
    later = time.time() + 10
    os.utime(stamp, (later, later))
    assert "touch .venv/.deps-stamp" not in _make("-n", ".venv/.deps-stamp", cwd=tmp_path)

    makefile = tmp_path / "Makefile"
    text = makefile.read_text()
    makefile.write_text(text.replace("APT_PACKAGES := \\\n", "APT_PACKAGES := pbx-new-package \\\n", 1))
    os.utime(makefile, (later + 10, later + 10))
    plan = _make("-n", ".venv/.deps-stamp", cwd=tmp_path)
    assert "touch .venv/.deps-stamp" in plan
    assert "pbx-new-package" in apt_groups("deps", cwd=tmp_path)["stack"]
