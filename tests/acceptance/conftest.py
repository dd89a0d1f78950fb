"""Acceptance of an installed PBX with testinfra: the same tests against every target given.

Targets (any combination; each test runs once per target):
  --rootfs DIR          a built root filesystem, through chroot (image/build leaves build/image/vm/rootfs)
  --vm-image FILE       a VM image, booted here in qemu (KVM when usable, else TCG; never modified) and
                        reached as root over SSH on a forwarded loopback port with --vm-key
  --hosts SPEC,...      any host, testinfra's way: ssh://root@pbx.example.net, local://, ...

    make acceptance                                  # builds the VM image if needed, then both targets
    .venv/bin/pytest tests/acceptance --hosts=ssh://root@my-pbx --ssh-identity-file ~/.ssh/id_ed25519

Without a target (a plain `pytest` of the repository) every test is skipped with that reason.
Checks that need a running system are skipped on the chroot target only; the real call (test_calls.py,
fixture `running_host`) is not even generated for a chroot target when a running one is given.
"""

from __future__ import annotations

import importlib.util
import io
import shlex
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra
import testinfra.host

from harness.sipphone import AgentProcess, PhoneError, SipPhones

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
    elif "running_target" in metafunc.fixturenames:
        # Only the running targets: a chroot has nothing to call. With none (a --rootfs run alone) the
        # tests are skipped with the chroot's reason, like the other checks marked `running`.
        targets = getattr(metafunc.config, "pbx_acceptance_targets", None) or [None]
        running = [t for t in targets if t is not None and t.backend.NAME != "chroot"] or [targets[0]]
        ids = [t.backend.get_pytest_id() if t is not None else "no-target" for t in running]
        metafunc.parametrize("running_target", running, ids=ids, scope="module", indirect=True)


@pytest.fixture(scope="module")
def pbx_target(request: pytest.FixtureRequest) -> testinfra.host.Host | None:
    return request.param


@pytest.fixture(scope="module")
def host(pbx_target: testinfra.host.Host | None) -> testinfra.host.Host:
    if pbx_target is None:
        pytest.skip("acceptance: no target")
    return pbx_target


@pytest.fixture(scope="module")
def running_target(request: pytest.FixtureRequest) -> testinfra.host.Host | None:
    return request.param


@pytest.fixture(scope="module")
def running_host(running_target: testinfra.host.Host | None) -> testinfra.host.Host:
    """A running target (the booted VM, a --hosts machine): never the chroot when a running one is given."""
    if running_target is None:
        pytest.skip("acceptance: no target")
    if running_target.backend.NAME == "chroot":
        pytest.skip("needs a running system: a chroot target has no services, ports or journal")
    return running_target


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
    # The real call changes the target (two users come and go, the call's log lines): it runs after the
    # other modules, which check the target as it booted (the journal first, the demo into an empty
    # database). A stable sort: each module's tests stay together and in their order.
    calls = Path(__file__).parent / "test_calls.py"
    items.sort(key=lambda item: Path(str(item.fspath)) == calls)
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


# --- SIP phones on a running target (test_calls.py) ---

# harness.sipagent and the harness modules it imports: copied to the target with pjsua2 (the harness's own
# __init__ is not: it imports the test servers; an empty one makes `harness` a package there).
SIP_AGENT_MODULES = ("sipagent.py", "sipobjects.py")
SIP_AGENT_START_TIMEOUT = 90.0  # ssh login, python3 and pjsua2 loading on the target (slow under TCG)


class TargetError(AssertionError):
    """A command of the SIP phones' plumbing failed on the target."""


