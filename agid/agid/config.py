"""agid's configuration schema, loaded by :mod:`confdb.config`: defaults, ``config.yml``, ``conf.d/*.yml``
in name order, then the command line.

Later layers win, key by key. The merged result is validated once; the first bad value is reported with
its key and the layer it came from (``/etc/agid/conf.d/10-x.yml: listen_port: ...``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from confdb.config import (
    COMMAND_LINE,
    LOG_LEVELS,
    ConfigError,
    Option,
    address,
    apply,
    file_layers,
    integer,
    log_level,
    seconds,
    text,
)
from confdb.secretpaths import AGID_DB_DSN

__all__ = ["DEFAULT_CONFIG_DIR", "LOG_LEVELS", "SCHEMA", "Config", "ConfigError", "load_config", "merge"]

DEFAULT_CONFIG_DIR = Path("/etc/agid")


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
    #: File holding the connection string: the credential systemd hands over (see confdb.secretpaths).
    db_dsn_file: str = str(AGID_DB_DSN.path)
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
    "listen_address": address,
    "listen_port": integer(0, 65535),
    "max_sessions": integer(1, 100_000),
    "max_connections": integer(1, 1_000_000),
    "session_timeout": seconds,
    "env_timeout": seconds,
    "status_timeout": seconds,
    "log_level": log_level,
    "db_dsn": text,
    "db_dsn_file": text,
    "db_pool_min": integer(0, 100),
    "db_pool_max": integer(1, 100),
    "db_timeout": seconds,
    "db_connect_timeout": seconds,
    "db_retry_interval": seconds,
    "country": _country,
    "lookup_budget": seconds,
    "lookup_sources": _sources,
    "lookup_csv_files": _paths,
    "lookup_cache_ttl": seconds,
    "lookup_cache_size": integer(0, 10_000_000),
}
#: The schema for confdb.config: every field of Config, its default and its check.
SCHEMA: dict[str, Option] = {f.name: Option(f.default, _CHECKS[f.name]) for f in fields(Config)}
assert set(_CHECKS) == set(SCHEMA)


def merge(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> Config:
    """Merge ``(source, options)`` layers over the defaults and validate the result."""
    loaded = apply(SCHEMA, layers)
    if loaded["max_connections"] < loaded["max_sessions"]:
        raise ConfigError(f"{loaded.where('max_connections')} is below {loaded.where('max_sessions')}")
    if loaded["db_pool_max"] < loaded["db_pool_min"]:
        raise ConfigError(f"{loaded.where('db_pool_max')} is below {loaded.where('db_pool_min')}")
    if loaded["status_timeout"] >= loaded["session_timeout"]:
        raise ConfigError(f"{loaded.where('status_timeout')} must be below {loaded.where('session_timeout')}")
    return Config(**{name: loaded[name] for name in SCHEMA})


def load_config(config_dir: Path = DEFAULT_CONFIG_DIR, overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults, the files of ``config_dir``, then ``overrides`` (the command line; None values ignored)."""
    layers = file_layers(config_dir / "config.yml")
    if overrides:
        layers.append((COMMAND_LINE, {k: v for k, v in overrides.items() if v is not None}))
    return merge(layers)
