"""Our Asterisk package (issue 13): packages/asterisk/ built by packages/build-asterisk.

- the module set: modules.list covers every module confgend's modules.conf loads, and the built package
  holds exactly modules.list (so every module confgend loads exists in the package);
- lintian: no error, warnings only among the kept ones (below, each with its reason);
- the package's layout (README.md of packages/asterisk), no sample configuration, its dependencies;
- its unit: the hardening directives and systemd-analyze security's rating;
- the cache: a second build is a cache hit in seconds; the key follows packages/asterisk/'s content;
- a pinned version the archive no longer has fails with a message naming it.

Installing it in a clean bookworm, running it as its unit would and purging it are part of
test_debs.py's install test (with the rest of the PBX). The build itself (cold: about 10 minutes on 2
CPUs) is cached outside the clone: `make test` builds it first (make asterisk-deb).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from confgend.generators.modules import MODULES

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "packages" / "asterisk"
BUILD_ASTERISK = ROOT / "packages" / "build-asterisk"
SYSTEM_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C.UTF-8",
    "HOME": os.environ.get("HOME", "/root"),
}
for _name in ("PBX_BUILD_CACHE", "PBX_DEBIAN_MIRROR", "PBX_BUILD_JOBS"):
    if _name in os.environ:
        SYSTEM_ENV[_name] = os.environ[_name]
# Lintian warnings kept for the asterisk package, and why (packages/asterisk/README.md lists them too).
KEPT_LINTIAN_WARNINGS = {
    # The private pjproject library (libasteriskpj.so.2) lives in the package that uses it, like Debian's.
    "package-name-doesnt-match-sonames",
}
# systemd-analyze security ratings that meet the "OK or better" (as for our other units).
GOOD_RATINGS = {"OK", "SAFE", "PERFECT"}
UNIT_DIRECTIVES = (
    "Type=notify",
    "User=asterisk",
    "Group=asterisk",
    "ExecStart=/usr/sbin/asterisk -f -m -q -C /etc/asterisk/asterisk.conf",
    "RuntimeDirectory=asterisk",
    "Restart=on-failure",
    "StartLimitBurst=",
    "StartLimitIntervalSec=",
    "ProtectSystem=strict",
    "ReadWritePaths=/var/lib/asterisk /var/spool/asterisk /var/log/asterisk /var/cache/asterisk\n",
    "ReadWritePaths=-/var/cache/pbx-confgen\n",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=\n",
    "RestrictAddressFamilies=",
    "SystemCallFilter=@system-service",
    "StandardError=journal",
)

pytestmark = pytest.mark.timeout(3600)  # a cold build of Asterisk takes about 10 minutes


def run(cmd: list[str], timeout: float = 900, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Debian's tools only (no venv on PATH); on failure, fail with the end of the output."""
    env = {**SYSTEM_ENV, **kwargs.pop("env", {})}
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)[:300]} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-6000:]}")
    return proc


def listed_modules() -> list[str]:
    names = []
    for line in (PKG / "modules.list").read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return names


@pytest.fixture(scope="session")
def asterisk_deb(tmp_path_factory, summary_lines) -> Path:
    """This machine's asterisk .deb, from packages/build-asterisk (its cache: seconds when unchanged)."""
    for tool in ("dpkg-buildpackage", "dscverify", "lintian", "systemd-analyze"):
        if not shutil.which(tool, path=SYSTEM_ENV["PATH"]):
            pytest.fail(f"tests/packaging needs {tool}: run `make apt-deps` (Makefile APT_PACKAGES)")
    out = tmp_path_factory.mktemp("asterisk-deb")
    started = time.monotonic()
    proc = run([str(BUILD_ASTERISK), "-o", str(out)], timeout=3000)
    summary_lines.append(f"time: packages/build-asterisk: {time.monotonic() - started:.0f} s")
    summary_lines.extend(f"  {line}" for line in proc.stdout.splitlines() if "build-asterisk:" in line)
    (deb,) = out.glob("asterisk_*.deb")
    return deb


def contents(deb: Path) -> list[str]:
    """The paths in the package ("./usr/sbin/asterisk"), symlinks with " -> target"."""
    listing = run(["dpkg-deb", "-c", str(deb)]).stdout
    return [line.split(None, 5)[5] for line in listing.splitlines()]


# --- the module set ---------------------------------------------------------------------------------------


