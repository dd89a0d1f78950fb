"""Debian packages (issue 6): build, lintian, unit hardening, install, purge and upgrade on a clean bookworm.

- ``debs`` / ``debs_next``: every package at version N (the repository's files) and N+1 (a copy of them
  plus one test-only migration), built by ``packages/build-debs`` into flat apt repositories, with our
  asterisk package (its own version, from packages/build-asterisk's cache; test_asterisk.py checks it
  alone, the install test here installs it with the PBX and runs it as its unit would).
- ``bookworm``: makes fresh root filesystems from a bookworm tarball made by mmdebstrap (apt variant +
  systemd + python3), cached in ``build/packaging-cache/`` for a week; made again when missing.
  Downloaded ``.deb`` files are kept there too (bind-mounted as the chroot's apt cache).
- :class:`Rootfs`: runs commands chrooted in a private mount namespace (``unshare``), so that ``/proc``,
  ``/sys``, ``/dev/shm`` and the apt cache are mounted for that command only and vanish with it; runs a
  daemon the way its systemd unit would (user, credentials, cache folder); kills whatever is left.

The tests need root and the tools of the Makefile's APT_PACKAGES: a missing tool is a failure that names
it. Without root they fail under CI (``CI`` set), and are skipped with the reason elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testkit.agid_db import env_for
from testkit.fastagi import FakeAsterisk

ROOT = Path(__file__).resolve().parents[2]
BUILD_DEBS = ROOT / "packages" / "build-debs"
CACHE = ROOT / "build" / "packaging-cache"
CACHE_MAX_AGE = 7 * 86400
VERSION_N = "0.1.0+test1"
VERSION_NEXT = "0.1.0+test2"
PROBE_REVISION = "9999_packaging_upgrade_probe"
PROBE_TABLE = "packaging_upgrade_probe"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
BOOTSTRAP = [
    "mmdebstrap",
    "--mode=root",
    "--format=tar",
    "--variant=apt",
    "--include=systemd,python3",
    "bookworm",
]
TOOLS = (
    "mmdebstrap",
    "lintian",
    "dpkg-buildpackage",
    "dpkg-scanpackages",
    "apt-ftparchive",
    "systemd-analyze",
    "unshare",
    "mount",
    "chroot",
    "git",
)
SYSTEM_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C.UTF-8",
    "HOME": "/root",
    "DEBIAN_FRONTEND": "noninteractive",
}
# Runs as `sh -ec NS_SCRIPT sh ROOTFS APT_CACHE CMD...` inside `unshare --mount`: the mounts are private
# to this command and disappear with its last process.
NS_SCRIPT = """
r=$1; cache=$2; shift 2
mount -t proc proc "$r/proc"
mount -t sysfs -o ro sysfs "$r/sys" 2>/dev/null || true
mount -t tmpfs -o mode=1777,size=256m tmpfs "$r/dev/shm"
mount --bind "$cache" "$r/var/cache/apt/archives"
exec chroot "$r" "$@"
"""

REPORT: list[str] = []


def report(line: str) -> None:
    """A line for the section at the end of pytest's output (timings, exposure levels, lintian warnings)."""
    REPORT.append(line)


@pytest.fixture(scope="session", autouse=True)
def summary(summary_lines: list[str]) -> Iterator[None]:
    """Hands this module's report lines to conftest.py's terminal summary (after the session's teardown)."""
    yield
    summary_lines.extend(REPORT)


class Timer:
    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> Timer:
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        report(f"time: {self.what}: {time.monotonic() - self.started:.0f} s")


def run(cmd: list[str], log: Path | None = None, timeout: float = 900, **kwargs) -> str:
    """Run with Debian's tools only (no venv on PATH); on failure, fail with the end of the output."""
    proc = subprocess.run(
        cmd, env=SYSTEM_ENV, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    output = proc.stdout + proc.stderr
    if log:
        log.write_text(output)
    if proc.returncode != 0:
        pytest.fail(f"{shlex.join(cmd)[:300]} exited {proc.returncode}:\n{output[-6000:]}", pytrace=False)
    return output


@pytest.fixture(scope="session", autouse=True)
def packaging_prerequisites() -> None:
    """Root and every tool, or a clear failure (a skip outside CI when only root is missing)."""
    missing = [tool for tool in TOOLS if not shutil.which(tool, path=SYSTEM_ENV["PATH"])]
    if missing:
        pytest.fail(
            f"tests/packaging needs {', '.join(missing)}: run `make apt-deps` (Makefile APT_PACKAGES)",
            pytrace=False,
        )
    if os.geteuid() != 0:
        message = "tests/packaging needs root (chroot, mounts, mmdebstrap --mode=root)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


class Build:
    """``packages/build-debs`` of every package at one version, running in the background."""

    def __init__(self, base: Path, version: str, tree: Path | None = None) -> None:
        self.version, self.repo, self.log = version, base / "repo", base / f"build-{version}.log"
        cmd = [str(BUILD_DEBS), "-o", str(self.repo), "-w", str(base / "work"), "-V", version]
        if tree:
            cmd += ["-s", str(tree)]
        self.cmd = cmd
        self.started = time.monotonic()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, env=SYSTEM_ENV, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )

    def wait(self) -> Path:
        # A cold cache builds Asterisk (about 10 minutes on 2 CPUs); `make test` fills it beforehand.
        if self.proc.wait(timeout=3000) != 0:
            pytest.fail(
                f"{shlex.join(self.cmd)} exited {self.proc.returncode}:\n{self.log.read_text()[-6000:]}"
            )
        took = time.monotonic() - self.started
        report(
            f"time: packages/build-debs -V {self.version} (8 packages, from the session start): {took:.0f} s"
        )
        return self.repo

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def source_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [f for f in listed.split("\0") if f and (ROOT / f).is_file()]


