"""The CTI command table: it matches the client schemas both ways, and the server refuses to start when
it does not."""

from __future__ import annotations

import pytest
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from ctid.cti import commands
from ctid.cti.commands import COMMANDS, Command, CommandTableError, check
from ctid.cti.server import CTIConfig, CTIServer
from ctid.cti.validator import names
from ctid.directory import Directory
from ctid.state.tracker import CallTracker


def test_every_schema_has_a_handler_and_every_handler_a_schema() -> None:
    check(COMMANDS, names("client"))
    assert set(COMMANDS) == set(names("client"))


def test_only_login_and_ping_are_open_before_login() -> None:
    assert {name for name, cmd in COMMANDS.items() if cmd.before_login} == {"login", "ping"}


def test_a_schema_without_a_handler_is_named() -> None:
    table = {k: v for k, v in COMMANDS.items() if k != "hangup"}
    with pytest.raises(CommandTableError, match=r"'hangup' has a schema .* but no handler"):
        check(table, names("client"))


def test_a_handler_without_a_schema_is_named() -> None:
    table = {**COMMANDS, "teleport": Command(lambda req, env: None, None)}
    with pytest.raises(CommandTableError, match=r"'teleport' has a handler but no schema"):
        check(table, names("client"))


def test_an_unknown_environment_is_named() -> None:
    table = {**COMMANDS, "ping": Command(lambda req, env: None, "hub")}
    with pytest.raises(CommandTableError, match=r"'ping' asks for an environment 'hub'"):
        check(table, names("client"))


def test_the_server_does_not_start_with_a_table_that_does_not_match(monkeypatch: pytest.MonkeyPatch) -> None:
    def build() -> CTIServer:
        return CTIServer(
            CTIConfig(),
            CallTracker(),
            Directory(),
            clock=Clock(),
            check_password=lambda password, encoded: succeed(False),
        )

    build()  # the real table
    monkeypatch.setattr(commands, "COMMANDS", {k: v for k, v in COMMANDS.items() if k != "dial"})
    with pytest.raises(CommandTableError, match="'dial'"):
        build()
