"""harness.skips: a skip whose reason is not allowed fails the run; an allowed one does not. Each case is a
real pytest run (a subprocess) of a tiny test file against a tiny allowed list."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from harness.skips import DEFAULT_LIST, AllowedSkips

TESTS = Path(__file__).resolve().parents[1]

TEST_FILE = """
import pytest

def test_runs():
    pass

def test_allowed():
    pytest.skip("acceptance: no target (here)")

@pytest.mark.skipif(True, reason={reason!r})
def test_other():
    pass

@pytest.mark.xfail(reason="an xfail is not a skip", strict=True)
def test_xfail():
    assert False
"""

ALLOWED = "# why: the acceptance suite has no target in this run\n^acceptance: no target\n"


def _pytest(tmp_path: Path, reason: str, allowed: str = ALLOWED, file: str = "test_tiny.py"):
    (tmp_path / "test_tiny.py").write_text(TEST_FILE.format(reason=reason))
    (tmp_path / "allowed.txt").write_text(allowed)
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.skips", "--allowed-skips", "allowed.txt",
         "-p", "no:cacheprovider", "-q", file],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_an_unexpected_skip_fails_the_run_and_is_named(tmp_path: Path) -> None:
    done = _pytest(tmp_path, reason="asterisklint is not installed")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed, 2 skipped, 1 xfailed" in done.stdout
    assert re.search(r"1 +allowed +acceptance: no target \(here\)", done.stdout), done.stdout
    assert re.search(r"1 +NOT ALLOWED +asterisklint is not installed", done.stdout), done.stdout
    assert "not in allowed.txt: the run fails" in done.stdout


def test_allowed_skips_and_xfails_pass(tmp_path: Path) -> None:
    done = _pytest(tmp_path, reason="acceptance: no target (another)")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skip reasons" in done.stdout
    assert (
        "NOT ALLOWED" not in done.stdout and "xfail is not a skip" not in done.stdout.split("skip reasons")[1]
    )


def test_a_failing_run_stays_failed_and_a_collection_skip_counts(tmp_path: Path) -> None:
    (tmp_path / "test_module_skip.py").write_text(
        "import pytest\npytest.skip('whole module', allow_module_level=True)\n"
    )
    done = _pytest(tmp_path, reason="acceptance: no target")
    assert done.returncode == 0, done.stdout  # test_module_skip.py is not on the command line
    done = _pytest(tmp_path, reason="acceptance: no target", file="test_module_skip.py")
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"1 +NOT ALLOWED +whole module", done.stdout), done.stdout


def test_a_pattern_without_its_reason_is_refused(tmp_path: Path) -> None:
    done = _pytest(tmp_path, reason="x", allowed="^acceptance: no target\n")
    assert done.returncode == 4, done.stdout + done.stderr  # usage error
    assert "has no comment above it saying why" in done.stderr


def test_the_repository_list_allows_only_targets_that_do_not_apply() -> None:
    allowed = AllowedSkips(DEFAULT_LIST)
    assert allowed.allows("acceptance: no target (--rootfs, --vm-image or --hosts); `make acceptance`")
    assert allowed.allows("needs a running system: a chroot target has no services, ports or journal")
    assert allowed.allows("only a root filesystem (image) must be free of per-machine secrets")
    for reason in (
        "asterisklint is installed by make deps",
        "/etc/pbx/secrets does not exist on this target",
        "mmdebstrap, chroot and systemd-nspawn need root",
        "no vagrant (Makefile APT_PACKAGES has it)",
        "",
    ):
        assert not allowed.allows(reason), reason
