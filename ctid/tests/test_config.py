"""ctid's settings: the defaults of the CTI listener and login limits, their checks, and --help."""

from __future__ import annotations

import pytest

from ctid.config import ConfigError, build
from ctid.main import HELP

BASE = {
    "ami": {"username": "ctid", "secret": "s"},
    "db": {"dsn_file": "/nonexistent"},
    "bus": {"url_file": "/nonexistent"},
}


def test_listener_and_login_defaults() -> None:
    cti = build(BASE).cti
    assert (cti.backlog, cti.login_account_failures, cti.login_account_max_delay) == (1024, 5, 60.0)
    assert build({**BASE, "cti": {"backlog": 4096}}).cti.backlog == 4096


@pytest.mark.parametrize(
    ("cti", "named"),
    [
        ({"backlog": 0}, "cti.backlog"),
        ({"backlog": "1024"}, "cti.backlog"),
        ({"login_account_failures": 0}, "cti.login_account_failures"),
        ({"login_account_max_delay": -1}, "cti.login_account_max_delay"),
    ],
)
def test_errors_name_the_setting(cti: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        build({**BASE, "cti": cti})


def test_help_lists_the_keys() -> None:
    for key in ("backlog (1024)", "login_account_failures (5)", "login_account_max_delay (60)"):
        assert key in HELP