def migration_head(versions: Path) -> str:
    revisions, parents = set(), set()
    for path in versions.glob("*.py"):
        text = path.read_text()
        if m := re.search(r'^revision = "([^"]+)"', text, re.M):
            revisions.add(m.group(1))
        if m := re.search(r'^down_revision = "([^"]+)"', text, re.M):
            parents.add(m.group(1))
    (head,) = revisions - parents
    return head


def next_version_tree(base: Path) -> Path:
    """A copy of the repository's files plus one migration that adds a table and a row."""
    tree = base / "tree"
    for name in source_files():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    versions = tree / "confdb" / "confdb" / "migrations" / "versions"
    head = migration_head(versions)
    (versions / f"{PROBE_REVISION}.py").write_text(
        f'"""Test only (tests/packaging): the migration that version N+1 adds."""\n\n'
        f"from alembic import op\n\n"
        f'revision = "{PROBE_REVISION}"\n'
        f'down_revision = "{head}"\n'
        f"branch_labels = None\n"
        f"depends_on = None\n\n\n"
        f"def upgrade() -> None:\n"
        f'    op.execute("CREATE TABLE {PROBE_TABLE} (id int PRIMARY KEY)")\n'
        f'    op.execute("INSERT INTO {PROBE_TABLE} VALUES (1)")\n\n\n'
        f"def downgrade() -> None:\n"
        f'    op.execute("DROP TABLE {PROBE_TABLE}")\n'
    )
    return tree


@pytest.fixture(scope="session")
def builds(request, tmp_path_factory) -> Iterator[dict[str, Build]]:
    """Version N from the repository's files and, when a test of the session needs it, version N+1 from a
    copy of them with one more migration: both builds run at once (one core each)."""
    running = {"n": Build(tmp_path_factory.mktemp("debs-n"), VERSION_N)}
    if any("debs_next" in item.fixturenames for item in request.session.items):
        base = tmp_path_factory.mktemp("debs-next")
        running["next"] = Build(base, VERSION_NEXT, tree=next_version_tree(base))
    try:
        yield running
    finally:
        for build in running.values():
            build.stop()


@pytest.fixture(scope="session")
def debs(builds) -> Path:
    """Version N of every package, in a flat apt repository."""
    return builds["n"].wait()


@pytest.fixture(scope="session")
def debs_next(builds) -> Path:
    """Version N+1 of every package (one more migration), in a flat apt repository."""
    return builds["next"].wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode} before listening on {port}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"nothing listens on {port} after {timeout} s:\n{log.read_text()[-3000:]}")


# --- bookworm root filesystems ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bookworm_tarball() -> Path:
    """mmdebstrap's bookworm (apt variant + systemd + python3), cached in build/ for a week."""
    key = hashlib.sha256("\0".join(BOOTSTRAP + list(MIRRORS)).encode()).hexdigest()[:12]
    tarball = CACHE / f"bookworm-{key}.tar"
    if tarball.exists() and time.time() - tarball.stat().st_mtime < CACHE_MAX_AGE:
        report(f"bookworm root filesystem: cached {tarball.relative_to(ROOT)}")
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob("bookworm-*.tar*"):
        old.unlink()
    partial = tarball.with_suffix(".tar.partial")
    with Timer("mmdebstrap bookworm (apt variant + systemd, python3)"):
        run([*BOOTSTRAP, str(partial), *MIRRORS], log=CACHE / "mmdebstrap.log", timeout=1200)
    partial.rename(tarball)
    return tarball


