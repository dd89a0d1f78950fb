"""ctid's configuration schema: built-in defaults, /etc/ctid/config.yml, /etc/ctid/conf.d/*.yml, the command
line (confdb.config does the layering).

Validated once at start; an error names the file and the setting (``/etc/ctid/config.yml: cti.port: ...``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confdb.config import COMMAND_LINE, ConfigError, Loaded, Option, apply, file_layers, secret_part
from confdb.secretpaths import CTID_AMI_SECRET, CTID_BUS_URL, CTID_DB_DSN
from ctid.ami.config import AMIConfig, check_setting
from ctid.cti.server import CTIConfig

__all__ = ["DEFAULT_CONFIG_FILE", "SCHEMA", "BusConfig", "Config", "ConfigError", "DbConfig", "build", "load"]

DEFAULT_CONFIG_FILE = Path("/etc/ctid/config.yml")
LOG_LEVELS = ("debug", "info", "warn", "error")


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


def _by_type(ftype: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if ftype.startswith("int") and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"must be a positive integer, got {value!r}")
        if ftype.startswith("float"):
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"must be a positive number, got {value!r}")
            return float(value)
        if ftype.startswith("str") and value is not None and not isinstance(value, str):
            raise ValueError(f"must be a string, got {value!r}")
        return value

    return check


def _cti_port(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ValueError(f"must be 1..65535 (0: any free port), got {value!r}")
    return value


def _ami(name: str) -> Callable[[Any], Any]:
    return lambda value: check_setting(name, value)


def _log_level(value: Any) -> str:
    if value not in LOG_LEVELS:
        raise ValueError(f"must be debug, info, warn or error, got {value!r}")
    return value


def _section(cls: type, **checks: Callable[[Any], Any]) -> dict[str, Option]:
    """A section of the fields of ``cls``: their defaults, checked by type (or by ``checks``)."""
    return {
        f.name: Option(f.default, checks.get(f.name) or _by_type(str(f.type)))
        for f in dataclasses.fields(cls)
    }


SCHEMA: dict[str, Any] = {
    "ami": {
        **{
            f.name: Option(f.default, _ami(f.name))
            for f in dataclasses.fields(AMIConfig)
            if f.name not in ("username", "secret")
        },
        "username": Option("ctid", _ami("username")),
        "secret": Option(None, secret_part),
        "secret_file": Option(str(CTID_AMI_SECRET.path), secret_part),
    },
    "cti": _section(CTIConfig, port=_cti_port),
    "db": {
        "dsn": Option(None, secret_part),
        "dsn_file": Option(str(CTID_DB_DSN.path), secret_part),
        **{k: v for k, v in _section(DbConfig).items() if k != "dsn"},
    },
    "bus": {
        "url": Option(None, secret_part),
        "url_file": Option(str(CTID_BUS_URL.path), secret_part),
        **{k: v for k, v in _section(BusConfig).items() if k != "url"},
    },
    "log": {"level": Option("info", _log_level)},
}


def _config(loaded: Loaded) -> Config:
    ami = loaded.section("ami")
    del ami["secret_file"]
    ami["secret"] = loaded.secret("ami.secret", missing_ok=True)
    if ami["secret"] is None:
        raise ConfigError("ami.secret: not set (give ami.secret or a readable ami.secret_file)")
    try:
        check_setting("secret", ami["secret"])
    except ValueError as exc:
        raise loaded.error("ami.secret", str(exc)) from None
    if ami["backoff_initial"] > ami["backoff_max"]:
        raise ConfigError(
            f"{loaded.where('ami.backoff_initial')} must not exceed {loaded.where('ami.backoff_max')}"
        )
    ami_config = AMIConfig(**ami)
    cti = CTIConfig(**loaded.section("cti"))
    if bool(cti.tls_cert) != bool(cti.tls_key):
        raise ConfigError(
            f"{loaded.where('cti.tls_cert')} and {loaded.where('cti.tls_key')}: give both or neither"
        )
    dsn = loaded.secret("db.dsn", missing_ok=True)
    db_section = {k: v for k, v in loaded.section("db").items() if k not in ("dsn", "dsn_file")}
    db = DbConfig(dsn=dsn, **db_section) if dsn else None
    url = loaded.secret("bus.url", missing_ok=True)
    bus_section = {k: v for k, v in loaded.section("bus").items() if k not in ("url", "url_file")}
    bus = BusConfig(url=url, **bus_section) if url else None
    return Config(ami_config, cti, db, bus, loaded["log.level"])


def build(data: Mapping[str, Any], source: str = "settings") -> Config:
    """Check already merged settings (plain data)."""
    return _config(apply(SCHEMA, [(source, data)]))


def load(config_file: Path = DEFAULT_CONFIG_FILE, overrides: Mapping[str, Any] | None = None) -> Config:
    """The defaults, ``config_file``, its ``conf.d/*.yml``, then ``overrides`` (the command line)."""
    layers = file_layers(config_file)
    if overrides:
        layers.append((COMMAND_LINE, overrides))
    return _config(apply(SCHEMA, layers))
