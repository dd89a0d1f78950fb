"""A tiny JSON Schema validator for the CTI schemas (draft 2020-12 keywords).

The jsonschema package is not in the runtime set (bookworm apt packages), so this checks the subset the
schemas use.

Supported: type, required, properties, additionalProperties (boolean), enum, const, minLength, maxLength,
pattern, minimum, maximum, items, maxItems, $ref to ``#/$defs/...``. Anything else in a schema is an
error at load time, so a schema never silently checks less than it says.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent / "schemas"
_KNOWN = {
    "$schema",
    "$id",
    "$defs",
    "$ref",
    "title",
    "description",
    "type",
    "required",
    "properties",
    "additionalProperties",
    "enum",
    "const",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "items",
    "maxItems",
    "examples",
}
_TYPES: dict[str, Any] = {
    "string": str,
    "boolean": bool,
    "object": dict,
    "array": list,
    "null": type(None),
}


class SchemaError(ValueError):
    """The instance does not match; the message names the path, e.g. ``$.number: ...``."""


def _type_ok(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def check_schema(schema: Any, where: str = "#") -> None:
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: a schema must be an object")
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"{where}: unsupported keyword(s) {sorted(unknown)}")
    for key, sub in schema.get("properties", {}).items():
        check_schema(sub, f"{where}/properties/{key}")
    for key, sub in schema.get("$defs", {}).items():
        check_schema(sub, f"{where}/$defs/{key}")
    if "items" in schema:
        check_schema(schema["items"], f"{where}/items")


def validate(
    instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, path: str = "$"
) -> None:
    root = root if root is not None else schema
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref}")
        validate(instance, root["$defs"][ref[8:]], root, path)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(instance, t) for t in types):
            raise SchemaError(f"{path}: must be of type {' or '.join(types)}")
    if "const" in schema and (instance != schema["const"] or type(instance) is not type(schema["const"])):
        raise SchemaError(f"{path}: must be {json.dumps(schema['const'])}")
    if "enum" in schema and instance not in schema["enum"]:
        raise SchemaError(f"{path}: must be one of {', '.join(json.dumps(e) for e in schema['enum'])}")
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            raise SchemaError(f"{path}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            raise SchemaError(f"{path}: longer than {schema['maxLength']} characters")
        if "pattern" in schema and not _pattern(schema["pattern"]).search(instance):
            raise SchemaError(f"{path}: does not match {schema['pattern']}")
    if isinstance(instance, int | float) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            raise SchemaError(f"{path}: must be >= {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            raise SchemaError(f"{path}: must be <= {schema['maximum']}")
    if isinstance(instance, list):
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            raise SchemaError(f"{path}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(instance):
                validate(item, schema["items"], root, f"{path}[{i}]")
    if isinstance(instance, dict):
        for key in schema.get("required", ()):
            if key not in instance:
                raise SchemaError(f"{path}: missing required property {key!r}")
        props = schema.get("properties", {})
        for key, value in instance.items():
            if key in props:
                validate(value, props[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties", True) is False:
                raise SchemaError(f"{path}: unknown property {key!r}")


@cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def load(direction: str, name: str) -> dict[str, Any] | None:
    """The schema of message class ``name`` sent by ``direction`` (``client`` or ``server``), or None.

    ``name`` comes from clients: only known names reach the cache, so an unknown one is never kept."""
    return _load(direction, name) if name in _names(direction) else None


def names(direction: str) -> list[str]:
    return sorted(_names(direction))


@cache
def _names(direction: str) -> frozenset[str]:
    return frozenset(p.stem for p in (SCHEMA_DIR / direction).glob("*.json"))


@cache
def _load(direction: str, name: str) -> dict[str, Any]:
    schema = json.loads((SCHEMA_DIR / direction / f"{name}.json").read_text(encoding="utf-8"))
    check_schema(schema)
    return schema
