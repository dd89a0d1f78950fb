"""Secrets generated at install are safe on any command line.

A URL-safe token begins with "-" once in 64 draws, and rabbitmqctl then takes the password for an
option: the first boot failed to create the bus user (seen in CI). Install scripts draw hexadecimal
secrets, and every rabbitmqctl call that passes a password ends its options with "--".
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPTS = [
    *sorted((ROOT / "roles").rglob("*.j2")),
    *sorted((ROOT / "roles").rglob("*.yml")),
    *sorted(p for p in (ROOT / "packages").rglob("*") if p.is_file() and "debian" in p.parts),
]


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        return ""


def test_install_scripts_draw_hexadecimal_secrets() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in INSTALL_SCRIPTS if "token_urlsafe" in _text(p)]
    assert not offenders, f"token_urlsafe can begin with '-': {offenders}"


def test_rabbitmqctl_password_arguments_follow_double_dash() -> None:
    calls = [
        (str(p.relative_to(ROOT)), line.strip())
        for p in INSTALL_SCRIPTS
        for line in _text(p).splitlines()
        if re.search(r"rabbitmqctl\b.*\b(add_user|change_password|authenticate_user)\b", line)
    ]
    assert calls, "no rabbitmqctl user call found: the scan looks in the wrong place"
    missing = [c for c in calls if not re.search(r"(add_user|change_password|authenticate_user) -- ", c[1])]
    assert not missing, missing
