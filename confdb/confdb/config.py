"""Layered YAML configuration: defaults, /etc/<name>/config.yml, then /etc/<name>/conf.d/*.yml in order.

Later layers win; mappings merge recursively. Every daemon and tool of the distribution loads its
configuration this way.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    pass


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _read(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return data


def load(config_file: Path, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `defaults`, `config_file` (if present) and `<its folder>/conf.d/*.yml` (sorted). The result is
    the caller's: a copy, so that changing it never changes `defaults`."""
    result = copy.deepcopy(dict(defaults))
    if config_file.exists():
        result = merge(result, _read(config_file))
    conf_d = config_file.parent / "conf.d"
    if conf_d.is_dir():
        for path in sorted(conf_d.glob("*.yml")) + sorted(conf_d.glob("*.yaml")):
            result = merge(result, _read(path))
    return result
