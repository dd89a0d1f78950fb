"""What every pbx-admin command receives: the configuration, a database connection, output helpers."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from confdb import config
from confdb.cli import output

CONFIG_FILE = Path("/etc/pbx-admin/config.yml")
DEFAULTS: dict[str, Any] = {
    "db": {"dsn": "", "dsn_file": "", "connect_timeout": 5, "statement_timeout_ms": 60000},
    "bus": {"url": "", "exchange": "pbx.config", "publish_timeout": 2.0},
    "sip": {"realm": "pbx"},
    "directory": {"country": "FR"},  # where phonebook numbers are dialled from (reverse lookup)
}


class CommandError(Exception):
    """A failure to report to the user in one line, with exit status 1."""


@dataclass
class Context:
    settings: dict[str, Any]
    json_output: bool = False

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            dsn = config.read_secret("db.dsn", self.settings["db"]["dsn"], self.settings["db"]["dsn_file"])
        except config.ConfigError as exc:
            raise CommandError(str(exc)) from None
        if not dsn:
            raise CommandError(
                f"no database configured: set db.dsn in {CONFIG_FILE} (or conf.d/), PBX_ADMIN_DSN, or --dsn"
            )
        timeout_ms = int(self.settings["db"]["statement_timeout_ms"])
        try:
            conn = psycopg.connect(
                dsn,
                connect_timeout=int(self.settings["db"]["connect_timeout"]),
                options=f"-c statement_timeout={timeout_ms}",
            )
        except psycopg.OperationalError as exc:
            raise CommandError(f"cannot connect to the database: {str(exc).strip()}") from None
        with conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction; on commit, publish its events right away (best effort, the relay catches up)."""
        with self.connect() as conn:
            with conn.transaction():
                yield conn
            self.flush_events(conn)

    def flush_events(self, conn: psycopg.Connection[Any]) -> None:
        bus = self.settings["bus"]
        if not bus["url"]:
            return
        from confdb import outbox

        try:
            outbox.publish_pending(
                conn, bus["url"], exchange=bus["exchange"], timeout=float(bus["publish_timeout"])
            )
        except outbox.PublishError as exc:
            print(
                f"pbx-admin: events kept in the outbox, the relay will publish them ({exc})", file=sys.stderr
            )

    def emit(
        self,
        rows: Sequence[dict[str, Any]] | dict[str, Any],
        columns: Sequence[str] | None = None,
        *,
        text: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        """Print a result (see confdb.cli.output): `columns` are the table's, `text` reshapes each row for
        the text form only (JSON always gets the rows as they are)."""
        if self.json_output:
            print(output.to_json(rows))
            return
        if isinstance(rows, dict):
            print("\n".join(output.record(text(rows) if text else rows)))
            return
        shown = [text(r) for r in rows] if text else list(rows)
        print("\n".join(output.table(shown, list(columns or (shown[0].keys() if shown else [])))))


def read_secret(env_var: str | None, prompt: bool, label: str) -> str | None:
    """A secret from an environment variable or a prompt, never from argv (visible in ps).

    With --...-prompt and no terminal, one line of standard input is the secret.
    """
    if env_var:
        value = os.environ.get(env_var)
        if value is None:
            raise CommandError(f"environment variable {env_var} is not set")
        return value
    if prompt:
        if not sys.stdin.isatty():
            return sys.stdin.readline().rstrip("\n")
        first = getpass.getpass(f"{label}: ")
        if first != getpass.getpass("again: "):
            raise CommandError("the two passwords differ")
        return first
    return None
