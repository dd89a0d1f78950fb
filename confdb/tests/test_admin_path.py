"""Where pbx-admin is: .venv/bin, first on the PATH once run/stack.env is read, as the README says."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import stack

REPO = Path(__file__).resolve().parents[2]


def test_stack_env_puts_pbx_admin_on_the_path(tmp_path: Path) -> None:
    local = stack.Stack(tmp_path)
    stack.write_env(local)
    found = subprocess.run(
        ["sh", "-c", f"set -a; . {local.env_file}; set +a; command -v pbx-admin; echo $PATH"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert found[0] == str(REPO / ".venv" / "bin" / "pbx-admin")
    assert found[1] == f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin"  # first, the rest kept


def test_readme_says_where_pbx_admin_is() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Administering: pbx-admin", 1)[1].split("\n## ", 1)[0]
    assert ".venv/bin/pbx-admin" in section and "stack.env" in section
