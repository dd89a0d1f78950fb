"""A CTI line as JSON whose every string is text: strict UTF-8, and no lone surrogate.

JSON lets ``\\ud800`` escape a surrogate without its pair; Python keeps it in a ``str`` that no UTF-8 encoder
can write, so the answer that echoes it, or the AMI action that carries it, would fail. Such a line is
refused where it comes in (``malformed``), with the path of the string that holds the surrogate.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Once the line is strict UTF-8, only a \uD800-\uDFFF escape can give a surrogate: walk only then.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class Malformed(ValueError):
    """The line is not JSON in UTF-8."""


def parse(line: bytes) -> Any:
    """The JSON value of ``line`` (UTF-8 only: json.loads would also guess UTF-16 and pass surrogates)."""
    try:
        return json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Malformed(f"not a JSON value in UTF-8: {str(exc)[:200]}") from None


def is_text(value: str) -> bool:
    return _SURROGATE.search(value) is None


def scrub(value: str) -> str:
    """``value`` with each surrogate (AMI keeps a byte that is not UTF-8 as one) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", value)


def lone_surrogate(line: bytes, value: Any) -> str | None:
    """The path (``$.reason``, ``$.topics[1]``) of the first string, key or value, of ``value`` (parsed from
    ``line``) that holds a lone surrogate; None when every string is text."""
    if not _SURROGATE_ESCAPE.search(line):
        return None
    stack: list[tuple[str, Any]] = [("$", value)]
    while stack:  # no recursion: the value may be as deep as json.loads allows
        path, item = stack.pop()
        if isinstance(item, str):
            if not is_text(item):
                return path
        elif isinstance(item, dict):
            for key in item:
                if not is_text(key):
                    return f"{path} (a key)"
            stack.extend((f"{path}.{key}", v) for key, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(item))))
    return None