def test_modules_list_covers_every_module_confgend_loads() -> None:
    listed = set(listed_modules())
    assert len(listed) == len(listed_modules()), "a module is listed twice in modules.list"
    missing = sorted(m.removesuffix(".so") for m in MODULES if m.removesuffix(".so") not in listed)
    assert not missing, (
        f"confgend's modules.conf loads modules that packages/asterisk/modules.list lacks: {missing}"
    )


def test_package_holds_exactly_modules_list_and_every_module_confgend_loads(asterisk_deb, summary_lines):
    shipped = {
        Path(p).name.removesuffix(".so")
        for p in contents(asterisk_deb)
        if p.startswith("./usr/lib/asterisk/modules/") and p.endswith(".so")
    }
    listed = set(listed_modules())
    assert shipped == listed, (
        f"listed, not shipped: {sorted(listed - shipped)}; shipped, not listed: {sorted(shipped - listed)}"
    )
    loaded = {m.removesuffix(".so") for m in MODULES}
    assert loaded <= shipped, f"confgend loads modules the package does not have: {sorted(loaded - shipped)}"
    summary_lines.append(
        f"asterisk: {len(shipped)} modules, {len(loaded)} of them loaded by confgend's modules.conf"
    )


# --- the package ------------------------------------------------------------------------------------------


def test_lintian_reports_no_errors_and_only_kept_warnings(asterisk_deb, summary_lines):
    started = time.monotonic()
    proc = run(["lintian", "--tag-display-limit", "0", str(asterisk_deb)], check=False, timeout=600)
    summary_lines.append(f"time: lintian asterisk: {time.monotonic() - started:.0f} s")
    tags = [line for line in proc.stdout.splitlines() if re.match(r"^[EWIXPO]: ", line)]
    summary_lines.extend(f"lintian: {tag}" for tag in tags or ["asterisk: no tags"])
    assert proc.returncode in (0, 1), proc.stderr  # 1: tags of error level, checked below
    errors = [t for t in tags if t.startswith("E: ")]
    unexpected = [t for t in tags if t.startswith("W: ") and t.split()[2] not in KEPT_LINTIAN_WARNINGS]
    assert not errors, "\n".join(errors)
    assert not unexpected, "\n".join(unexpected)


def test_layout_dependencies_and_no_sample_configuration(asterisk_deb):
    paths = contents(asterisk_deb)
    for path in (
        "./usr/sbin/asterisk",
        "./usr/lib/asterisk/modules/chan_pjsip.so",
        "./usr/lib/libasteriskpj.so.2",
        "./usr/share/asterisk/documentation/core-en_US.xml",
        "./usr/share/asterisk/sounds/",
        "./usr/share/asterisk/moh/",
        "./usr/share/asterisk/agi-bin/",
        "./var/lib/asterisk/keys/",
        "./var/spool/asterisk/voicemail/",
        "./var/log/asterisk/",
        "./var/cache/asterisk/",
        "./lib/systemd/system/asterisk.service",
        "./etc/asterisk/",
        "./usr/share/doc/asterisk/README.Debian",
        "./usr/share/doc/asterisk/copyright",
    ):
        assert path in paths, f"{path} is not in the package"
    etc = [p for p in paths if p.startswith("./etc/") and p != "./etc/asterisk/" and not p.endswith("/")]
    assert not etc, f"the package ships configuration files: {etc}"
    assert not [p for p in paths if p.startswith(("./var/run", "./run"))]
    fields = run(
        ["dpkg-deb", "-f", str(asterisk_deb), "Package", "Depends", "Version", "Architecture"]
    ).stdout
    for needed in (
        "asterisk-core-sounds-en-gsm",
        "asterisk-core-sounds-en,",
        "asterisk-moh-opsound-gsm",
        "libc6",
    ):
        assert needed in fields, fields
    version = (PKG / "source-version").read_text()
    source = re.search(r"^ASTERISK_SOURCE_VERSION=(\S+)$", version, re.M).group(1)
    revision = re.search(r"^PBX_REVISION=(\S+)$", version, re.M).group(1)
    assert f"Version: {source}+pbx{revision}\n" in fields and "Package: asterisk\n" in fields, fields


