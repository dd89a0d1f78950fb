"""confgend's settings schema: built-in defaults, /etc/confgend/config.yml, /etc/confgend/conf.d/*.yml, then
the command line (confdb.config does the layering). Validated once at start; an error names the file and
the setting."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confdb.config import (
    COMMAND_LINE,
    ConfigError,
    Loaded,
    Open,
    Option,
    apply,
    defaults,
    file_layers,
    number,
    secret_part,
)
from confdb.secretpaths import CONFGEND_AMI_SECRET, CONFGEND_DB_DSN

__all__ = [
    "DEFAULTS",
    "DEFAULT_CONFIG_FILE",
    "SCHEMA",
    "ConfigError",
    "Settings",
    "load_settings",
    "validate",
]

DEFAULT_CONFIG_FILE = Path("/etc/confgend/config.yml")


def _host(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected an address, got {value!r}")
    return value


SCHEMA: dict[str, Any] = {
    "listen": {
        "host": Option("127.0.0.1", _host),
        "port": Option(8669, number(int, 0, 65535)),  # 0: any free port (tests)
        "max_connections": Option(64, number(int, 1, 10000)),
        "idle_timeout": Option(5.0, number(float, 0.1, 600)),
    },
    "db": {
        # A DSN or a root-only file holding it (the credential systemd hands over, see confdb.secretpaths).
        "dsn": Option(None, secret_part),
        "dsn_file": Option(str(CONFGEND_DB_DSN.path), secret_part),
        "statement_timeout_ms": Option(3000, number(int, 10, 600_000)),
        "pool_size": Option(4, number(int, 1, 64)),
        # below generation_timeout: a clean "database down" rather than a timeout
        "pool_timeout": Option(2.0, number(float, 0.1, 600)),
        # after a failure, serve last good copies at once for this long
        "retry_after": Option(5.0, number(float, 0, 3600)),
    },
    "cache": {"directory": Option("/var/cache/confgend", lambda v: Path(str(v)))},
    "threads": Option(4, number(int, 1, 64)),
    # A request still waiting after this long gets the last good copy (the client waits 5 s in all).
    "generation_timeout": Option(3.0, number(float, 0.1, 600)),
    "bus": {
        # No URL and no file: no bus, confgend only generates (the package sets url_file).
        "url": Option(None, secret_part),
        "url_file": Option(None, secret_part),
        "exchange": Option("pbx.config", str),
        "coalesce_seconds": Option(0.2, number(float, 0, 60)),  # first reload this long after a burst starts
        "min_interval": Option(2.0, number(float, 0, 600)),  # at most one reload round per this many seconds
    },
    "ami": {
        "host": Option("127.0.0.1", str),
        "port": Option(5038, number(int, 1, 65535)),
        "username": Option("confgend", str),
        "secret_file": Option(str(CONFGEND_AMI_SECRET.path), lambda v: Path(str(v))),
        "timeout": Option(5.0, number(float, 0.1, 120)),
        "busy_retries": Option(
            10, number(int, 0, 1000)
        ),  # "a reload is in progress": retry this many times ...
        "busy_delay": Option(0.5, number(float, 0, 60)),  # ... this many seconds apart
    },
    # Passed to the generators (see confgend.generators): pjsip.transports, manager.users, ...
    "asterisk": Open(),
}

#: The defaults as plain data (tests merge their settings over it).
DEFAULTS: dict[str, Any] = defaults(SCHEMA)


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    max_connections: int
    idle_timeout: float
    dsn: str | None
    statement_timeout_ms: int
    pool_size: int
    pool_timeout: float
    db_retry_after: float
    cache_dir: Path
    threads: int
    generation_timeout: float
    bus_url: str | None
    exchange: str
    coalesce_seconds: float
    min_interval: float
    ami_host: str
    ami_port: int
    ami_username: str
    ami_secret_file: Path
    ami_timeout: float
    busy_retries: int
    busy_delay: float
    asterisk: Mapping[str, Any]


def _settings(loaded: Loaded) -> Settings:
    return Settings(
        host=loaded["listen.host"],
        port=loaded["listen.port"],
        max_connections=loaded["listen.max_connections"],
        idle_timeout=loaded["listen.idle_timeout"],
        dsn=loaded.secret("db.dsn"),
        statement_timeout_ms=loaded["db.statement_timeout_ms"],
        pool_size=loaded["db.pool_size"],
        pool_timeout=loaded["db.pool_timeout"],
        db_retry_after=loaded["db.retry_after"],
        cache_dir=loaded["cache.directory"],
        threads=loaded["threads"],
        generation_timeout=loaded["generation_timeout"],
        bus_url=loaded.secret("bus.url"),
        exchange=loaded["bus.exchange"],
        coalesce_seconds=loaded["bus.coalesce_seconds"],
        min_interval=loaded["bus.min_interval"],
        ami_host=loaded["ami.host"],
        ami_port=loaded["ami.port"],
        ami_username=loaded["ami.username"],
        ami_secret_file=loaded["ami.secret_file"],
        ami_timeout=loaded["ami.timeout"],
        busy_retries=loaded["ami.busy_retries"],
        busy_delay=loaded["ami.busy_delay"],
        asterisk=loaded["asterisk"],
    )


def validate(raw: Mapping[str, Any], source: str = "settings") -> Settings:
    """Check already merged settings (plain data, e.g. ``merge(DEFAULTS, ...)``)."""
    return _settings(apply(SCHEMA, [(source, raw)]))


def load_settings(
    config_file: Path = DEFAULT_CONFIG_FILE, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """The defaults, ``config_file``, its ``conf.d/*.yml``, then ``overrides`` (the command line)."""
    layers = file_layers(config_file)
    if overrides:
        layers.append((COMMAND_LINE, overrides))
    return _settings(apply(SCHEMA, layers))
