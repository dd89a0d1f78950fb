"""The CTI message schemas (``schemas/<direction>/<class>.json``), checked with the jsonschema library.

Each schema is checked against its ``$schema`` meta-schema when it is loaded, and so is every keyword: one
that the draft does not define (a typo such as ``maxlength``) is an error, so a schema never silently
checks less than it says. ``format`` is not checked (no format checker; the schemas use none).

Two choices keep the checks as strict as the protocol means them:
- ``integer`` is a JSON integer only: ``1.0`` is refused (the draft would accept it).
- A refusal names the field by its path and says why, e.g. ``$.number: does not match ^[0-9*#+]+$``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

SCHEMA_DIR = Path(__file__).parent / "schemas"
_ANNOTATIONS = {"$schema", "$id", "$defs", "$comment", "title", "description", "examples", "default"}
_SUBSCHEMA = {"additionalProperties", "items", "not", "contains", "propertyNames", "if", "then", "else"}
_SUBSCHEMA_MAPS = {"properties", "$defs", "patternProperties", "dependentSchemas"}
_SUBSCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}


class SchemaError(ValueError):
    """The instance does not match; the message names the path, e.g. ``$.number: ...``."""


def _is_integer(checker: Any, value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@cache
def _strict(base: Any) -> Any:
    """``base`` (a draft's validator class) whose ``integer`` is a JSON integer, not ``1.0``."""
    return validators.extend(base, type_checker=base.TYPE_CHECKER.redefine("integer", _is_integer))


def _validator_of(schema: dict[str, Any]) -> Any:
    """A validator of ``schema``, without its ``$id``: ours are relative names (``ctid/cti/client/x.json``),
    which jsonschema 4.10 joins to themselves when it enters the schema, so that no ``#/$defs/...``
    reference would resolve. Without it, references resolve in the schema itself."""
    cls = _strict(validators.validator_for(schema, default=Draft202012Validator))
    return cls({key: value for key, value in schema.items() if key != "$id"})


def check_schema(schema: Any) -> None:
    """Raise ValueError when ``schema`` is not a valid schema of its draft or uses an unknown keyword."""
    base = validators.validator_for(schema, default=Draft202012Validator)
    try:
        base.check_schema(schema)
    except Exception as exc:  # jsonschema's SchemaError
        raise ValueError(f"invalid schema: {getattr(exc, 'message', exc)}") from exc
    known = set(base.VALIDATORS) | _ANNOTATIONS
    for where, sub in _subschemas(schema, "#"):
        unknown = set(sub) - known
        if unknown:
            raise ValueError(f"{where}: unsupported keyword(s) {sorted(unknown)}")


def _subschemas(schema: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(schema, dict):
        return
    yield where, schema
    for key, value in schema.items():
        if key in _SUBSCHEMA:
            yield from _subschemas(value, f"{where}/{key}")
        elif key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            for name, sub in value.items():
                yield from _subschemas(sub, f"{where}/{key}/{name}")
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            for i, sub in enumerate(value):
                yield from _subschemas(sub, f"{where}/{key}/{i}")


def validate(instance: Any, schema: dict[str, Any]) -> None:
    """Raise SchemaError, naming the field and why, when ``instance`` does not match ``schema``."""
    validator = _validators.get(id(schema)) or _validator_of(schema)
    error = best_match(validator.iter_errors(instance))
    if error is not None:
        raise SchemaError(_explain(error))


def _path(error: ValidationError) -> str:
    path = "$"
    for elem in error.absolute_path:
        path += f"[{elem}]" if isinstance(elem, int) else f".{elem}"
    return path


def _explain(error: ValidationError) -> str:
    path, keyword, value, instance = _path(error), error.validator, error.validator_value, error.instance
    if keyword == "type":
        types = value if isinstance(value, list) else [value]
        return f"{path}: must be of type {' or '.join(types)}"
    if keyword == "const":
        return f"{path}: must be {json.dumps(value)}"
    if keyword == "enum":
        return f"{path}: must be one of {', '.join(json.dumps(e) for e in value)}"
    if keyword == "minLength":
        return f"{path}: shorter than {value} characters"
    if keyword == "maxLength":
        return f"{path}: longer than {value} characters"
    if keyword == "pattern":
        return f"{path}: does not match {value}"
    if keyword == "minimum":
        return f"{path}: must be >= {value}"
    if keyword == "maximum":
        return f"{path}: must be <= {value}"
    if keyword == "maxItems":
        return f"{path}: more than {value} items"
    if keyword == "required" and isinstance(instance, dict):
        missing = [key for key in value if key not in instance]
        if missing:
            return f"{path}: missing required property {missing[0]!r}"
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = [key for key in instance if key not in known]
        if extra:
            return f"{path}: unknown property {extra[0]!r}"
    return f"{path}: {error.message}"


def load(direction: str, name: str) -> dict[str, Any] | None:
    """The schema of message class ``name`` sent by ``direction`` (``client`` or ``server``), or None.

    ``name`` comes from clients: only known names reach the cache, so an unknown one is never kept."""
    return _load(direction, name) if name in _names(direction) else None


def names(direction: str) -> list[str]:
    return sorted(_names(direction))


@cache
def _names(direction: str) -> frozenset[str]:
    return frozenset(p.stem for p in (SCHEMA_DIR / direction).glob("*.json"))


_validators: dict[int, Any] = {}
"""A validator for each loaded schema, by the schema's id(): loaded schemas are kept for good, so no other
object takes their id."""


@cache
def _load(direction: str, name: str) -> dict[str, Any]:
    schema = json.loads((SCHEMA_DIR / direction / f"{name}.json").read_text(encoding="utf-8"))
    check_schema(schema)
    _validators[id(schema)] = _validator_of(schema)
    return schema
