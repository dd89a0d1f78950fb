"""THE table of CTI requests: message class -> handler.

A client's ``{"class": NAME, ...}`` is checked against ``schemas/client/NAME.json``, then runs
``COMMANDS[NAME]``. One small module per group of handlers; add a line here (and a schema) to publish one.
Each handler receives the `Request` and the one narrow environment its entry names (a field of `Envs`),
never the server. `check` runs when the server is built: a schema without a handler, a handler without a
schema or an environment that does not exist is an error naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ctid.cti.commands import calls, login, queues, status
from ctid.cti.commands.base import Client, Request


@dataclass(frozen=True)
class Command:
    handler: Callable[[Request, Any], None]
    env: str | None
    """The field of `Envs` the handler receives (None: nothing)."""
    before_login: bool = False
    """Accepted before a successful login (else ``not_logged_in``)."""


COMMANDS: Mapping[str, Command] = MappingProxyType(
    {
        "ping": Command(status.ping, None, before_login=True),
        "login": Command(login.login, "login", before_login=True),
        "subscribe": Command(status.subscribe, "subscribe"),
        "dial": Command(calls.dial, "calls"),
        "hangup": Command(calls.hangup, "calls"),
        "transfer": Command(calls.transfer, "calls"),
        "queue_pause": Command(queues.queue_pause, "queues"),
        "agent_login": Command(queues.agent_login, "queues"),
        "agent_logout": Command(queues.agent_logout, "queues"),
    }
)


@dataclass(frozen=True)
class Envs:
    """What the handlers may use, in one narrow piece per group (built by the server)."""

    login: login.LoginEnv
    subscribe: status.SubscribeEnv
    calls: calls.CallsEnv
    queues: queues.QueuesEnv


class CommandTableError(ValueError):
    """The command table does not match the client schemas."""


def check(table: Mapping[str, Command], schema_names: Iterable[str]) -> None:
    """Raise CommandTableError naming each class with a schema but no handler, or the reverse, and each
    entry whose environment is not a field of `Envs`."""
    schemas = set(schema_names)
    problems = [
        f"{name!r} has a schema (schemas/client/{name}.json) but no handler"
        for name in sorted(schemas - set(table))
    ]
    problems += [
        f"{name!r} has a handler but no schema (schemas/client/{name}.json)"
        for name in sorted(set(table) - schemas)
    ]
    fields = {f.name for f in dataclasses.fields(Envs)}
    problems += [
        f"{name!r} asks for an environment {cmd.env!r} that does not exist"
        for name, cmd in sorted(table.items())
        if cmd.env is not None and cmd.env not in fields
    ]
    if problems:
        raise CommandTableError("CTI command table: " + "; ".join(problems))


@dataclass(frozen=True)
class Bound:
    """A command with its environment, ready to run."""

    handler: Callable[[Request, Any], None]
    env: Any
    before_login: bool

    def run(self, client: Client, rid: Any, cls: str, msg: dict[str, Any]) -> None:
        self.handler(Request(client, rid, cls, msg), self.env)


def bind(table: Mapping[str, Command], envs: Envs) -> Mapping[str, Bound]:
    """Each command of ``table`` with the environment it names (`check` first)."""
    return MappingProxyType(
        {
            name: Bound(cmd.handler, None if cmd.env is None else getattr(envs, cmd.env), cmd.before_login)
            for name, cmd in table.items()
        }
    )
