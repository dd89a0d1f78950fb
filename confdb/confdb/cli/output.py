"""How pbx-admin prints results: JSON, or text for a terminal.

JSON keeps the values' types: lists stay arrays, counts and ids numbers, flags booleans, a missing value
null. Every `list` prints an array of objects, and `show` one object of the same shape; other commands
print one object. Text prints a list as an aligned table and an object as `key  value` lines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def to_json(data: Any) -> str:
    return json.dumps(data, default=str, indent=2)


def cell(value: Any, separator: str = ",") -> str:
    """One value as text: nothing for None, list items joined, an object as key=value pairs."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return separator.join(cell(v) for v in value)
    if isinstance(value, Mapping):
        return " ".join(f"{k}={cell(v)}" for k, v in value.items() if v not in (None, ""))
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return lines


def record(row: Mapping[str, Any]) -> list[str]:
    width = max((len(k) for k in row), default=0)
    return [f"{key:<{width}}  {cell(value, ', ')}".rstrip() for key, value in row.items()]
