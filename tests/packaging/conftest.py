"""The section at the end of pytest's output where tests/packaging prints timings, the exposure levels
of the units and the lintian warnings kept (pytest's -s is not used in CI)."""

from __future__ import annotations

import pytest

_lines: list[str] = []


@pytest.fixture(scope="session")
def summary_lines() -> list[str]:
    return _lines


def pytest_terminal_summary(terminalreporter) -> None:
    if _lines:
        terminalreporter.section("Debian packaging (tests/packaging)")
        for line in _lines:
            terminalreporter.write_line(line)
