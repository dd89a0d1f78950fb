"""Where the harness's Asterisk comes from: a folder laid out like ``/`` holding ``usr/sbin/asterisk``.

In order: ``$PBX_ASTERISK_ROOT``; our package ``build/debs/asterisk_*_amd64.deb`` unpacked with
``dpkg-deb -x`` (once per .deb content, cached by its sha256 under ``build/asterisk-root/``); an
installed ``/usr/sbin/asterisk``. Nothing found is an error that says how to get one, never a skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.procs import ServerError

REPO = Path(__file__).resolve().parents[2]
DEBS_DIR = REPO / "build" / "debs"
CACHE_DIR = REPO / "build" / "asterisk-root"
ENV_ROOT = "PBX_ASTERISK_ROOT"
_MODULE_DIRS = ("usr/lib/asterisk/modules", "usr/lib/x86_64-linux-gnu/asterisk/modules")
_LIB_DIRS = ("usr/lib", "usr/lib/x86_64-linux-gnu", "usr/lib/asterisk")
_DOC_DIRS = ("usr/share/asterisk/documentation", "var/lib/asterisk/documentation")
_SYSTEM_SHARE = Path("/usr/share/asterisk")  # bookworm's asterisk-core-sounds-* and asterisk-moh-opsound-*


@dataclass(frozen=True)
class AsteriskInstall:
    """The files of one Asterisk build: binary, modules, its own libraries, sounds and docs."""

    root: Path
    origin: str  # how it was found, for messages

    @property
    def binary(self) -> Path:
        return self.root / "usr" / "sbin" / "asterisk"

    @property
    def modules_dir(self) -> Path:
        found = [self.root / d for d in _MODULE_DIRS if (self.root / d / "chan_pjsip.so").exists()]
        return found[0] if found else self.root / _MODULE_DIRS[0]

    @property
    def library_path(self) -> str:
        """For LD_LIBRARY_PATH: the folders holding libasteriskpj / libasteriskssl (none when installed)."""
        if self.root == Path("/"):
            return ""
        return ":".join(str(self.root / d) for d in _LIB_DIRS if (self.root / d).is_dir())

    def shared(self, name: str) -> Path | None:
        """The package's ``usr/share/asterisk/<name>`` (sounds, moh), else the system's, else None."""
        for base in (self.root / "usr/share/asterisk", self.root / "var/lib/asterisk", _SYSTEM_SHARE):
            path = base / name
            if path.is_dir() and any(path.iterdir()):
                return path
        return None

    @property
    def documentation(self) -> Path | None:
        return next((self.root / d for d in _DOC_DIRS if (self.root / d / "core-en_US.xml").exists()), None)

    def check(self) -> AsteriskInstall:
        if not os.access(self.binary, os.X_OK):
            raise ServerError(f"no executable {self.binary} in the Asterisk of {self.origin}")
        if not (self.modules_dir / "chan_pjsip.so").exists():
            raise ServerError(f"no chan_pjsip.so under {self.root} ({self.origin}): looked in {_MODULE_DIRS}")
        return self


def find_install() -> AsteriskInstall:
    """The Asterisk to run (see the module's docstring)."""
    if root := os.environ.get(ENV_ROOT):
        return AsteriskInstall(Path(root).absolute(), f"${ENV_ROOT}={root}").check()
    debs = sorted(DEBS_DIR.glob("asterisk_*_amd64.deb"))
    if debs:
        return AsteriskInstall(unpacked(debs[-1]), str(debs[-1])).check()
    if Path("/usr/sbin/asterisk").exists():
        return AsteriskInstall(Path("/"), "the installed /usr/sbin/asterisk").check()
    raise ServerError(
        f"no Asterisk to run: set {ENV_ROOT} to a folder holding usr/sbin/asterisk and "
        "usr/lib/asterisk/modules, or build our package "
        f"(`make asterisk-deb`: {DEBS_DIR}/asterisk_*_amd64.deb)"
    )


def unpacked(deb: Path) -> Path:
    """``dpkg-deb -x`` of ``deb`` (and of its sibling asterisk-* packages of the same version) into a
    cache folder named by their sha256; made once, atomically (a half-unpacked folder is never used)."""
    version = deb.name.split("_")[1]
    siblings = sorted(
        p
        for p in deb.parent.glob(f"asterisk*_{version}_*.deb")
        if p.name.endswith(("_amd64.deb", "_all.deb"))
    )
    digest = hashlib.sha256()
    for each in siblings:
        digest.update(each.name.encode() + b"\0" + _sha256(each).encode())
    target = CACHE_DIR / digest.hexdigest()[:24]
    if (target / "usr" / "sbin" / "asterisk").exists():
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=CACHE_DIR))
    try:
        for each in siblings:
            done = subprocess.run(["dpkg-deb", "-x", str(each), str(work)], capture_output=True, text=True)
            if done.returncode != 0:
                raise ServerError(f"dpkg-deb -x {each} failed: {done.stderr.strip()}")
        work.chmod(0o755)
        try:
            work.rename(target)
        except OSError:  # another session unpacked the same packages meanwhile
            if not (target / "usr" / "sbin" / "asterisk").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