class TargetShell:
    """Processes of our own on a running target, reached as testinfra reaches it: a long-lived pipe (a SIP
    agent's stdin/stdout) or a command with bytes in and out. Over ssh with the target's options (its
    ssh_config, identity, user, port, sudo), or locally for a local:// target."""

    def __init__(self, host: testinfra.host.Host) -> None:
        self.backend = host.backend
        name = self.backend.NAME
        if name not in ("ssh", "local") or (name == "ssh" and self.backend.host.password):
            raise TargetError(
                f"the real call drives SIP phones through ssh (key authentication) or locally, not the "
                f"{name!r} connection of {self.backend.get_pytest_id()}: use --hosts ssh://... or local://"
            )

    def argv(self, command: str) -> list[str]:
        """argv that runs the shell ``command`` on the target, stdin and stdout connected to ours."""
        backend = self.backend
        command = backend.get_command(command)  # sudo, when the target asks for it
        if backend.NAME == "local":
            return ["/bin/sh", "-c", command]
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={backend.timeout}"]
        argv += shlex.split(backend.ssh_extra_args or "")
        if backend.ssh_config:
            argv += ["-F", backend.ssh_config]
        if backend.host.user:
            argv += ["-o", f"User={backend.host.user}"]
        if backend.host.port:
            argv += ["-o", f"Port={backend.host.port}"]
        if backend.ssh_identity_file:
            argv += ["-i", backend.ssh_identity_file]
        return [*argv, backend.host.name, command]

    def run(self, command: str, *, stdin: bytes = b"", timeout: float = 120.0) -> bytes:
        """Run ``command`` on the target and return its stdout; TargetError unless it exits with 0."""
        try:
            done = subprocess.run(self.argv(command), input=stdin, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TargetError(f"{command!r} on the target did not end within {timeout:g} s") from None
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace")[-3000:]
            raise TargetError(f"{command!r} on the target exited with {done.returncode}:\n{stderr}")
        return done.stdout


def sip_agent_bundle() -> bytes:
    """A tar.gz of what a SIP agent needs on a target that has only python3: harness.sipagent and
    harness.sipobjects, and pjsua2 from the pjsua2-python wheel exactly as pip unpacked it here (the
    package and the libraries auditwheel bundled, found through its RPATH $ORIGIN/../pjsua2_python.libs)."""
    spec = importlib.util.find_spec("pjsua2")
    if spec is None or spec.origin is None:
        raise TargetError("pjsua2 is not installed here (requirements-dev.txt's pjsua2-python): make deps")
    package = Path(spec.origin).resolve().parent
    libs = package.parent / "pjsua2_python.libs"
    if not libs.is_dir():
        raise TargetError(f"{libs} is missing: pjsua2 was not installed from the pjsua2-python wheel")

    def no_cache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if "__pycache__" in info.name.split("/") else info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        init = tarfile.TarInfo("harness/__init__.py")
        init.mode = 0o644
        tar.addfile(init, io.BytesIO(b""))
        for name in SIP_AGENT_MODULES:
            tar.add(REPO / "tests" / "harness" / name, f"harness/{name}", filter=no_cache)
        tar.add(package, "pjsua2", filter=no_cache)
        tar.add(libs, "pjsua2_python.libs", filter=no_cache)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sip_agent_dir(running_host: testinfra.host.Host) -> Iterator[str]:
    """A folder on the target holding the SIP agent and pjsua2 (sip_agent_bundle), checked to load with
    the target's python3; removed afterwards."""
    shell = TargetShell(running_host)
    folder = shell.run("mktemp -d /tmp/pbx-acceptance-sip.XXXXXX", timeout=60).decode().strip()
    quoted = shlex.quote(folder)
    try:
        started = time.monotonic()
        shell.run(f"tar -xzf - -C {quoted} && mkdir {quoted}/rec", stdin=sip_agent_bundle(), timeout=300)
        try:
            shell.run(
                f"cd {quoted} && PYTHONPATH={quoted} python3 -c 'import pjsua2, harness.sipagent'",
                timeout=SIP_AGENT_START_TIMEOUT,
            )
        except TargetError as exc:
            here = f"{sys.version_info.major}.{sys.version_info.minor}"
            raise TargetError(
                f"the SIP agent does not load with the target's python3 (the wheel is for CPython {here}): "
                f"{exc}"
            ) from None
        print(f"\nacceptance: SIP agent and pjsua2 copied to {folder} in {time.monotonic() - started:.1f} s")
        yield folder
    finally:
        running_host.run("rm -rf %s", folder)


class RemoteAgentProcess(AgentProcess):
    """harness.sipagent on the target, its stdin/stdout piped through ssh; its recordings copied back."""

    def __init__(self, name: str, log: Path, shell: TargetShell, folder: str) -> None:
        self.shell = shell
        self.folder = folder
        quoted = shlex.quote(folder)
        command = f"cd {quoted} && PYTHONPATH={quoted} exec python3 -m harness.sipagent"
        super().__init__(name, log, command=shell.argv(command))

    def agent_path(self, local: Path) -> str:
        return f"{self.folder}/rec/{local.name}"

    def fetch(self, agent_path: str, local: Path) -> Path:
        quoted = shlex.quote(agent_path)
        local.write_bytes(self.shell.run(f"cat {quoted} && rm -f {quoted}", timeout=60))
        return local


class TargetSipPhones(SipPhones):
    """harness.sipphone's phones, each agent running on the target (``ssh target python3 -m
    harness.sipagent``): they register to the target's own SIP at 127.0.0.1:5060 and send their RTP on its
    loopback, as phones on the appliance's network would."""

    def __init__(self, shell: TargetShell, folder: str, workdir: Path) -> None:
        super().__init__("127.0.0.1", 5060, workdir)
        self.shell = shell
        self.folder = folder

    def agent(self, name: str) -> AgentProcess:
        agent = RemoteAgentProcess(name, self.workdir / f"{name}.log", self.shell, self.folder)
        try:
            # a command it ignores (it rings by default): answered once python3 and pjsua2 are loaded
            agent.command("auto_ringing", SIP_AGENT_START_TIMEOUT, enabled=True)
        except PhoneError:
            agent.close()
            raise
        return agent


@pytest.fixture
def target_phones(
    running_host: testinfra.host.Host, sip_agent_dir: str, tmp_path: Path
) -> Iterator[TargetSipPhones]:
    """SIP phones on the running target (TargetSipPhones); each unregistered and closed after the test, its
    log added to a failing test's report (harness.plugin)."""
    phones = TargetSipPhones(TargetShell(running_host), sip_agent_dir, tmp_path / "phones")
    try:
        yield phones
    finally:
        phones.close()
