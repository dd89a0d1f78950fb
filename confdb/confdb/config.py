"""The one configuration loader of the distribution: layered YAML, checked against a schema.

Layers, later ones winning key by key: the schema's defaults, ``/etc/<name>/config.yml``, then
``/etc/<name>/conf.d/*.yml`` in name order, then the command line. Every value remembers the layer it came
from, so an error names the file (``/etc/agid/conf.d/10-x.yml: listen_port: ...``); a key the schema does
not know is refused, naming the file. A daemon's config module is its schema (:class:`Option` leaves,
nested mappings for sections, :class:`Open` for free-form sections) and the typed object it builds from
the :class:`Loaded` result; secrets are read with :meth:`Loaded.secret` (a value, or the file named by
``<key>_file``).
"""

from __future__ import annotations

import copy
import ipaddress
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

DEFAULT_SOURCE = "default"
COMMAND_LINE = "command line"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A configuration file or value is not acceptable; the message names the file and the key."""


def _any(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Option:
    """One setting: its default and its check (returns the value to use, raises ValueError why not)."""

    default: Any
    check: Callable[[Any], Any] = _any


@dataclass(frozen=True)
class Open:
    """A free-form section: any keys, merged key by key, handed over as a mapping."""

    default: Mapping[str, Any] = field(default_factory=dict)


Schema = Mapping[str, Union[Option, Open, "Schema"]]


# -- reading the files ------------------------------------------------------------------------------


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


def config_files(config_file: Path) -> list[Path]:
    """``config_file`` then ``conf.d/*.yml`` of its folder by name; files that do not exist are skipped."""
    paths = [config_file]
    conf_d = config_file.parent / "conf.d"
    if conf_d.is_dir():
        paths += sorted(p for p in conf_d.glob("*.yml") if p.is_file())
    return [p for p in paths if p.exists()]


def file_layers(config_file: Path) -> list[tuple[str, Mapping[str, Any]]]:
    """``(file name, options)`` of every file of :func:`config_files`."""
    return [(str(p), read_layer(p)) for p in config_files(config_file)]


# -- merging and checking ---------------------------------------------------------------------------


class Loaded:
    """Checked values by dotted key (``db.dsn``), each with the layer it came from."""

    def __init__(self, values: dict[str, Any], sources: dict[str, str]) -> None:
        self._values = values
        self._sources = sources

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def source(self, key: str) -> str:
        return self._sources.get(key, DEFAULT_SOURCE)

    def where(self, key: str) -> str:
        """``key (value, from source)``, for errors that involve two settings."""
        return f"{key} ({self._values[key]}, from {self.source(key)})"

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source(key)}: {key}: {message}")

    def secret(self, key: str, *, required: bool = False, missing_ok: bool = False) -> str | None:
        """:func:`read_secret` of ``key`` and ``<key>_file``; an error names the layer of the key at fault."""
        try:
            return read_secret(
                key,
                self._values.get(key),
                self._values.get(f"{key}_file"),
                required=required,
                missing_ok=missing_ok,
            )
        except SecretError as exc:
            raise self.error(exc.key, exc.reason) from None

    def section(self, prefix: str) -> dict[str, Any]:
        """The values under ``prefix.`` by their last name (``section("db")["dsn"]``)."""
        start = prefix + "."
        return {
            k[len(start) :]: v
            for k, v in self._values.items()
            if k.startswith(start) and "." not in k[len(start) :]
        }


class SecretError(ConfigError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def read_secret(
    key: str, value: Any, path: Any, *, required: bool = False, missing_ok: bool = False
) -> str | None:
    """The secret ``key``: ``value`` itself, else the content of the file ``path`` (both stripped).

    Nothing set, or an empty file, is None, or an error when ``required``. A file that cannot be read is an
    error naming ``<key>_file``; with ``missing_ok`` a file that does not exist is None (the feature is not
    configured). This is the only secret reader of the distribution."""
    file_key = f"{key}_file"
    if value is not None and not isinstance(value, str):
        raise SecretError(key, "must be a string")
    if value and value.strip():
        return value.strip()
    if path is not None and not isinstance(path, str | Path):
        raise SecretError(file_key, "must be a file name")
    if not path:
        if required:
            raise SecretError(key, f"not set (set it, or {file_key})")
        return None
    try:
        content = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError as exc:
        if missing_ok:
            return None
        raise SecretError(file_key, f"cannot read {path}: {exc.strerror}") from None
    except OSError as exc:
        raise SecretError(file_key, f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SecretError(file_key, f"cannot read {path}: {exc}") from None
    if not content:
        if required:
            raise SecretError(file_key, f"{path} is empty")
        return None
    return content


def defaults(schema: Schema) -> dict[str, Any]:
    """The schema's defaults as nested plain data (a fresh copy)."""
    out: dict[str, Any] = {}
    for name, node in schema.items():
        if isinstance(node, Option):
            out[name] = copy.deepcopy(node.default)
        elif isinstance(node, Open):
            out[name] = copy.deepcopy(dict(node.default))
        else:
            out[name] = defaults(node)
    return out


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Plain data: ``override`` over ``base``, mappings merged recursively (a copy; neither changes)."""
    result = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _type(value: Any) -> str:
    return type(value).__name__


def _merge_open(
    target: dict[str, Any], options: Mapping[str, Any], sources: dict[str, str], prefix: str, source: str
) -> None:
    for key, value in options.items():
        name = f"{prefix}.{key}"
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_open(target[key], value, sources, name, source)
        else:
            target[key] = copy.deepcopy(value)
        sources[name] = source


def _merge_layer(
    schema: Schema,
    options: Mapping[str, Any],
    values: dict[str, Any],
    sources: dict[str, str],
    source: str,
    prefix: str = "",
) -> None:
    for key, value in options.items():
        name = f"{prefix}{key}"
        node = schema.get(key) if isinstance(key, str) else None
        if node is None:
            known = ", ".join(f"{prefix}{k}" for k in sorted(schema))
            raise ConfigError(f"{source}: unknown option {name!r} (known: {known})")
        if isinstance(node, Option):
            values[name] = value
            sources[name] = source
            continue
        if value is None:
            continue  # an empty section (``db:`` alone)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {name}: must be a mapping of settings, got {value!r}")
        if isinstance(node, Open):
            _merge_open(values[name], value, sources, name, source)
            sources[name] = source
        else:
            _merge_layer(node, value, values, sources, source, name + ".")


def _flat_defaults(schema: Schema, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, node in schema.items():
        if isinstance(node, Option):
            out[prefix + name] = copy.deepcopy(node.default)
        elif isinstance(node, Open):
            out[prefix + name] = copy.deepcopy(dict(node.default))
        else:
            out.update(_flat_defaults(node, f"{prefix}{name}."))
    return out


def _checks(schema: Schema, prefix: str = "") -> dict[str, Callable[[Any], Any]]:
    out: dict[str, Callable[[Any], Any]] = {}
    for name, node in schema.items():
        if isinstance(node, Option):
            out[prefix + name] = node.check
        elif not isinstance(node, Open):
            out.update(_checks(node, f"{prefix}{name}."))
    return out


def apply(schema: Schema, layers: Iterable[tuple[str, Mapping[str, Any]]]) -> Loaded:
    """Merge ``(source, options)`` layers over the schema's defaults, then check every value once."""
    values = _flat_defaults(schema)
    sources: dict[str, str] = {}
    for source, options in layers:
        _merge_layer(schema, options, values, sources, source)
    loaded = Loaded(values, sources)
    for key, check in _checks(schema).items():
        try:
            values[key] = check(values[key])
        except ValueError as exc:
            raise loaded.error(key, str(exc)) from None
    return loaded


def load_layers(schema: Schema, config_file: Path, overrides: Mapping[str, Any] | None = None) -> Loaded:
    """The defaults, ``config_file`` and its ``conf.d/*.yml``, then ``overrides`` (the command line)."""
    layers = file_layers(config_file)
    if overrides:
        layers.append((COMMAND_LINE, overrides))
    return apply(schema, layers)


def load(config_file: Path, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Without a schema (pbx-admin): ``defaults``, ``config_file`` and its ``conf.d/*.yml``, merged."""
    result = copy.deepcopy(dict(defaults))
    for _source, options in file_layers(config_file):
        result = merge(result, options)
    return result


# -- checks shared by the schemas -------------------------------------------------------------------


def integer(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}, got {value}")
        return value

    return check


def number(
    kind: type, minimum: float, maximum: float = math.inf, *, whole: bool = False
) -> Callable[[Any], Any]:
    """A finite number from ``minimum`` to ``maximum``, converted to ``kind``; ``whole``: no fraction."""

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"expected a number, got {value!r}")
        if whole and value != int(value):
            raise ValueError(f"expected a whole number, got {value!r}")
        if not minimum <= value <= maximum:
            upper = f" to {maximum:g}" if math.isfinite(maximum) else " or more"
            raise ValueError(f"expected a number from {minimum:g}{upper}, got {value:g}")
        return kind(value)

    return check


def secret_part(value: Any) -> Any:
    """A secret or the file holding it: checked when it is read (`read_secret`)."""
    return value


def seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number of seconds, got {value!r}")
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise ValueError(f"expected seconds above 0 and at most 3600, got {value}")
    return float(value)


def address(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected an IP address, got {value!r}")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"expected an IP address (e.g. 127.0.0.1), got {value!r}") from None


def log_level(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return value.upper()


def text(value: Any) -> str:
    """One line of text (a secret, a DSN, a file name): no control characters."""
    if not isinstance(value, str) or any(ord(c) < 32 for c in value):
        raise ValueError(f"expected one line of text, got {value!r}")
    return value


def optional_text(value: Any) -> str | None:
    return None if value is None else text(value)
