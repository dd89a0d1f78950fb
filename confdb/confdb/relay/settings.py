"""pbx-event-relay configuration: defaults, layered YAML files, checked once into a Settings object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from confdb import outbox
from confdb.config import (
    COMMAND_LINE,
    Loaded,
    Option,
    apply,
    defaults,
    file_layers,
    log_level,
    number,
    secret_part,
)
from confdb.events import EXCHANGE
from confdb.secretpaths import RELAY_DB_DSN

CONFIG_FILE = Path("/etc/pbx-event-relay/config.yml")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


SCHEMA: dict[str, Any] = {
    "db": {
        "dsn": Option("", secret_part),
        "dsn_file": Option(str(RELAY_DB_DSN.path), secret_part),
        "connect_timeout": Option(5, number(float, 1)),
        "statement_timeout_ms": Option(30000, number(float, 100)),
    },
    # No default file for the URL: without one the relay says "bus.url: not set" (the package sets it).
    "bus": {
        "url": Option("", secret_part),
        "url_file": Option("", secret_part),
        "exchange": Option(EXCHANGE, _text),
        "publish_timeout": Option(outbox.DEFAULT_TIMEOUT, number(float, 0.1)),
    },
    "relay": {
        "poll_interval": Option(5.0, number(float, 0.05)),
        "batch": Option(outbox.DEFAULT_BATCH, number(float, 1, whole=True)),
        "max_backoff": Option(30.0, number(float, 0.1)),
        "retention_days": Option(7, number(float, 0)),
        "purge_interval": Option(3600.0, number(float, 1)),
    },
    "log_level": Option("INFO", log_level),
}

#: The defaults as plain data (tests merge their settings over it).
DEFAULTS: dict[str, Any] = defaults(SCHEMA)


@dataclass(frozen=True)
class Settings:
    dsn: str
    connect_timeout: int
    statement_timeout_ms: int
    bus_url: str
    exchange: str
    publish_timeout: float
    poll_interval: float
    batch: int
    max_backoff: float
    retention_days: float  # 0: keep published rows forever
    purge_interval: float
    log_level: str


def load(config_file: Path, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Merge the defaults, `config_file`, its conf.d/*.yml and `overrides`; check every value."""
    layers = file_layers(config_file)
    if overrides:
        layers.append((COMMAND_LINE, overrides))
    return _settings(apply(SCHEMA, layers))


def check(merged: Mapping[str, Any], source: str = "settings") -> Settings:
    """Check already merged settings (plain data, e.g. ``merge(DEFAULTS, ...)``)."""
    return _settings(apply(SCHEMA, [(source, merged)]))


def _settings(loaded: Loaded) -> Settings:
    bus_url = loaded.secret("bus.url", required=True) or ""
    try:
        if urlsplit(bus_url).scheme not in ("amqp", "amqps"):
            raise ValueError("the scheme must be amqp or amqps")
        outbox.connection_parameters(bus_url, 1.0)
    except ValueError as exc:
        raise loaded.error("bus.url", f"not a valid amqp:// URL ({exc})") from None
    return Settings(
        dsn=loaded.secret("db.dsn", required=True) or "",
        connect_timeout=int(loaded["db.connect_timeout"]),
        statement_timeout_ms=int(loaded["db.statement_timeout_ms"]),
        bus_url=bus_url,
        exchange=loaded["bus.exchange"],
        publish_timeout=loaded["bus.publish_timeout"],
        poll_interval=loaded["relay.poll_interval"],
        batch=int(loaded["relay.batch"]),
        max_backoff=loaded["relay.max_backoff"],
        retention_days=loaded["relay.retention_days"],
        purge_interval=loaded["relay.purge_interval"],
        log_level=loaded["log_level"],
    )


def redacted(settings: Settings) -> dict[str, Any]:
    """The checked settings laid out like the files, secrets hidden (for --check-config)."""
    return {
        "db": {
            "dsn": "<hidden>",
            "connect_timeout": settings.connect_timeout,
            "statement_timeout_ms": settings.statement_timeout_ms,
        },
        "bus": {
            "url": "<hidden>",
            "exchange": settings.exchange,
            "publish_timeout": settings.publish_timeout,
        },
        "relay": {
            "poll_interval": settings.poll_interval,
            "batch": settings.batch,
            "max_backoff": settings.max_backoff,
            "retention_days": settings.retention_days,
            "purge_interval": settings.purge_interval,
        },
        "log_level": settings.log_level,
    }
