"""confgend's settings: built-in defaults, /etc/confgend/config.yml, /etc/confgend/conf.d/*.yml, then the
command line (confdb.config does the layering). Validated once at start; an error names the setting."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confdb.config import ConfigError, load

DEFAULT_CONFIG_FILE = Path("/etc/confgend/config.yml")

DEFAULTS: dict[str, Any] = {
    "listen": {"host": "127.0.0.1", "port": 8669, "max_connections": 64, "idle_timeout": 5.0},
    "db": {
        # A DSN or a root-only file holding it (written by `pbx-admin db init`).
        "dsn": None,
        "dsn_file": "/etc/pbx/secrets/pbx_confgend.dsn",
        "statement_timeout_ms": 3000,
        "pool_size": 4,
        "pool_timeout": 2.0,  # below generation_timeout: a clean "database down" rather than a timeout
        "retry_after": 5.0,  # after a failure, serve last good copies at once for this long
    },
    "cache": {"directory": "/var/cache/confgend"},
    "threads": 4,
    # A request still waiting after this long gets the last good copy (the client waits 5 s in all).
    "generation_timeout": 3.0,
    "bus": {
        "url": None,
        "url_file": None,
        "exchange": "pbx.config",
        "coalesce_seconds": 0.2,  # first reload this long after the first event of a burst
        "min_interval": 2.0,  # at most one reload round per this many seconds
    },
    "ami": {
        "host": "127.0.0.1",
        "port": 5038,
        "username": "confgend",
        "secret_file": "/etc/pbx/secrets/ami-confgend.secret",
        "timeout": 5.0,
        "busy_retries": 10,  # "a reload is in progress": retry this many times ...
        "busy_delay": 0.5,  # ... this many seconds apart
    },
    # Passed to the generators (see confgend.generators): pjsip.transports, manager.users, ...
    "asterisk": {},
}


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


def _get(raw: Mapping[str, Any], path: str) -> Any:
    node: Any = raw
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            raise ConfigError(f"{path}: missing")
        node = node[key]
    return node


def _number(raw: Mapping[str, Any], path: str, kind: type, minimum: float, maximum: float) -> Any:
    value = _get(raw, path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{path}: {value} is not between {minimum} and {maximum}")
    return kind(value)


def _secret_from(raw: Mapping[str, Any], key: str) -> str | None:
    value = _get(raw, key)
    if value:
        return str(value)
    path = _get(raw, f"{key}_file")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise ConfigError(f"{key}_file: cannot read {path}: {exc.strerror}") from None


def validate(raw: Mapping[str, Any]) -> Settings:
    host = _get(raw, "listen.host")
    if not isinstance(host, str) or not host:
        raise ConfigError(f"listen.host: expected an address, got {host!r}")
    asterisk = _get(raw, "asterisk") or {}
    if not isinstance(asterisk, Mapping):
        raise ConfigError("asterisk: expected a mapping")
    return Settings(
        host=host,
        port=_number(raw, "listen.port", int, 0, 65535),  # 0: any free port (tests)
        max_connections=_number(raw, "listen.max_connections", int, 1, 10000),
        idle_timeout=_number(raw, "listen.idle_timeout", float, 0.1, 600),
        dsn=_secret_from(raw, "db.dsn"),
        statement_timeout_ms=_number(raw, "db.statement_timeout_ms", int, 10, 600_000),
        pool_size=_number(raw, "db.pool_size", int, 1, 64),
        pool_timeout=_number(raw, "db.pool_timeout", float, 0.1, 600),
        db_retry_after=_number(raw, "db.retry_after", float, 0, 3600),
        cache_dir=Path(str(_get(raw, "cache.directory"))),
        threads=_number(raw, "threads", int, 1, 64),
        generation_timeout=_number(raw, "generation_timeout", float, 0.1, 600),
        bus_url=_secret_from(raw, "bus.url"),
        exchange=str(_get(raw, "bus.exchange")),
        coalesce_seconds=_number(raw, "bus.coalesce_seconds", float, 0, 60),
        min_interval=_number(raw, "bus.min_interval", float, 0, 600),
        ami_host=str(_get(raw, "ami.host")),
        ami_port=_number(raw, "ami.port", int, 1, 65535),
        ami_username=str(_get(raw, "ami.username")),
        ami_secret_file=Path(str(_get(raw, "ami.secret_file"))),
        ami_timeout=_number(raw, "ami.timeout", float, 0.1, 120),
        busy_retries=_number(raw, "ami.busy_retries", int, 0, 1000),
        busy_delay=_number(raw, "ami.busy_delay", float, 0, 60),
        asterisk=asterisk,
    )


def load_settings(
    config_file: Path = DEFAULT_CONFIG_FILE, overrides: Mapping[str, Any] | None = None
) -> Settings:
    from confdb.config import merge

    raw = load(config_file, DEFAULTS)
    if overrides:
        raw = merge(raw, overrides)
    return validate(raw)
