"""Makes the repository's test harness (real PostgreSQL and RabbitMQ fixtures) available when these tests
run with ctid's own pytest settings (``pytest ctid``), as it is with the repository's (``make test``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HARNESS = Path(__file__).resolve().parents[2] / "tests"


def pytest_configure(config: pytest.Config) -> None:
    if _HARNESS.is_dir() and str(_HARNESS) not in sys.path:
        sys.path.insert(0, str(_HARNESS))
    for name in ("harness.plugin", "harness.pbx"):
        if not config.pluginmanager.has_plugin(name):
            config.pluginmanager.import_plugin(name)
