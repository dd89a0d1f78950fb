"""Acceptance of an installed PBX with testinfra: the same tests against every target given.

Targets (any combination; each test runs once per target):
  --rootfs DIR          a built root filesystem, through chroot (image/build leaves build/image/vm/rootfs)
  --vm-image FILE       a VM image, booted here in qemu (KVM when usable, else TCG; never modified) and
                        reached as root over SSH on a forwarded loopback port with --vm-key
  --hosts SPEC,...      any host, testinfra's way: ssh://root@pbx.example.net, local://, ...

    make acceptance                                  # builds the VM image if needed, then both targets
    .venv/bin/pytest tests/acceptance --hosts=ssh://root@my-pbx --ssh-identity-file ~/.ssh/id_ed25519

Without a target (a plain `pytest` of the repository) every test is skipped with that reason.
Checks that need a running system are skipped on the chroot target only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import testinfra
import testinfra.host

REPO = Path(__file__).resolve().parents[2]
DEFAULT_KEY = REPO / "build" / "image" / "ssh" / "id_ed25519"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pbx acceptance")
    group.addoption("--rootfs", help="root filesystem to check through chroot")
    group.addoption("--vm-image", help="VM image (qcow2 or raw) to boot in qemu and check over SSH")
    group.addoption(
        "--vm-key", default=str(DEFAULT_KEY), help="private key that logs in as root (image/build's)"
    )
    group.addoption("--vm-accel", default="auto", choices=["auto", "kvm", "tcg"], help="qemu acceleration")
    group.addoption(
        "--vm-boot-timeout", type=float, default=1800.0, help="seconds for the VM to finish booting"
    )


def _option(config: pytest.Config, name: str) -> object:
    return config.getoption(name, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "running: needs a running system (skipped on a chroot target)")
    targets: list[testinfra.host.Host] = []
    rootfs = _option(config, "rootfs")
    if rootfs:
        path = Path(str(rootfs)).resolve()
        if not (path / "etc" / "os-release").exists():
            raise pytest.UsageError(f"--rootfs {path}: not a root filesystem (no etc/os-release)")
        targets.append(testinfra.get_host(str(path), connection="chroot"))
    image = _option(config, "vm_image")
    if image:
        spec, ssh_config = _boot_vm(config, Path(str(image)))
        targets.append(testinfra.get_host(spec, ssh_config=ssh_config))
    hosts = [h for h in (_option(config, "hosts") or "").split(",") if h]
    if hosts:
        targets += testinfra.get_hosts(
            hosts,
            connection=_option(config, "connection"),
            ssh_config=_option(config, "ssh_config"),
            ssh_identity_file=_option(config, "ssh_identity_file"),
            sudo=_option(config, "sudo"),
            sudo_user=_option(config, "sudo_user"),
        )
    config.pbx_acceptance_targets = targets  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test once per target (this folder's `host` fixture replaces testinfra's)."""
    if "pbx_target" in metafunc.fixturenames:
        targets = getattr(metafunc.config, "pbx_acceptance_targets", None) or [None]
        ids = [t.backend.get_pytest_id() if t is not None else "no-target" for t in targets]
        metafunc.parametrize("pbx_target", targets, ids=ids, scope="module", indirect=True)


@pytest.fixture(scope="module")
def pbx_target(request: pytest.FixtureRequest) -> testinfra.host.Host | None:
    return request.param


@pytest.fixture(scope="module")
def host(pbx_target: testinfra.host.Host | None) -> testinfra.host.Host:
    if pbx_target is None:
        pytest.skip("acceptance: no target")
    return pbx_target


def _boot_vm(config: pytest.Config, image: Path) -> tuple[str, str]:
    sys.path.insert(0, str(REPO / "image"))
    from vm import VM  # image/vm.py

    vm = VM(image, Path(str(_option(config, "vm_key"))), accel=str(_option(config, "vm_accel")))
    config.pbx_vm = vm  # type: ignore[attr-defined]
    print(f"\nacceptance: booting {image} ({vm.accel}), SSH on 127.0.0.1:{vm.ssh_port}", flush=True)
    vm.start()
    timeout = float(_option(config, "vm_boot_timeout") or 1800)
    try:
        ssh_s = vm.wait_ssh(timeout)
        print(f"acceptance: SSH login after {ssh_s:.0f} s", flush=True)
        # Boot finished (running or degraded): every start job of the boot has ended.
        while time.monotonic() - vm.started_at < timeout:
            state = vm.ssh("systemctl is-system-running", timeout=30).stdout.strip()
            if state not in ("starting", "initializing", ""):
                break
            time.sleep(3)
        print(
            f"acceptance: boot finished ({state}) after {time.monotonic() - vm.started_at:.0f} s", flush=True
        )
    except Exception:
        vm.stop()
        raise
    ssh_config = vm.workdir / "ssh_config"
    user_config = _option(config, "ssh_config")
    ssh_config.write_text(
        (f"Include {Path(str(user_config)).resolve()}\n" if user_config else "")
        + f"Host 127.0.0.1\n  IdentityFile {vm.key}\n  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    return f"ssh://root@127.0.0.1:{vm.ssh_port}", str(ssh_config)


def pytest_unconfigure(config: pytest.Config) -> None:
    vm = getattr(config, "pbx_vm", None)
    if vm is not None:
        console = vm.workdir / "serial.log"
        print(f"\nacceptance: stopping the VM (console log: {console})")
        vm.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if getattr(config, "pbx_acceptance_targets", None):
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(
        reason="acceptance: no target (--rootfs, --vm-image or --hosts); `make acceptance`"
    )
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _skip_running_checks_on_chroot(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("running") is None or "host" not in request.fixturenames:
        return
    host = request.getfixturevalue("host")
    if host.backend.NAME == "chroot":
        pytest.skip("needs a running system: a chroot target has no services, ports or journal")