class Rootfs:
    """A fresh bookworm root filesystem; commands run chrooted in it, in a private mount namespace."""

    def __init__(self, path: Path, tarball: Path, log_dir: Path) -> None:
        self.path = path
        self.log_dir = log_dir
        self.apt_cache = CACHE / "apt-archives"
        self.apt_cache.mkdir(parents=True, exist_ok=True)
        path.mkdir(parents=True)
        run(["tar", "-xpf", str(tarball), "-C", str(path)])
        self.daemons: list[subprocess.Popen] = []

    def command(self, *argv: str) -> list[str]:
        return [
            "unshare",
            "--mount",
            "--",
            "sh",
            "-ec",
            NS_SCRIPT,
            "sh",
            str(self.path),
            str(self.apt_cache),
            *argv,
        ]

    def sh(self, script: str, name: str = "", timeout: float = 900, check: bool = True) -> str:
        """`sh -ec script` as root in the chroot; output logged in log_dir/NAME.log when named."""
        proc = subprocess.run(
            self.command("sh", "-ec", script),
            env=SYSTEM_ENV,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = proc.stdout + proc.stderr
        if name:
            (self.log_dir / f"{name}.log").write_text(output)
        if check and proc.returncode != 0:
            pytest.fail(f"in the chroot, `{script[:300]}` exited {proc.returncode}:\n{output[-6000:]}")
        return output

    def add_repository(self, debs: Path) -> None:
        """Our packages as a local apt source, the way the README says: deb [trusted=yes] file:... ./"""
        repo = self.path / "srv" / "pbx-debs"
        shutil.rmtree(repo, ignore_errors=True)
        shutil.copytree(debs, repo)
        # Forget the index of the repository this one replaces: the two builds of a session run at once,
        # and apt ignores a Release whose Date is older than the one it has (N+1 may finish before N).
        for cached in (self.path / "var/lib/apt/lists").glob("*srv_pbx-debs*"):
            cached.unlink()
        (self.path / "etc/apt/sources.list.d/pbx.list").write_text(
            "deb [trusted=yes] file:/srv/pbx-debs ./\n"
        )

    def unit(self, name: str) -> dict[str, list[str]]:
        """The [Service]/[Unit] settings of an installed unit: key -> every value."""
        settings: dict[str, list[str]] = {}
        text = (self.path / "lib/systemd/system" / f"{name}.service").read_text()
        for line in text.splitlines():
            if "=" in line and not line.startswith(("#", ";", "[")):
                key, value = line.split("=", 1)
                settings.setdefault(key.strip(), []).append(value.strip())
        return settings

    def start_unit(self, name: str, *extra_args: str) -> tuple[subprocess.Popen, Path]:
        """Run a unit's ExecStart= the way systemd would without systemd: its User=/Group=, its
        LoadCredential= files in /run/credentials/UNIT/ (readable by that user only), its CacheDirectory=,
        no capabilities, no new privileges. extra_args (ports) are appended to the command."""
        unit = self.unit(name)
        for condition in unit.get("ConditionPathExists", []):
            assert (self.path / condition.lstrip("/")).exists(), f"{name}: {condition} is missing"
        user, group = unit["User"][0], unit["Group"][0]
        credentials = f"/run/credentials/{name}.service"
        setup = [f"rm -rf {credentials}", f"install -d -m 0500 -o {user} -g {group} {credentials}"]
        for credential in unit.get("LoadCredential", []):
            cred, source = credential.split(":", 1)
            setup.append(f"install -m 0400 -o {user} -g {group} {source} {credentials}/{cred}")
        for cache in unit.get("CacheDirectory", []):
            mode = unit.get("CacheDirectoryMode", ["0755"])[0]
            setup.append(f"install -d -m {mode} -o {user} -g {group} /var/cache/{cache}")
        for runtime in unit.get("RuntimeDirectory", []):
            mode = unit.get("RuntimeDirectoryMode", ["0755"])[0]
            setup.append(f"install -d -m {mode} -o {user} -g {group} /run/{runtime}")
        self.sh("\n".join(setup))
        log = self.log_dir / f"{name}-{len(self.daemons)}.log"
        argv = [
            "setpriv",
            f"--reuid={user}",
            f"--regid={group}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            *shlex.split(unit["ExecStart"][0]),
            *extra_args,
        ]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                self.command(*argv),
                env=SYSTEM_ENV,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.daemons.append(proc)
        return proc, log

    def stop(self, proc: subprocess.Popen) -> int:
        """SIGTERM, as systemctl stop; the exit status."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def processes(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.readlink(entry / "root") == str(self.path):
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids

    def cleanup(self) -> None:
        """Stop every process still running in this root filesystem (daemons, PostgreSQL)."""
        for proc in self.daemons:
            self.stop(proc)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.processes()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while pids and self.processes() and time.monotonic() < deadline:
                time.sleep(0.2)


@pytest.fixture
def bookworm(bookworm_tarball, tmp_path) -> Iterator[Callable[[], Rootfs]]:
    """Makes a fresh bookworm root filesystem under tmp_path; stops what runs in it at the end."""
    made: list[Rootfs] = []

    def make() -> Rootfs:
        with Timer("fresh root filesystem from the tarball"):
            rootfs = Rootfs(tmp_path / f"rootfs{len(made)}", bookworm_tarball, tmp_path)
        made.append(rootfs)
        return rootfs

    yield make
    for rootfs in made:
        rootfs.cleanup()
        # Nothing is mounted there from this namespace (the mounts were private to each command).
        if str(rootfs.path) not in Path("/proc/self/mounts").read_text():
            shutil.rmtree(rootfs.path, ignore_errors=True)


# --- the tests ------------------------------------------------------------------------------------------

PACKAGES = {"pbx", "pbx-agid", "pbx-ctid", "pbx-confgend", "pbx-confdb", "python3-confdb", "pbx-tools"}
INSTALLED = PACKAGES - {"pbx-tools"}  # Suggests only
# Our Asterisk: in the same repository, at its own version (packages/asterisk/source-version).
ASTERISK = "asterisk"
UNITS = ("pbx-agid", "pbx-ctid", "pbx-confgend", "pbx-event-relay")
USERS = ("pbx-agid", "pbx-ctid", "pbx-confgend", "pbx-relay")
ASTERISK_SOUNDS = ("asterisk-core-sounds-en", "asterisk-core-sounds-en-gsm", "asterisk-moh-opsound-gsm")
# The folders Asterisk writes (its unit's ReadWritePaths=), its user's (0750) once installed.
ASTERISK_WRITABLE = (
    "/var/lib/asterisk",
    "/var/lib/asterisk/keys",
    "/var/cache/asterisk",
    "/var/log/asterisk",
    "/var/spool/asterisk",
    "/var/spool/asterisk/voicemail",
)
# Lintian warnings we keep, and why (docs/packaging.md lists them too).
KEPT_LINTIAN_WARNINGS = {
    # Every command documents itself with a complete --help; man pages are not written yet.
    "no-manual-page",
}
# systemd-analyze security ratings that meet the "OK or better".
GOOD_RATINGS = {"OK", "SAFE", "PERFECT"}
# Where installed packages may come from: Debian's mirror (bookworm, updates, security) and ours.
DEBIAN_SOURCE = re.compile(
    r"^http://deb\.debian\.org/debian(-security)? bookworm(-updates|-security)?/main (amd64|all) Packages$"
)
OUR_SOURCE = "file:/srv/pbx-debs ./ Packages"
COUNT_ROWS = """
SELECT table_name, (xpath('/row/c/text()',
       query_to_xml(format('SELECT count(*) AS c FROM %I', table_name), false, true, '')))[1]::text
FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1
"""

# builds (about 50 s a version; Asterisk's 10 min when its cache is cold) and root filesystems are slow
pytestmark = pytest.mark.timeout(3600)


# --- build and static checks -----------------------------------------------------------------------------


def test_every_package_is_built_into_one_apt_repository(debs):
    names = {p.name.split("_")[0] for p in debs.glob("*.deb")}
    assert names == PACKAGES | {ASTERISK}
    index = (debs / "Packages").read_text()
    assert set(re.findall(r"^Package: (\S+)$", index, re.M)) == PACKAGES | {ASTERISK}
    stanzas = index.strip().split("\n\n")
    assert all(f"Version: {VERSION_N}" in stanza for stanza in stanzas if "Package: asterisk\n" not in stanza)
    asterisk = next(stanza for stanza in stanzas if "Package: asterisk\n" in stanza)
    assert re.search(r"^Version: \S+\+pbx\d+$", asterisk, re.M), asterisk
    assert (debs / "Packages.gz").exists()
    release = (debs / "Release").read_text()
    assert "Origin: pbx-appliance" in release and "Packages" in release, release


def test_lintian_reports_no_errors_and_only_kept_warnings(debs):
    ours = sorted(str(deb) for deb in debs.glob("*.deb") if not deb.name.startswith("asterisk_"))
    with Timer("lintian (7 packages; asterisk: test_asterisk.py)"):
        proc = subprocess.run(
            ["lintian", "--tag-display-limit", "0", *ours],
            env=SYSTEM_ENV,
            capture_output=True,
            text=True,
            check=False,
        )
    tags = [line for line in proc.stdout.splitlines() if re.match(r"^[EWIXPO]: ", line)]
    for tag in tags or ["no tags"]:
        report(f"lintian: {tag}")
    assert proc.returncode in (0, 1), proc.stderr  # 1: tags of error level, checked below
    errors = [t for t in tags if t.startswith("E: ")]
    unexpected = [t for t in tags if t.startswith("W: ") and t.split()[2] not in KEPT_LINTIAN_WARNINGS]
    assert not errors, "\n".join(errors)
    assert not unexpected, "\n".join(unexpected)


def test_runtime_dependencies_are_debian_python3_packages_and_ours(debs):
    allowed = re.compile(r"^(python3(-[a-z0-9.-]+)?(:any)?|adduser|postgresql-client|debconf)$")
    for deb in debs.glob("*.deb"):
        if deb.name.startswith("asterisk_"):
            continue  # libraries (shlibs) and Debian's sounds: test_asterisk.py
        depends = run(["dpkg-deb", "-f", str(deb), "Depends"]).strip()
        for alternative in filter(None, re.split(r"\s*[,|]\s*", depends)):
            name = alternative.split()[0]
            assert name in PACKAGES or allowed.match(name), f"{deb.name}: depends on {name}"
    meta = next(debs.glob("pbx_*.deb"))
    assert "asterisk" in run(["dpkg-deb", "-f", str(meta), "Recommends"])
    assert "asterisk" not in run(["dpkg-deb", "-f", str(meta), "Depends"])


# --- what the packages install: no test support; agid cannot reach the writer ------------------------------

# Modules that are test support (issue 15): no package installs one. tests/testkit is where they live.
TEST_SUPPORT_NAMES = {"testing", "testkit", "dbtesting", "tests", "conftest"}


def installed_files(deb: Path) -> list[str]:
    """The files a package installs (``dpkg-deb -c``), as absolute paths; folders left out."""
    listing = run(["dpkg-deb", "-c", str(deb)], timeout=60)
    return [
        line.split(None, 5)[5].removeprefix(".") for line in listing.splitlines() if not line.endswith("/")
    ]


def support_modules_in(paths: list[str]) -> list[str]:
    """The Python files among ``paths`` that are, or sit in, a test-support module."""
    found = []
    for path in paths:
        parts = Path(path).parts
        if "dist-packages" in parts or "site-packages" in parts or path.endswith(".py"):
            names = [*parts[:-1], Path(parts[-1]).stem] if path.endswith(".py") else parts[:-1]
            if any(name in TEST_SUPPORT_NAMES or name.startswith("test_") for name in names):
                found.append(path)
    return found


def test_support_modules_are_recognised() -> None:
    assert support_modules_in(
        [
            "/usr/lib/python3/dist-packages/agid/testing.py",
            "/usr/lib/python3/dist-packages/agid/dbtesting.py",
            "/usr/lib/python3/dist-packages/ctid/testing/amiserver.py",
            "/usr/lib/python3/dist-packages/confdb/tests/conftest.py",
            "/usr/lib/python3/dist-packages/testkit/__init__.py",
            "/usr/lib/python3/dist-packages/pbxtools/tests/test_x.py",
            "/usr/lib/python3/dist-packages/agid/session.py",
            "/usr/share/doc/pbx-agid/testing.txt",
        ]
    ) == [
        "/usr/lib/python3/dist-packages/agid/testing.py",
        "/usr/lib/python3/dist-packages/agid/dbtesting.py",
        "/usr/lib/python3/dist-packages/ctid/testing/amiserver.py",
        "/usr/lib/python3/dist-packages/confdb/tests/conftest.py",
        "/usr/lib/python3/dist-packages/testkit/__init__.py",
        "/usr/lib/python3/dist-packages/pbxtools/tests/test_x.py",
    ]


def test_no_package_installs_test_support(debs):
    found = {}
    for deb in sorted(debs.glob("*.deb")):
        files = installed_files(deb)
        assert files, f"{deb.name}: dpkg-deb -c lists nothing"
        if support := support_modules_in(files):
            found[deb.name] = support
    assert not found, f"test support installed by the packages (it belongs in tests/testkit): {found}"


# Run by the system python3 (Debian's python3-* packages, not the venv) on the files pbx-agid and
# python3-confdb install, extracted into a folder put first on sys.path: confdb.writer cannot be imported
# (a meta path finder refuses it and records who asked), then every agid module is imported, and their
# source is read for an import of confdb.writer anywhere (a function's lazy import included).
AGID_IMPORTS = r"""
import ast, importlib, importlib.abc, pathlib, pkgutil, sys, traceback
sys.path.insert(0, sys.argv[1])
refused = []

class NoWriter(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "confdb.writer" or name.startswith("confdb.writer."):
            refused.append((name, "".join(traceback.format_stack(limit=8)[:-1])))
            raise ImportError(f"agid must not import {name}")
        return None

sys.meta_path.insert(0, NoWriter())
try:
    import confdb.writer
except ImportError:
    pass
assert refused and refused.pop()[0] == "confdb.writer", "the finder does not refuse confdb.writer"
import agid
assert agid.__file__.startswith(sys.argv[1]), agid.__file__
modules = ["agid"] + [m.name for m in pkgutil.walk_packages(agid.__path__, "agid.")
                      if not m.name.endswith(".__main__")]
for name in modules:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        print(f"IMPORT {name}: {exc}")
for name, stack in refused:
    print(f"REFUSED {name}, asked by:\n{stack}")
for path in pathlib.Path(agid.__file__).parent.rglob("*.py"):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            if n == "confdb.writer" or n.startswith("confdb.writer."):
                print(f"SOURCE {path.relative_to(sys.argv[1])}:{node.lineno}: imports {n}")
print(f"imported {len(modules)} agid modules")
"""


def agid_reaches_writer(debs: Path, root: Path) -> list[str]:
    """What, in the installed pbx-agid, imports confdb.writer (empty: nothing)."""
    for package in ("pbx-agid", "python3-confdb"):
        (deb,) = debs.glob(f"{package}_*.deb")
        run(["dpkg-deb", "-x", str(deb), str(root)], timeout=60)
    site = root / "usr" / "lib" / "python3" / "dist-packages"
    output = run(["/usr/bin/python3", "-c", AGID_IMPORTS, str(site)], timeout=120)
    assert re.search(r"^imported [1-9]\d* agid modules$", output, re.M), output
    return [line for line in output.splitlines() if line.startswith(("IMPORT ", "REFUSED ", "SOURCE "))]


def test_the_agid_package_cannot_import_the_writer(debs, tmp_path):
    """pbx-agid is the daemon that must never write: none of its installed code imports confdb.writer."""
    problems = agid_reaches_writer(debs, tmp_path)
    assert not problems, "\n".join(problems)


def test_units_are_hardened_and_rated_ok(debs, tmp_path):
    for deb in debs.glob("*.deb"):
        run(["dpkg-deb", "-x", str(deb), str(tmp_path)])
    ratings = []
    for unit in UNITS:
        path = tmp_path / "lib" / "systemd" / "system" / f"{unit}.service"
        text = path.read_text()
        for directive in (
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "NoNewPrivileges=yes",
            "RestrictAddressFamilies=",
            "CapabilityBoundingSet=\n",
            "SystemCallFilter=@system-service",
            "Restart=on-failure",
            "StartLimitBurst=",
            "StartLimitIntervalSec=",
            "User=pbx-",
            "StandardError=journal",
        ):
            assert directive in text, f"{unit}: no {directive!r}"
        out = run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)], cwd=tmp_path)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", out)
        assert m, out[-2000:]
        ratings.append((unit, float(m.group(1)), m.group(2)))
        report(f"systemd-analyze security {unit}.service: exposure {m.group(1)} {m.group(2)}")
    assert all(rating in GOOD_RATINGS for _, _, rating in ratings), ratings


# --- install, idempotence, purge in a clean bookworm ---------------------------------------------------


def installed_origins(rootfs: Rootfs) -> dict[str, set[str]]:
    """Every installed package -> the sources (apt lines) that offer its installed version."""
    names = rootfs.sh("dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n' | awk '$1 == \"ii\" {print $2}'")
    policy = rootfs.sh(f"apt-cache policy {' '.join(names.split())}")
    origins: dict[str, set[str]] = {}
    package, in_installed = "", False
    for line in policy.splitlines():
        if re.match(r"^\S+:$", line):
            package, in_installed = line[:-1], False
            origins[package] = set()
        elif m := re.match(r"^ (\*\*\*|   ) \S+ -?\d+$", line):
            in_installed = m.group(1) == "***"
        elif in_installed and (m := re.match(r"^\s+-?\d+ (.+)$", line)) and m.group(1)[0] != "/":
            origins[package].add(m.group(1))  # not /var/lib/dpkg/status: a source
    assert len(origins) == len(names.split()), policy[-3000:]
    return origins


def secrets_digest(rootfs: Rootfs) -> str:
    return rootfs.sh("cd /etc/pbx/secrets && ls -A | sort | xargs -r sha256sum")


def test_install_in_clean_bookworm_then_purge(debs, bookworm):
    rootfs = bookworm()
    rootfs.add_repository(debs)
    with Timer("install test: apt-get install pbx asterisk in a clean bookworm"):
        rootfs.sh("apt-get update -q", name="apt-update")
        # No Recommends: rabbitmq-server's Erlang would start epmd on the host's network from the chroot.
        install = rootfs.sh("apt-get install -y -q --no-install-recommends pbx asterisk", name="install")

    # Every installed package comes from Debian's mirror or, for ours, from our repository only.
    origins = installed_origins(rootfs)
    report(f"install test: {len(origins)} packages installed, origins checked")
    for package, sources in origins.items():
        assert sources, f"{package}: installed from no source"
        if package in PACKAGES | {ASTERISK}:
            assert sources == {OUR_SOURCE}, f"{package}: {sources}"
        else:
            assert all(DEBIAN_SOURCE.match(s) for s in sources), f"{package}: {sources}"
    assert set(origins) >= INSTALLED | {ASTERISK, *ASTERISK_SOUNDS}
    assert not {"python3-pip", "python3-venv", "python3-virtualenv"} & set(origins)
    assert not rootfs.sh("find /usr/local -type f; find / -xdev -name pyvenv.cfg 2>/dev/null || true").strip()

    for unit in (*UNITS, ASTERISK):
        out = rootfs.sh(f"systemd-analyze verify /lib/systemd/system/{unit}.service 2>&1 && echo verified")
        assert out.strip().splitlines()[-1] == "verified" and "rror" not in out, out
    report(f"install test: systemd-analyze verify passes in the chroot for {', '.join(UNITS)}, asterisk")

    users = rootfs.sh(f"getent passwd {' '.join(USERS)} asterisk")
    for user in USERS:
        assert re.search(rf"^{user}:x:(\d+):\d+:.*:/nonexistent:/usr/sbin/nologin$", users, re.M), users
    assert re.search(r"^asterisk:x:\d+:\d+:.*:/var/lib/asterisk:/usr/sbin/nologin$", users, re.M), users
    asterisk_dirs = rootfs.sh(f"stat -c '%a %U %G %n' {' '.join(ASTERISK_WRITABLE)}")
    for folder in ASTERISK_WRITABLE:
        assert f"750 asterisk asterisk {folder}\n" in asterisk_dirs, asterisk_dirs
    modes = rootfs.sh("stat -c '%a %U %G %n' /etc/pbx /etc/pbx/secrets /etc/pbx/secrets/*")
    assert "755 root root /etc/pbx\n" in modes and "700 root root /etc/pbx/secrets\n" in modes, modes
    files = re.findall(r"^(\d+) (\S+) (\S+) /etc/pbx/secrets/(\S+)$", modes, re.M)
    assert sorted(files) == [
        ("600", "root", "root", "ami-confgend.secret"),
        ("600", "root", "root", "ami-ctid.secret"),
    ], modes
    # the client's own cache of last good copies: Asterisk's user runs it (#exec), whichever came first
    assert rootfs.sh("stat -c '%a %U' /var/cache/pbx-confgen").strip() == "750 asterisk"
    # No local PostgreSQL: it says what is left to do, and how.
    assert "pbx-db-setup: no local PostgreSQL reachable" in install, install[-3000:]
    assert "pbx-admin db init --superuser-dsn" in install and "README.Debian" in install
    assert "ConditionPathExists" not in install

    # postinst a second time (dpkg-reconfigure runs it with "configure"): no failure, nothing changes.
    before = secrets_digest(rootfs)
    rootfs.sh("dpkg-reconfigure pbx-confdb pbx-agid pbx-ctid pbx-confgend asterisk", name="reconfigure")
    assert secrets_digest(rootfs) == before
    assert rootfs.sh(f"getent passwd {' '.join(USERS)} asterisk") == users

    with Timer("install test: Asterisk runs as its unit would"):
        asterisk_runs_as_its_unit(rootfs)

    with Timer("install test: apt-get purge"):
        rootfs.sh(
            "apt-get purge -y -q pbx pbx-agid pbx-ctid pbx-confgend pbx-confdb python3-confdb asterisk",
            name="purge",
        )
    assert not rootfs.sh(f"getent passwd {' '.join(USERS)} asterisk || true").strip()
    assert not rootfs.sh(f"getent group {' '.join(USERS)} asterisk || true").strip()
    left = rootfs.sh(
        "ls -d /etc/agid /etc/ctid /etc/confgend /etc/pbx-admin /etc/pbx-event-relay /etc/pbx"
        " /var/cache/confgend /var/cache/pbx-confgen /etc/asterisk /var/lib/asterisk /var/log/asterisk"
        " /var/cache/asterisk /var/spool/asterisk"
        " /etc/systemd/system/multi-user.target.wants/pbx-*"
        " /etc/systemd/system/multi-user.target.wants/asterisk.service"
        " 2>/dev/null || true"
    )
    assert not left.strip(), left


# asterisk.conf as the asterisk role writes it (the package's layout), every module of the package loaded,
# music on hold from Debian's asterisk-moh-opsound-gsm, errors in /var/log/asterisk/messages.
ASTERISK_CONFIG = {
    "asterisk.conf": """[directories]
astetcdir => /etc/asterisk
astmoddir => /usr/lib/asterisk/modules
astvarlibdir => /var/lib/asterisk
astdbdir => /var/lib/asterisk
astkeydir => /var/lib/asterisk
astdatadir => /usr/share/asterisk
astagidir => /usr/share/asterisk/agi-bin
astspooldir => /var/spool/asterisk
astrundir => /run/asterisk
astlogdir => /var/log/asterisk
astcachedir => /var/cache/asterisk
astsbindir => /usr/sbin

[options]
execincludes = yes
runuser = asterisk
rungroup = asterisk
""",
    "modules.conf": "[modules]\nautoload = yes\n",
    "logger.conf": "[logfiles]\nmessages => notice,warning,error\n",
    "musiconhold.conf": "[default]\nmode = files\ndirectory = moh\n",
}


def asterisk_runs_as_its_unit(rootfs: Rootfs) -> None:
    """ExecStart= as User=asterisk (no capability, no new privileges) with every module of the package:
    it boots, loads them all (or they decline for want of configuration: none fails to link), finds the
    sounds and the music on hold of Debian's packages where asterisk.conf says, and stops on SIGTERM."""
    for name, text in ASTERISK_CONFIG.items():
        (rootfs.path / "etc/asterisk" / name).write_text(text)
    proc, log = rootfs.start_unit(ASTERISK)
    cli = "asterisk -C /etc/asterisk/asterisk.conf -rx"
    try:
        for _ in range(60):
            if proc.poll() is not None:
                pytest.fail(f"asterisk exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            booted = rootfs.sh(f"{cli} 'core waitfullybooted' 2>&1 || true")
            if "fully booted" in booted:
                break
            time.sleep(1)
        else:
            pytest.fail(f"asterisk did not boot in 60 s:\n{log.read_text()[-3000:]}")
        version = rootfs.sh(f"{cli} 'core show version'")
        modules = rootfs.sh(f"{cli} 'module show'")
        sounds = rootfs.sh(f"{cli} 'core show sound hello-world'")
        moh = rootfs.sh(f"{cli} 'moh show files'")
        messages = (rootfs.path / "var/log/asterisk/messages").read_text()
    finally:
        status = rootfs.stop(proc)
    assert version.startswith("Asterisk 22."), version
    shipped = {p.name for p in (rootfs.path / "usr/lib/asterisk/modules").glob("*.so")}
    running = set(re.findall(r"^(\S+\.so)\s", modules, re.M))
    declined = {f"{m}.so" for m in re.findall(r"loader\.c: (\S+) declined to load", messages)}
    assert shipped - declined <= running, f"not loaded: {sorted(shipped - declined - running)}"
    for core in ("chan_pjsip.so", "res_pjsip.so", "app_dial.so", "res_agi.so", "codec_gsm.so", "res_srtp.so"):
        assert core in running, modules[-3000:]
    broken = [
        line for line in messages.splitlines() if re.search(r"dlopen|undefined symbol|Error loading", line)
    ]
    assert not broken, "\n".join(broken)
    assert "en" in sounds and "gsm" in sounds, sounds  # /usr/share/asterisk/sounds/en (Debian's alternative)
    assert "macroform" in moh, moh  # /usr/share/asterisk/moh
    assert status == 0, f"asterisk stopped by SIGTERM with status {status}:\n{log.read_text()[-3000:]}"
    report(
        f"install test: {version.split(' built')[0]} ran as user asterisk: {len(running)} modules running, "
        f"{len(declined)} declined for want of configuration, sounds and music on hold found; SIGTERM: 0"
    )
    for name in ASTERISK_CONFIG:
        (rootfs.path / "etc/asterisk" / name).unlink()


# --- upgrade N -> N+1 with a migration, local PostgreSQL --------------------------------------------------


class Pbx:
    """The PBX installed in a root filesystem with its PostgreSQL cluster on `pg_port`."""

    def __init__(self, rootfs: Rootfs, pg_port: int) -> None:
        self.rootfs = rootfs
        self.pg_port = pg_port

    def psql(self, sql: str) -> str:
        return self.rootfs.sh(f"runuser -u postgres -- psql -p {self.pg_port} -d pbx -XAtF' ' -c {sql!r}")

    def counts(self) -> dict[str, int]:
        rows = self.psql(COUNT_ROWS.replace("\n", " ")).splitlines()
        return {table: int(count) for table, count in (row.split() for row in rows if row.strip())}

    def daemons_answer(self, step: str, exten: str) -> None:
        """pbx-admin adds a user (an event in the outbox); then each daemon runs as its unit would and
        answers: agid (FastAGI ping, and DIAL for that user: a database decision), confgend (pbx-confgen
        gets a generated file), ctid (answers a CTI ping), the event relay (publishes the outbox on the
        bus)."""
        self.rootfs.sh(f"pbx-admin user add --firstname Probe --lastname {exten} --exten {exten}")
        user_id = self.psql("SELECT max(id) FROM users").strip()
        agi_port, cti_port, confgen_port = free_port(), free_port(), free_port()
        started = {
            "pbx-agid": self.rootfs.start_unit("pbx-agid", "--listen-port", str(agi_port)),
            "pbx-ctid": self.rootfs.start_unit(
                "pbx-ctid", "--cti-port", str(cti_port), "--ami-port", str(free_port())
            ),
            "pbx-confgend": self.rootfs.start_unit("pbx-confgend", "--port", str(confgen_port)),
            "pbx-event-relay": self.rootfs.start_unit("pbx-event-relay"),
        }
        try:
            for name, port in (
                ("pbx-agid", agi_port),
                ("pbx-ctid", cti_port),
                ("pbx-confgend", confgen_port),
            ):
                wait_listening(port, *started[name])

            peer = FakeAsterisk(("127.0.0.1", agi_port))
            pong = peer.run(env_for("ping"))
            assert pong.status == "OK" and pong.variables().get("AGID_PONG") == "pong", pong
            for _ in range(20):  # the first query may miss its 0.5 s budget while the pool connects
                decision = peer.run(env_for("incoming_user", user_id)).variables()
                if decision.get("AGID_DEGRADED") == "0":
                    break
            assert decision.get("AGID_STATUS") == "OK" and decision.get("AGID_DEGRADED") == "0", decision
            assert decision.get("AGID_ACTION") == "DIAL" and "PJSIP/" in decision.get("AGID_DIAL", ""), (
                decision
            )

            # ctid answers a CTI ping (its message schemas are installed: without them it refuses all)
            with socket.create_connection(("127.0.0.1", cti_port), timeout=10) as cti:
                stream = cti.makefile("rwb")
                welcome = json.loads(stream.readline())
                stream.write(b'{"class": "ping", "id": 1}\n')
                stream.flush()
                pong = json.loads(stream.readline())
            assert welcome.get("class") == "welcome" and pong.get("class") == "response", (welcome, pong)
            assert pong.get("ok") is True and pong.get("request") == "ping", pong

            pjsip = self.rootfs.sh(
                f"PBX_CONFGEN_CACHE_DIR=/tmp/confgen pbx-confgen --port {confgen_port} asterisk/pjsip.conf"
            )
            assert "[global]" in pjsip and "[demo-provider]" in pjsip, pjsip[-2000:]  # the demo's trunk

            outbox = "SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FROM outbox"
            for _ in range(100):
                unpublished, events = map(int, self.psql(outbox).split())
                if unpublished == 0:
                    break
                time.sleep(0.3)
            assert unpublished == 0 and events > 0, (unpublished, events)
            for name, (proc, log) in started.items():
                assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            report(
                f"upgrade test ({step}): agid answered ping and incoming_user={decision['AGID_ACTION']}, "
                f"pbx-confgen got asterisk/pjsip.conf ({len(pjsip)} bytes), ctid answered a CTI ping, "
                f"the relay published the outbox ({events} events)"
            )
        finally:
            for name, (proc, _) in started.items():
                status = self.rootfs.stop(proc)
                report(f"upgrade test ({step}): {name} stopped by SIGTERM, exit status {status}")


def test_upgrade_keeps_every_row_and_daemons_come_back(debs, debs_next, bookworm, rabbitmq):
    rootfs = bookworm()
    pbx = Pbx(rootfs, free_port())
    with Timer("upgrade test: PostgreSQL 15 in the chroot"):
        # No service starts from maintainer scripts (no systemd here; sysv scripts would start PostgreSQL
        # on port 5432 of the host's network): the cluster is started by hand on a free port.
        rootfs.sh("printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d")
        rootfs.sh(
            "apt-get update -q && apt-get install -y -q --no-install-recommends postgresql-15", name="pg"
        )
        # pg_conftool quotes string values itself: never pass it quotes (listen_addresses "'x'" gave
        # ''''x''' and a PostgreSQL that cannot resolve "'x'"). The default, localhost, is what we want.
        rootfs.sh(f"pg_conftool 15 main set port {pbx.pg_port} && pg_ctlcluster 15 main start")

    rootfs.add_repository(debs)
    with Timer(f"upgrade test: install {VERSION_N} (postinst sets the database up)"):
        install = rootfs.sh(
            "apt-get update -q && apt-get install -y -q --no-install-recommends pbx", name="install-n"
        )
    assert f"database pbx on port {pbx.pg_port} is initialised and migrated" in install, install[-3000:]
    modes = rootfs.sh("stat -c '%a %U %n' /etc/pbx/secrets/*")
    for secret in ("pbx_owner", "pbx_writer", "pbx_agid", "pbx_ctid", "pbx_confgend"):
        assert f"600 root /etc/pbx/secrets/{secret}.password\n" in modes, modes
        assert f"600 root /etc/pbx/secrets/{secret}.dsn\n" in modes, modes
    assert "600 root /etc/pbx/secrets/ami-ctid.secret" in modes

    # Idempotent with a database: a second configure reuses every secret and changes no role password.
    before = secrets_digest(rootfs)
    again = rootfs.sh("dpkg-reconfigure pbx-confdb", name="reconfigure")
    assert "is initialised and migrated" in again and secrets_digest(rootfs) == before

    # The bus is not local here: the administrator writes its URL as README.Debian says (the test's RabbitMQ).
    rootfs.sh(f"umask 077; echo {rabbitmq.url!r} >/etc/pbx/secrets/amqp.url")
    secrets = secrets_digest(rootfs)
    rootfs.sh("pbx-admin demo --users 20 --no-progress --credentials /root/demo.csv", name="demo")
    revision_n = rootfs.sh("pbx-admin db current")
    before_rows = pbx.counts()
    assert before_rows["users"] >= 20 and PROBE_TABLE not in before_rows, before_rows
    assert PROBE_REVISION not in revision_n
    with Timer(f"upgrade test: daemons of {VERSION_N}"):
        pbx.daemons_answer(VERSION_N, "1990")

    rootfs.add_repository(debs_next)
    with Timer(f"upgrade test: upgrade to {VERSION_NEXT} (postinst migrates)"):
        rootfs.sh("apt-get update -q && apt-get install -y -q --no-install-recommends pbx", name="upgrade")
    versions = rootfs.sh(f"dpkg-query -W -f '${{Package}} ${{Version}}\\n' {' '.join(sorted(INSTALLED))}")
    for package in INSTALLED:
        assert f"{package} {VERSION_NEXT}\n" in versions, versions
    assert PROBE_REVISION in rootfs.sh("pbx-admin db current")
    after_rows = pbx.counts()
    report(f"upgrade test: rows before {sum(before_rows.values())}, after {sum(after_rows.values())}")
    lost = {t: (n, after_rows.get(t)) for t, n in before_rows.items() if after_rows.get(t, -1) < n}
    assert not lost, f"rows lost in the upgrade: {lost}"
    assert after_rows[PROBE_TABLE] == 1
    assert secrets_digest(rootfs) == secrets, "the upgrade changed a secret"
    with Timer(f"upgrade test: daemons of {VERSION_NEXT}"):
        pbx.daemons_answer(VERSION_NEXT, "1991")

    # Purge removes what the packages made, never the database: its rows are all still there.
    kept = pbx.counts()
    rootfs.sh(
        "apt-get purge -y -q pbx pbx-agid pbx-ctid pbx-confgend pbx-confdb python3-confdb", name="purge"
    )
    assert not rootfs.sh("ls -A /etc/pbx 2>/dev/null || true").strip()
    assert pbx.counts() == kept
    rootfs.sh("pg_ctlcluster 15 main stop")
