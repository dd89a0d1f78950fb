"""Where the harness's Asterisk comes from: $PBX_ASTERISK_ROOT, else our .deb unpacked once per content."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import asterisk_root
from harness.procs import ServerError


def fake_deb(where: Path, name: str, version: str, marker: str) -> Path:
    """A .deb holding what find_install checks: usr/sbin/asterisk and chan_pjsip.so."""
    tree = where / f"tree-{name}-{marker}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: t <t@example.org>\n"
        "Description: test\n"
    )
    binary = tree / "usr" / "sbin" / "asterisk"
    binary.parent.mkdir(parents=True)
    binary.write_text(f"#!/bin/sh\necho {marker}\n")
    binary.chmod(0o755)
    modules = tree / "usr" / "lib" / "asterisk" / "modules"
    modules.mkdir(parents=True)
    (modules / "chan_pjsip.so").write_text(marker)
    deb = where / f"{name}_{version}_amd64.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-b", str(tree), str(deb)], check=True, capture_output=True
    )
    return deb


@pytest.fixture
def debs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(asterisk_root.ENV_ROOT, raising=False)
    monkeypatch.setattr(asterisk_root, "DEBS_DIR", tmp_path / "debs")
    monkeypatch.setattr(asterisk_root, "CACHE_DIR", tmp_path / "cache")
    (tmp_path / "debs").mkdir()
    return tmp_path / "debs"


def test_the_deb_is_unpacked_once_per_content(debs: Path) -> None:
    fake_deb(debs, "asterisk", "22.10.1-1", "first")
    install = asterisk_root.find_install()
    assert install.binary.read_text().endswith("echo first\n")
    assert install.modules_dir.name == "modules" and install.origin.endswith("asterisk_22.10.1-1_amd64.deb")
    assert asterisk_root.find_install().root == install.root  # cached
    fake_deb(debs, "asterisk", "22.10.1-1", "second")  # rebuilt, same name: unpacked again
    again = asterisk_root.find_install()
    assert again.root != install.root and again.binary.read_text().endswith("echo second\n")


def test_the_environment_wins(debs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_deb(debs, "asterisk", "22.10.1-1", "deb")
    root = asterisk_root.unpacked(debs / "asterisk_22.10.1-1_amd64.deb")
    monkeypatch.setenv(asterisk_root.ENV_ROOT, str(root))
    assert asterisk_root.find_install().origin == f"${asterisk_root.ENV_ROOT}={root}"
    monkeypatch.setenv(asterisk_root.ENV_ROOT, str(tmp_path / "nothing"))
    with pytest.raises(ServerError, match=r"no executable .*usr/sbin/asterisk"):
        asterisk_root.find_install()
