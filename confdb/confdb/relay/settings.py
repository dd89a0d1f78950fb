"""pbx-event-relay configuration: defaults, layered YAML files, checked once into a Settings object."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from confdb import config, outbox
from confdb.config import ConfigError
from confdb.events import EXCHANGE

CONFIG_FILE = Path("/etc/pbx-event-relay/config.yml")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

DEFAULTS: dict[str, Any] = {
    "db": {
        "dsn": "",
        "dsn_file": "/etc/pbx/secrets/pbx_writer.dsn",
        "connect_timeout": 5,
        "statement_timeout_ms": 30000,
    },
    "bus": {"url": "", "url_file": "", "exchange": EXCHANGE, "publish_timeout": outbox.DEFAULT_TIMEOUT},
    "relay": {
        "poll_interval": 5.0,
        "batch": outbox.DEFAULT_BATCH,
        "max_backoff": 30.0,
        "retention_days": 7,
        "purge_interval": 3600.0,
    },
    "log_level": "INFO",
}


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
    merged = config.load(config_file, DEFAULTS)
    if overrides:
        merged = config.merge(merged, overrides)
    return check(merged)


def check(merged: Mapping[str, Any]) -> Settings:
    db, bus, relay = _section(merged, "db"), _section(merged, "bus"), _section(merged, "relay")
    bus_url = _secret(bus, "bus", "url")
    try:
        if urlsplit(bus_url).scheme not in ("amqp", "amqps"):
            raise ValueError("the scheme must be amqp or amqps")
        outbox.connection_parameters(bus_url, 1.0)
    except ValueError as exc:
        raise ConfigError(f"bus.url: not a valid amqp:// URL ({exc})") from None
    return Settings(
        dsn=_secret(db, "db", "dsn"),
        connect_timeout=int(_number(db, "db.connect_timeout", minimum=1)),
        statement_timeout_ms=int(_number(db, "db.statement_timeout_ms", minimum=100)),
        bus_url=bus_url,
        exchange=_text(bus, "bus.exchange"),
        publish_timeout=_number(bus, "bus.publish_timeout", minimum=0.1),
        poll_interval=_number(relay, "relay.poll_interval", minimum=0.05),
        batch=int(_number(relay, "relay.batch", minimum=1, integer=True)),
        max_backoff=_number(relay, "relay.max_backoff", minimum=0.1),
        retention_days=_number(relay, "relay.retention_days", minimum=0),
        purge_interval=_number(relay, "relay.purge_interval", minimum=1),
        log_level=_log_level(merged.get("log_level")),
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


def _section(merged: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = merged.get(name)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}: must be a mapping of settings")
    return value


def _text(section: Mapping[str, Any], key: str) -> str:
    value = section.get(key.split(".")[-1])
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: must be a non-empty string")
    return value.strip()


def _secret(section: Mapping[str, Any], name: str, key: str) -> str:
    """`<name>.<key>`, or else the content of the file named by `<name>.<key>_file`."""
    value = section.get(key) or ""
    if not isinstance(value, str):
        raise ConfigError(f"{name}.{key}: must be a string")
    if value.strip():
        return value.strip()
    path = section.get(f"{key}_file") or ""
    if not isinstance(path, str):
        raise ConfigError(f"{name}.{key}_file: must be a file name")
    if not path:
        raise ConfigError(f"{name}.{key}: not set (set it, or {name}.{key}_file)")
    try:
        content = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}.{key}_file: cannot read {path}: {exc}") from None
    if not content:
        raise ConfigError(f"{name}.{key}_file: {path} is empty")
    return content


def _number(section: Mapping[str, Any], key: str, *, minimum: float, integer: bool = False) -> float:
    value = section.get(key.split(".")[-1])
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key}: must be a number, not {value!r}")
    if integer and value != int(value):
        raise ConfigError(f"{key}: must be a whole number, not {value!r}")
    if value < minimum:
        raise ConfigError(f"{key}: must be at least {minimum:g}, not {value!r}")
    return float(value)


def _log_level(value: Any) -> str:
    level = str(value).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"log_level: must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return level
