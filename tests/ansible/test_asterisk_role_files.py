"""The Asterisk role writes a stub for exactly the files confgend generates: a file confgend adds but the
role forgets is one Asterisk reads from nowhere (or from a stale sample)."""

from __future__ import annotations

from pathlib import Path

import yaml

from confgend.generators import GENERATORS

ROLE_DEFAULTS = Path(__file__).resolve().parents[2] / "roles/asterisk/defaults/main.yml"


def test_the_role_stubs_every_generated_file() -> None:
    listed = yaml.safe_load(ROLE_DEFAULTS.read_text())["asterisk_generated_files"]
    generated = {name.split("/", 1)[1] for name in GENERATORS if name.startswith("asterisk/")}
    assert len(listed) == len(set(listed))
    assert set(listed) == generated
