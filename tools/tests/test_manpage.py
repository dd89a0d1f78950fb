"""Each tool's --help reads like a man page."""

from __future__ import annotations

import pytest

from pbxtools.manpage import format_prose
from testkit.tools.runners import run_tool

SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "ARGUMENTS", "OPTIONS", "EXAMPLES", "EXIT STATUS", "SEE ALSO"]

OPTIONS = {
    "ctispy": [
        "--pretty-print",
        "--raw",
        "--strip KEY",
        "--include KEY=VALUE",
        "--no-client",
        "--no-server",
        "--loop",
        "--listen-address ADDRESS",
        "--port PORT",
        "--server-port PORT",
        "SERVER",
    ],
    "ctisave": [
        "--strip KEY",
        "CLIENT_FILE",
        "SERVER_FILE",
        "--loop",
        "--port PORT",
        "--server-port PORT",
        "SERVER",
    ],
    "ctistat": ["--json", "--loop", "--port PORT", "--server-port PORT", "SERVER"],
    "lockgraph": ["--output FILE", "--format FORMAT", "--layout ENGINE", "--all-threads", "FILE"],
}


@pytest.mark.parametrize("tool", sorted(OPTIONS))
def test_help_is_a_man_page(tool: str) -> None:
    result = run_tool(tool, "--help", env={"COLUMNS": "100"})
    assert result.returncode == 0
    text = result.stdout.decode()
    headings = [line for line in text.splitlines() if line and not line[0].isspace()]
    assert headings == SECTIONS
    assert text.splitlines()[1].startswith(f"    {tool} - ")
    for option in OPTIONS[tool]:
        assert option in text, option
    assert all(len(line) <= 100 for line in text.splitlines()), max(text.splitlines(), key=len)
    exit_status = text.split("EXIT STATUS\n")[1].split("\n\n")[0]
    assert " 0 " in exit_status and " 1 " in exit_status and " 2 " in exit_status
    examples = text.split("EXAMPLES\n")[1].split("EXIT STATUS")[0]
    assert f"        {tool} " in examples


def test_usage_line_on_errors_is_short() -> None:
    result = run_tool("ctistat")
    assert result.returncode == 2
    assert result.stderr.decode().startswith("usage: ctistat ")
    assert "DESCRIPTION" not in result.stderr.decode()


def test_format_prose() -> None:
    text = "A first paragraph that is long enough to be wrapped somewhere.\n\n    kept  as is\n    too\n"
    assert format_prose(text, width=30) == (
        "    A first paragraph that is\n    long enough to be wrapped\n    somewhere.\n\n"
        "        kept  as is\n        too"
    )
