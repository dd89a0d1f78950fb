"""Running pbx-admin in a test: its exit status, output and JSON, against one test database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from confdb.cli import main as cli
from testkit.pbxdb import PbxDatabase


class Admin:
    """Runs pbx-admin against one database, with no configuration file and no bus."""

    def __init__(self, dsn: str, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.dsn, self.config, self.capsys = dsn, config, capsys

    def __call__(self, *argv: str, status: int = 0) -> str:
        """stdout of a run that exits `status` (stderr when `status` is not 0)."""
        code = cli.main(["--config", str(self.config), "--dsn", self.dsn, *argv])
        out, err = self.capsys.readouterr()
        assert code == status, f"pbx-admin {' '.join(argv)} -> {code}\nstdout: {out}\nstderr: {err}"
        return err if status else out

    def json(self, *argv: str) -> Any:
        return json.loads(self("--json", *argv))


def make_admin(
    pbx_db: PbxDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Admin:
    monkeypatch.delenv("PBX_ADMIN_DSN", raising=False)
    monkeypatch.delenv("PBX_ADMIN_BUS_URL", raising=False)
    return Admin(pbx_db.dsn(), tmp_path / "absent.yml", capsys)
