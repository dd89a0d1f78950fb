"""ctid's configuration: built-in defaults, /etc/ctid/config.yml, /etc/ctid/conf.d/*.yml, the command line.

Validated once at start; an error names the setting (``cti.port: ...``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confdb import config as layered
from ctid.ami.config import AMIConfig, AMIConfigError
from ctid.cti.server import CTIConfig

DEFAULT_CONFIG_FILE = Path("/etc/ctid/config.yml")

DEFAULTS: dict[str, Any] = {
    "ami": {"host": "127.0.0.1", "port": 5038, "username": "ctid", "secret_file": "/etc/ctid/ami.secret"},
    "cti": {},
    "db": {"dsn_file": "/etc/pbx/secrets/pbx_ctid.dsn", "pool_size": 2, "statement_timeout_ms": 5000},
    "bus": {"url_file": "/etc/ctid/bus.url", "exchange": "pbx.config"},
    "log": {"level": "info"},
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class DbConfig:
    dsn: str
    pool_size: int = 2
    statement_timeout_ms: int = 5000
    connect_timeout: float = 5.0


@dataclass(frozen=True)
class BusConfig:
    url: str | None
    exchange: str = "pbx.config"
    timeout: float = 5.0


@dataclass(frozen=True)
class Config:
    ami: AMIConfig
    cti: CTIConfig
    db: DbConfig | None
    bus: BusConfig | None
    log_level: str = "info"


def _secret(section: Mapping[str, Any], key: str, name: str) -> str | None:
    """``key`` itself, or the content of ``key_file`` (a missing file means: not configured)."""
    if section.get(key):
        value = section[key]
        if not isinstance(value, str):
            raise ConfigError(f"{name}.{key}: must be a string")
        return value
    path = section.get(f"{key}_file")
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{name}.{key}_file: {exc}") from None


def _dataclass(cls: type, data: Mapping[str, Any], section: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(f'{section}.{k}' for k in unknown)}")
    for key, value in data.items():
        ftype = str(fields[key].type)
        if section == "cti" and key == "port":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
                raise ConfigError(f"cti.port: must be 1..65535 (0: any free port), got {value!r}")
            continue
        if ftype.startswith("int") and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"{section}.{key}: must be a positive integer, got {value!r}")
        if ftype.startswith("float") and (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ConfigError(f"{section}.{key}: must be a positive number, got {value!r}")
        if ftype.startswith("str") and value is not None and not isinstance(value, str):
            raise ConfigError(f"{section}.{key}: must be a string, got {value!r}")
    return cls(**data)


def build(data: Mapping[str, Any]) -> Config:
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown section(s): {', '.join(unknown)}")
    for name in DEFAULTS:
        if not isinstance(data.get(name, {}), Mapping):
            raise ConfigError(f"{name}: must be a mapping")
    ami = dict(data.get("ami", {}))
    secret = _secret(ami, "secret", "ami")
    ami.pop("secret_file", None)
    if secret is None:
        raise ConfigError("ami.secret: not set (give ami.secret or a readable ami.secret_file)")
    ami["secret"] = secret
    try:
        ami_config = AMIConfig.from_mapping(ami)
    except AMIConfigError as exc:
        raise ConfigError(str(exc)) from None
    cti = _dataclass(CTIConfig, data.get("cti", {}), "cti")
    if bool(cti.tls_cert) != bool(cti.tls_key):
        raise ConfigError("cti.tls_cert and cti.tls_key: give both or neither")
    db_section = dict(data.get("db", {}))
    dsn = _secret(db_section, "dsn", "db")
    db_section.pop("dsn_file", None)
    db_section.pop("dsn", None)
    db = _dataclass(DbConfig, {"dsn": dsn, **db_section}, "db") if dsn else None
    bus_section = dict(data.get("bus", {}))
    url = _secret(bus_section, "url", "bus")
    bus_section.pop("url_file", None)
    bus_section.pop("url", None)
    bus = _dataclass(BusConfig, {"url": url, **bus_section}, "bus") if url else None
    level = data.get("log", {}).get("level", "info")
    if level not in ("debug", "info", "warn", "error"):
        raise ConfigError(f"log.level: must be debug, info, warn or error, got {level!r}")
    return Config(ami_config, cti, db, bus, level)


def load(config_file: Path = DEFAULT_CONFIG_FILE, overrides: Mapping[str, Any] | None = None) -> Config:
    try:
        data = layered.load(config_file, DEFAULTS)
    except layered.ConfigError as exc:
        raise ConfigError(str(exc)) from None
    if overrides:
        data = layered.merge(data, overrides)
    return build(data)
