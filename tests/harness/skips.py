"""pytest plugin: a test run fails when a test is skipped for a reason that is not explicitly allowed.

Loaded for every run by ``-p harness.skips`` in the root pyproject.toml. The allowed reasons are the
regular expressions of ``tests/allowed-skips.txt`` (``--allowed-skips FILE`` for another list): one a line,
each after a comment that says why, matched with ``re.search`` against the reason as pytest prints it.
At the end of the session every skip reason is printed with its count; when one matches none of the
expressions, the session exits 1 (tests failed) even if every test that ran passed. Skips while
collecting (a module-level ``pytest.skip``, ``importorskip``) count too; xfails do not.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

DEFAULT_LIST = Path(__file__).resolve().parents[1] / "allowed-skips.txt"


class AllowedSkips:
    """The allowed skip reasons of one list file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.patterns: list[re.Pattern[str]] = []
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise pytest.UsageError(f"allowed skips: cannot read {path}: {exc}") from exc
        commented = False
        for number, line in enumerate(lines, 1):
            if not line.strip():
                commented = False
            elif line.startswith("#"):
                commented = True
            elif not commented:
                raise pytest.UsageError(f"{path}:{number}: {line!r} has no comment above it saying why")
            else:
                try:
                    self.patterns.append(re.compile(line))
                except re.error as exc:
                    raise pytest.UsageError(f"{path}:{number}: {line!r}: {exc}") from exc

    def allows(self, reason: str) -> bool:
        return any(p.search(reason) for p in self.patterns)


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return "" if reason == "Skipped" else reason.removeprefix("Skipped: ")


class SkipGuard:
    def __init__(self, allowed: AllowedSkips) -> None:
        self.allowed = allowed
        self.reasons: Counter[str] = Counter()

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.reasons[_reason(report)] += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def unexpected(self) -> list[str]:
        return [reason for reason in self.reasons if not self.allowed.allows(reason)]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.unexpected() and session.exitstatus in (
            pytest.ExitCode.OK,
            pytest.ExitCode.NO_TESTS_COLLECTED,
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        tr = terminalreporter
        tr.section("skip reasons")
        if not self.reasons:
            tr.write_line("no test skipped")
            return
        for reason, count in sorted(self.reasons.items(), key=lambda item: (-item[1], item[0])):
            allowed = self.allowed.allows(reason)
            verdict = "allowed" if allowed else "NOT ALLOWED"
            tr.write_line(f"{count:6d}  {verdict:11}  {reason or '(no reason)'}", red=not allowed)
        unexpected = self.unexpected()
        if unexpected:
            tr.write_line(
                f"{len(unexpected)} skip reason(s) not in {self.allowed.path}: the run fails "
                "(make the test run, or fail, or allow the reason there with a comment saying why)",
                red=True,
                bold=True,
            )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("pbx skips").addoption(
        "--allowed-skips",
        default=str(DEFAULT_LIST),
        metavar="FILE",
        help="regular expressions of the allowed skip reasons, each after a comment (default: %(default)s)",
    )


def pytest_configure(config: pytest.Config) -> None:
    allowed = AllowedSkips(Path(config.getoption("allowed_skips")))
    config.pluginmanager.register(SkipGuard(allowed), "pbx-skip-guard")
