"""Asterisk dialplan extension patterns, interpreted the way Asterisk does: which numbers a pattern
matches, and which of several matching patterns Asterisk picks. Pure functions, no I/O.

agid uses them for incall DIDs and outcall patterns (the read model returns the candidates, the handler
picks one). What a pattern may contain at all is the writer's rule:
:func:`confdb.asterisk_values.extension_pattern_problem`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

_CLASSES = {"X": "0-9", "Z": "1-9", "N": "2-9"}


@lru_cache(maxsize=4096)
def _pattern_regex(pattern: str) -> re.Pattern[str] | None:
    if not pattern.startswith("_"):
        return None
    out = []
    body = pattern[1:]
    i = 0
    while i < len(body):
        char = body[i].upper()
        if char in _CLASSES:
            out.append(f"[{_CLASSES[char]}]")
        elif char == "[":
            end = body.find("]", i)
            if end < 0:
                return re.compile(r"(?!)")
            out.append("[" + re.escape(body[i + 1 : end]).replace("\\-", "-") + "]")
            i = end
        elif char == ".":
            out.append(".+")
        elif char == "!":
            out.append(".*")
        elif char == "-":
            pass  # Asterisk ignores dashes in patterns
        else:
            out.append(re.escape(body[i]))
        i += 1
    return re.compile("".join(out) + r"\Z")


def extension_matches(pattern: str, number: str) -> bool:
    """True when dialplan extension ``pattern`` (a literal or ``_`` pattern) matches ``number``."""
    regex = _pattern_regex(pattern)
    if regex is None:
        return pattern == number
    return regex.match(number) is not None


def _set_size(pattern_body: str, i: int) -> tuple[int, int]:
    end = pattern_body.find("]", i)
    inside = pattern_body[i + 1 : end]
    size = 0
    j = 0
    while j < len(inside):
        if j + 2 < len(inside) and inside[j + 1] == "-":
            size += max(1, ord(inside[j + 2]) - ord(inside[j]) + 1)
            j += 3
        else:
            size += 1
            j += 1
    return size, end


def pattern_order(pattern: str) -> tuple[int, tuple[int, ...]]:
    """Sort key: the most specific first, like Asterisk's ext_cmp (literals, then character by character
    the smaller set of possible characters wins; ``.`` and ``!`` last)."""
    if not pattern.startswith("_"):
        return (0, ())
    weights = []
    body = pattern[1:]
    i = 0
    while i < len(body):
        char = body[i].upper()
        if char == "[":
            size, i = _set_size(body, i)
            weights.append(size)
        elif char in _CLASSES:
            weights.append({"X": 10, "Z": 9, "N": 8}[char])
        elif char == ".":
            weights.append(100)
        elif char == "!":
            weights.append(101)
        elif char != "-":
            weights.append(1)
        i += 1
    return (1, tuple(weights))


def best_match(number: str, patterns: Sequence[str]) -> int | None:
    """Index in ``patterns`` of the one Asterisk would pick for ``number``, or None."""
    found = [(pattern_order(p), i) for i, p in enumerate(patterns) if extension_matches(p, number)]
    return min(found)[1] if found else None
