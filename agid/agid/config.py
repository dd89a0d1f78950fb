"""Layered configuration: defaults, ``config.yml``, ``conf.d/*.yml`` in name order, then the command line.

Later layers win, key by key. The merged result is validated once; the first bad value is reported with
its key and the layer it came from (``/etc/agid/conf.d/10-x.yml: listen_port: ...``).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG_DIR = Path("/etc/agid")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(Exception):
    """A configuration file or value is not acceptable; the message names it."""


@dataclass(frozen=True)
class Config:
    #: Address to listen on; keep the loopback unless Asterisk runs on another host.
    listen_address: str = "127.0.0.1"
    #: TCP port (4573 is FastAGI's); 0 picks a free port (tests).
    listen_port: int = 4573
    #: Sessions that run a handler at the same time.
    max_sessions: int = 100
    #: Open connections in all; those beyond max_sessions only get AGID_STATUS=FAILED (overload), those
    #: beyond max_connections are closed at once.
    max_connections: int = 400
    #: Seconds from accept to close for one session, all included (environment, handler, status).
    session_timeout: float = 10.0
    #: Seconds to receive the AGI environment after the accept (Asterisk sends it at once).
    env_timeout: float = 2.0
    #: Seconds kept out of session_timeout to set AGID_STATUS once the handler is done or stopped.
    status_timeout: float = 1.0
    #: Logging threshold: DEBUG, INFO, WARNING, ERROR or CRITICAL.
    log_level: str = "INFO"
    #: libpq connection string of role pbx_agid; empty: read it from db_dsn_file.
    db_dsn: str = ""
    #: File holding the connection string (written by ``pbx-admin db init``).
    db_dsn_file: str = "/etc/pbx/secrets/pbx_agid.dsn"
    #: Connections kept open / at most (the pool is the only way to the database: bounded).
    db_pool_min: int = 2
    db_pool_max: int = 10
    #: Seconds of database work one handler may spend (waiting for a connection included); past it the
    #: handler degrades. Also the server-side statement_timeout.
    db_timeout: float = 0.5
    #: Seconds to open one connection.
    db_connect_timeout: float = 2.0
    #: After 3 database failures in a row, fail at once, letting one call try every this many seconds.
    db_retry_interval: float = 1.0
    #: ISO country of the PBX, for phone number normalisation (same as pbx-admin's directory.country).
    country: str = "FR"
    #: Total seconds reverse_lookup waits for its sources, all together.
    lookup_budget: float = 0.2
    #: Sources asked by reverse_lookup, the first that knows the number wins: users, phonebook, csv.
    lookup_sources: tuple[str, ...] = ("users", "phonebook", "csv")
    #: CSV files of reverse_lookup (header row with "number" and "name" columns), reloaded when changed.
    lookup_csv_files: tuple[str, ...] = ()
    #: Seconds a reverse_lookup result is kept; entries at most.
    lookup_cache_ttl: float = 60.0
    lookup_cache_size: int = 10000

    def as_dict(self) -> dict[str, Any]:
        """Plain YAML-able values (lists for tuples); a password in ``db_dsn`` is masked."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        out["db_dsn"] = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", self.db_dsn)
        return out


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}, got {value}")
        return value

    return check


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number of seconds, got {value!r}")
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise ValueError(f"expected seconds above 0 and at most 3600, got {value}")
    return float(value)


def _address(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected an IP address, got {value!r}")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"expected an IP address (e.g. 127.0.0.1), got {value!r}") from None


def _log_level(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return value.upper()


def _text(value: Any) -> str:
    if not isinstance(value, str) or any(ord(c) < 32 for c in value):
        raise ValueError(f"expected one line of text, got {value!r}")
    return value


def _country(value: Any) -> str:
    from confdb.numbers import COUNTRIES

    if not isinstance(value, str) or value.upper() not in COUNTRIES:
        raise ValueError(f"expected a country code among {', '.join(sorted(COUNTRIES))}, got {value!r}")
    return value.upper()


def _sources(value: Any) -> tuple[str, ...]:
    known = ("users", "phonebook", "csv")
    if (
        not isinstance(value, list | tuple)
        or not all(isinstance(v, str) and v in known for v in value)
        or len(set(value)) != len(value)
    ):
        raise ValueError(f"expected a list of distinct sources among {', '.join(known)}, got {value!r}")
    return tuple(value)


def _paths(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a list of file paths, got {value!r}")
    return tuple(value)


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "listen_address": _address,
    "listen_port": _integer(0, 65535),
    "max_sessions": _integer(1, 100_000),
    "max_connections": _integer(1, 1_000_000),
    "session_timeout": _seconds,
    "env_timeout": _seconds,
    "status_timeout": _seconds,
    "log_level": _log_level,
    "db_dsn": _text,
    "db_dsn_file": _text,
    "db_pool_min": _integer(0, 100),
    "db_pool_max": _integer(1, 100),
    "db_timeout": _seconds,
    "db_connect_timeout": _seconds,
    "db_retry_interval": _seconds,
    "country": _country,
    "lookup_budget": _seconds,
    "lookup_sources": _sources,
    "lookup_csv_files": _paths,
    "lookup_cache_ttl": _seconds,
    "lookup_cache_size": _integer(0, 10_000_000),
}
assert set(_CHECKS) == {f.name for f in fields(Config)}


def read_layer(path: Path) -> dict[str, Any]:
    """One YAML file as a mapping (an empty file is an empty mapping)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of options, got {type(data).__name__}")
    return data


def config_files(config_dir: Path) -> list[Path]:
    """``config.yml`` then ``conf.d/*.yml`` by name; files that do not exist are skipped."""
    paths = [config_dir / "config.yml"]
    conf_d = config_dir / "conf.d"
    if conf_d.is_dir():
        paths += sorted(p for p in conf_d.glob("*.yml") if p.is_file())
    return [p for p in paths if p.exists()]


def merge(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> Config:
    """Merge ``(source, options)`` layers over the defaults and validate the result."""
    merged: dict[str, tuple[Any, str]] = {
        name: (value, "default") for name, value in asdict(Config()).items()
    }
    for source, options in layers:
        for key, value in options.items():
            if key not in _CHECKS:
                known = ", ".join(sorted(_CHECKS))
                raise ConfigError(f"{source}: unknown option {key!r} (known: {known})")
            merged[key] = (value, source)
    values: dict[str, Any] = {}
    for key, (value, source) in merged.items():
        try:
            values[key] = _CHECKS[key](value)
        except ValueError as exc:
            raise ConfigError(f"{source}: {key}: {exc}") from None

    def where(key: str) -> str:
        return f"{key} ({values[key]}, from {merged[key][1]})"

    if values["max_connections"] < values["max_sessions"]:
        raise ConfigError(f"{where('max_connections')} is below {where('max_sessions')}")
    if values["db_pool_max"] < values["db_pool_min"]:
        raise ConfigError(f"{where('db_pool_max')} is below {where('db_pool_min')}")
    if values["status_timeout"] >= values["session_timeout"]:
        raise ConfigError(f"{where('status_timeout')} must be below {where('session_timeout')}")
    return Config(**values)


def load_config(config_dir: Path = DEFAULT_CONFIG_DIR, overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults, the files of ``config_dir``, then ``overrides`` (the command line; None values ignored)."""
    layers: list[tuple[str, Mapping[str, Any]]] = [(str(p), read_layer(p)) for p in config_files(config_dir)]
    if overrides:
        layers.append(("command line", {k: v for k, v in overrides.items() if v is not None}))
    return merge(layers)
