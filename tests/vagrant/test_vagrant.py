"""`vagrant up` with the repository's Vagrantfile, end to end, on a private libvirt (issue 19).

For each box named with --vagrant-box (image: the appliance's box of `make image-vm`; devbox: the plain
bookworm box of `make devbox`, provisioned with site.yml): `vagrant up`, then over `vagrant ssh -c` the
hostname, the PBX's services active, /vagrant holding exactly the tracked files, pbx-admin adding and
deleting a user; a change synced by `vagrant rsync`; provisioning (the image's box: once with
PBX_VAGRANT_PROVISION=1, Ansible's become through the box's sudo; the dev box: `vagrant up` provisions,
then `vagrant provision` must change nothing); `vagrant halt`, `vagrant up` again (second boot, the
services active again), `vagrant destroy -f`. Nothing is left: no domain, volume, pool or network in the
private libvirt, and on this machine no network namespace, iptables chain, process or folder of the test.

The guests have no route beyond their NAT network (the namespace has no default route): the dev box is
provisioned offline. The tree Vagrant syncs is a copy of the tracked files (the test changes it), with
`build` a link to the repository's (the packages of `make debs`, the boxes). Each phase is timed and
printed as a `timing:` line. Needs root, the boxes and the Makefile's test apt group.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vagrant.private_libvirt import SYSTEM_ENV, PrivateLibvirt, run

ROOT = Path(__file__).resolve().parents[2]
BOX_FILES = {"image": "build/image/pbx-vm-amd64.box", "devbox": "build/image/pbx-devbox-amd64.box"}
MAKE_BOX = {"image": "make image-vm", "devbox": "make devbox"}
HOSTNAME = "pbx-dev"  # the Vagrantfile's
UNITS = (
    "pbx-event-relay",
    "pbx-agid",
    "pbx-ctid",
    "pbx-confgend",
    "asterisk",
    "postgresql@15-main",
    "rabbitmq-server",
)
# The appliance's first boot (RabbitMQ's first start above all) takes minutes under TCG.
UNITS_TIMEOUT = 900
RECAP = r"^\S+\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="libvirtd, network namespaces and mounts need root"),
    pytest.mark.timeout(5400),
]


class Timings:
    def __init__(self, box: str) -> None:
        self.box = box
        self.phases: list[tuple[str, float]] = []

    def phase(self, name: str):
        timings = self

        class _Phase:
            def __enter__(self) -> None:
                self.started = time.monotonic()
                print(f"vagrant ({timings.box}): {name} ...", flush=True)

            def __exit__(self, *exc: object) -> None:
                seconds = time.monotonic() - self.started
                timings.phases.append((name, seconds))
                failed = " (failed)" if exc[0] else ""
                print(f"timing: vagrant {timings.box} {name} {seconds:.0f} s{failed}", flush=True)

        return _Phase()

    def report(self) -> None:
        total = sum(seconds for _, seconds in self.phases)
        print(f"\ntiming: vagrant {self.box}: " + ", ".join(f"{n} {s:.0f} s" for n, s in self.phases))
        print(f"timing: vagrant {self.box} total {total:.0f} s", flush=True)


class Vagrant:
    """The vagrant command on `tree`, in the private libvirt's network namespace."""

    def __init__(self, libvirt: PrivateLibvirt, tree: Path, home: Path, box: str, log: Path) -> None:
        self.libvirt = libvirt
        self.tree = tree
        self.log = log
        self.env = {
            **SYSTEM_ENV,
            "VAGRANT_HOME": str(home),
            "VAGRANT_CHECKPOINT_DISABLE": "1",
            "VAGRANT_DEFAULT_PROVIDER": "libvirt",
            "VAGRANT_NO_COLOR": "1",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "PBX_VAGRANT_BOX": box,
            "PBX_VAGRANT_LIBVIRT_URI": libvirt.uri,
        }

    def __call__(self, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> str:
        cmd = self.libvirt.command(["vagrant", *args])
        proc = subprocess.run(
            cmd,
            cwd=self.tree,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        output = proc.stdout + proc.stderr
        with self.log.open("a") as log:
            log.write(f"\n$ vagrant {shlex.join(args)} (exit {proc.returncode})\n{output}")
        if proc.returncode != 0:
            pytest.fail(
                f"vagrant {' '.join(args)} exited {proc.returncode}:\n{output[-6000:]}\n"
                f"libvirt:\n{self.libvirt.tail(1500)}"
            )
        return output

    def ssh(self, command: str, timeout: float = 300) -> str:
        return self("ssh", "-c", command, timeout=timeout)

    def wait_units(self, timeout: float = UNITS_TIMEOUT) -> None:
        """Until every unit is active (`systemctl is-active` succeeds when one is) and no boot job is
        left (the appliance's first boot, pbx-firstboot, has written the secrets)."""
        units = " ".join(UNITS)
        done = (
            f'[ "$(systemctl is-active {units} | sort -u)" = active ]'
            ' && [ -z "$(systemctl list-jobs --no-legend)" ]'
        )
        script = (
            f"for i in $(seq {timeout // 3}); do {done} && exit 0; sleep 3; done; "
            f"systemctl is-active {units}; systemctl list-jobs; systemctl --failed --no-legend; exit 1"
        )
        self.ssh(script, timeout=timeout + 120)


def recap(output: str) -> tuple[int, int, int, int]:
    found = re.findall(RECAP, output, re.M)
    assert found, f"no PLAY RECAP in the provisioning output:\n{output[-6000:]}"
    return tuple(int(n) for n in found[-1])  # type: ignore[return-value]


def tracked_tree(dest: Path) -> dict[str, str]:
    """A copy of the tracked files (those present in the work tree), links followed as rsync's
    --copy-links does; returns each file's sha256 by its path."""
    listed = run(["git", "-C", str(ROOT), "ls-files", "-z"]).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / "build").symlink_to(ROOT / "build")  # excluded from the sync, read by the Vagrantfile
    return tree_hashes(dest)


def tree_hashes(tree: Path) -> dict[str, str]:
    hashes = {}
    for path in tree.rglob("*"):
        relative = path.relative_to(tree)
        if relative.parts[0] in ("build", ".vagrant") or not path.is_file():
            continue
        hashes[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def guest_hashes(vagrant: Vagrant) -> dict[str, str]:
    output = vagrant.ssh("cd /vagrant && find . -type f -print0 | sort -z | xargs -0 sha256sum")
    hashes = {}
    for line in output.splitlines():
        match = re.fullmatch(r"([0-9a-f]{64})  \./(.+)", line.strip())
        if match:
            hashes[match.group(2)] = match.group(1)
    return hashes


def assert_same_tree(vagrant: Vagrant, tree: Path) -> None:
    host, guest = tree_hashes(tree), guest_hashes(vagrant)
    missing = sorted(set(host) - set(guest))
    extra = sorted(set(guest) - set(host))
    different = sorted(name for name in set(host) & set(guest) if host[name] != guest[name])
    assert not (missing or extra or different), (
        f"/vagrant differs from the tracked files: missing {missing[:20]}, extra {extra[:20]}, "
        f"different {different[:20]}"
    )


def host_state(libvirt: PrivateLibvirt) -> dict[str, object]:
    """What the test (or libvirt for it) could leave on this machine: libvirt's iptables chains, its
    bridges and the guests' taps, the namespace, a daemon, dnsmasq or qemu, the folder, a mount."""
    chains = run(["iptables", "-S"], check=False).stdout + run(["ip6tables", "-S"], check=False).stdout
    links = re.findall(r"^\d+: ([^:@]+)", run(["ip", "-o", "link"]).stdout, re.M)
    processes = run(["ps", "-eo", "args="]).stdout.splitlines()
    return {
        "iptables chains": sorted(set(re.findall(r"^-N (LIBVIRT\S*)", chains, re.M))),
        "network namespaces": [n for n in run(["ip", "netns", "list"]).stdout.split() if n == libvirt.netns],
        "links": sorted(name for name in links if name.startswith(("virbr", "vnet"))),
        "processes": [p for p in processes if str(libvirt.dir) in p or libvirt.netns in p],
        "libvirt folder": libvirt.dir.exists(),
        "mounts": [m for m in Path("/proc/self/mounts").read_text().splitlines() if str(libvirt.dir) in m],
    }


@pytest.fixture
def libvirt() -> Iterator[PrivateLibvirt]:
    private = PrivateLibvirt()
    try:
        private.start()
        yield private
    finally:
        private.remove_all()
        private.stop()


def test_vagrant_up_end_to_end(box: str, libvirt: PrivateLibvirt, tmp_path: Path) -> None:
    box_file = ROOT / BOX_FILES[box]
    assert box_file.is_file(), f"no {box_file}: build it with `{MAKE_BOX[box]}`"
    assert (ROOT / "build" / "debs" / "Packages").is_file(), "no build/debs: run `make debs`"
    timings = Timings(box)
    before = host_state(libvirt)
    tree = tmp_path / "tree"
    home = tmp_path / "vagrant.d"
    vagrant = Vagrant(libvirt, tree, home, box, tmp_path / "vagrant.log")
    print(f"\nvagrant ({box}): {box_file}, libvirt {libvirt.uri}, log {vagrant.log}", flush=True)
    try:
        with timings.phase("copy of the tracked files"):
            tree.mkdir()
            tracked_tree(tree)
        # The guests' network ends at libvirt's NAT: no default route in the namespace, no internet.
        routes = run(libvirt.command(["ip", "route", "show", "default"])).stdout
        assert routes.strip() == "", routes

        with timings.phase("vagrant up (box added, first boot)"):
            up = vagrant("up", "--provider=libvirt", timeout=3600)
        if box == "devbox":
            ok, changed, unreachable, failed = recap(up)
            assert changed > 0 and failed == 0 and unreachable == 0, up[-6000:]
        with timings.phase("services active"):
            vagrant.wait_units()
        with timings.phase("vagrant ssh -c checks"):
            assert vagrant.ssh("hostname").strip().splitlines()[-1] == HOSTNAME
            assert_same_tree(vagrant, tree)
            user = vagrant.ssh(
                "pbx-admin --json user add --firstname Vagrant --lastname Check --exten 1999 >/dev/null"
                " && pbx-admin user list --name check && pbx-admin user delete 1999"
            )
            assert "1999" in user and "Vagrant" in user, user

        with timings.phase("vagrant rsync of a change"):
            readme = tree / "README.md"
            readme.write_text(readme.read_text() + "\nChanged by tests/vagrant.\n")
            (tree / "docs" / "vagrant-rsync-check.txt").write_text(f"{time.time()}\n")
            (tree / "site.yml").unlink()
            vagrant("rsync")
            assert_same_tree(vagrant, tree)
            shutil.copy2(ROOT / "site.yml", tree / "site.yml")  # provisioning needs it back
            (tree / "docs" / "vagrant-rsync-check.txt").unlink()
            vagrant("rsync")

        if box == "image":
            with timings.phase("vagrant provision (PBX_VAGRANT_PROVISION=1)"):
                output = vagrant("provision", timeout=3600, env={"PBX_VAGRANT_PROVISION": "1"})
            ok, changed, unreachable, failed = recap(output)
            assert failed == 0 and unreachable == 0, output[-6000:]
            print(f"vagrant (image): site.yml on the appliance: ok={ok} changed={changed}")
        else:
            with timings.phase("vagrant provision (second run)"):
                output = vagrant("provision", timeout=3600)
            ok, changed, unreachable, failed = recap(output)
            assert failed == 0 and unreachable == 0, output[-6000:]
            changed_tasks = re.findall(r"^TASK \[(.+?)\].*\n(?:.*\n)*?changed:", output, re.M)
            assert changed == 0, f"the second provisioning changed {changed}: {changed_tasks}"

        with timings.phase("vagrant halt"):
            vagrant("halt", timeout=900)
        assert libvirt.virsh("list", "--name").split() == [], "a domain still runs after halt"
        with timings.phase("vagrant up (second boot)"):
            vagrant("up", "--provider=libvirt", timeout=3600)
        with timings.phase("services active (second boot)"):
            vagrant.wait_units()
            assert vagrant.ssh("hostname").strip().splitlines()[-1] == HOSTNAME
            assert_same_tree(vagrant, tree)

        with timings.phase("vagrant destroy -f"):
            vagrant("destroy", "-f", timeout=900)
        assert libvirt.virsh("list", "--all", "--name").split() == [], "a domain is left after destroy"
    finally:
        timings.report()

    # What Vagrant keeps on purpose (the box's volume in the pool, the pool, its management network) is
    # removed; then nothing may be left in libvirt nor, once it stops, on this machine.
    libvirt.remove_all()
    assert libvirt.leftovers() == {}
    libvirt.stop()
    after = host_state(libvirt)
    assert after == before, f"left behind: before {before}, after {after}"
    shutil.rmtree(home, ignore_errors=True)  # the box, unpacked (hundreds of MiB)