def test_unit_is_hardened_and_rated_ok(asterisk_deb, tmp_path, summary_lines):
    run(["dpkg-deb", "-x", str(asterisk_deb), str(tmp_path)])
    unit = tmp_path / "lib" / "systemd" / "system" / "asterisk.service"
    text = unit.read_text()
    for directive in UNIT_DIRECTIVES:
        assert directive in text, f"asterisk.service: no {directive!r}"
    assert "CAP_" not in text, "asterisk.service needs no capability (every port is above 1024)"
    out = run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)], cwd=tmp_path).stdout
    m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", out)
    assert m, out[-2000:]
    summary_lines.append(f"systemd-analyze security asterisk.service: exposure {m.group(1)} {m.group(2)}")
    assert m.group(2) in GOOD_RATINGS, out[-3000:]


def test_build_dependencies_are_in_the_makefile() -> None:
    control = (PKG / "debian" / "control").read_text()
    block = re.search(r"^Build-Depends:(.*?)^\S", control, re.M | re.S).group(1)
    deps = {re.split(r"[\s(\[]", d.strip())[0] for d in block.split(",") if d.strip()}
    deps.discard("debhelper-compat")
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    apt = set()
    for m in re.finditer(r"^APT_PACKAGES \+?:?= (.*)$", makefile, re.M):
        apt.update(m.group(1).split())
    missing = deps - apt
    assert not missing, (
        f"Build-Depends of packages/asterisk missing from the Makefile's APT_PACKAGES: {missing}"
    )
    assert {"devscripts", "debian-keyring", "asterisk-core-sounds-en-gsm", "asterisk-moh-opsound-gsm"} <= apt


# --- the cache --------------------------------------------------------------------------------------------


def tree_copy(base: Path) -> Path:
    """A tree holding only packages/asterisk/, as build-debs -s hands it over."""
    shutil.copytree(PKG, base / "packages" / "asterisk")
    return base


def key(*args: str) -> str:
    return run([str(BUILD_ASTERISK), "--print-key", *args]).stdout.strip()


def test_cache_key_follows_the_packaging_only(tmp_path):
    mine = key()
    copy = tree_copy(tmp_path / "copy")
    assert key("--tree", str(copy)) == mine, "an identical copy of packages/asterisk/ has another key"
    (copy / "packages/asterisk/README.md").write_text("documentation is not built\n")
    assert key("--tree", str(copy)) == mine, "README.md changed the key"
    rules = copy / "packages/asterisk/debian/rules"
    rules.write_text(rules.read_text() + "\n# a change\n")
    assert key("--tree", str(copy)) != mine, "a change of debian/rules kept the key"
    if os.uname().machine == "x86_64":
        assert key("--arch", "i386") != mine, "the architecture is not in the key"


def test_a_second_build_is_a_cache_hit_in_seconds(asterisk_deb, tmp_path, summary_lines):
    started = time.monotonic()
    proc = run([str(BUILD_ASTERISK), "-o", str(tmp_path)], timeout=300)
    took = time.monotonic() - started
    summary_lines.append(f"time: packages/build-asterisk, warm (cache hit): {took:.1f} s")
    assert "cached" in proc.stdout and "build: asterisk" not in proc.stdout, proc.stdout
    assert (tmp_path / asterisk_deb.name).read_bytes() == asterisk_deb.read_bytes()
    assert took < 30, f"a cache hit took {took:.0f} s"


def test_a_version_the_archive_no_longer_has_is_named(tmp_path):
    # A cache of its own (no lock shared with a build), with the source index already downloaded when
    # there is one: apt then only checks that it is current.
    cache = tmp_path / "cache"
    known = Path(os.environ.get("PBX_BUILD_CACHE", "/var/cache/pbx-build/asterisk")) / "apt"
    if known.is_dir():
        shutil.copytree(known, cache / "apt")
    copy = tree_copy(tmp_path / "copy")
    pinned = copy / "packages/asterisk/source-version"
    pinned.write_text(
        re.sub(r"(?m)^ASTERISK_SOURCE_VERSION=.*$", "ASTERISK_SOURCE_VERSION=1:0.0.1-1", pinned.read_text())
    )
    proc = run(
        [str(BUILD_ASTERISK), "--fetch-only", "--tree", str(copy)],
        check=False,
        timeout=300,
        env={"PBX_BUILD_CACHE": str(cache)},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Debian's archive no longer has asterisk 1:0.0.1-1" in output, output
    assert "packages/asterisk/source-version" in output, output
