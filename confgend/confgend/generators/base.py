"""What every generator gets and uses: the settings, a way to leave an unsafe object out, and a writer of
Asterisk config lines that only takes checked names and escaped values."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confgend import escape

log = logging.getLogger("confgend.generators")

# Section names Asterisk's modules reserve in the files we write (a database object never takes them).
RESERVED = frozenset({"general", "globals", "modules", "featuremap", "applicationmap", "zonemessages"})


@dataclass
class Context:
    """Per generation: settings (the `asterisk:` part of confgend's configuration) and what was skipped."""

    settings: Mapping[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def skip(self, what: str, error: Exception) -> None:
        message = f"{what} left out: {error}"
        self.skipped.append(message)
        log.warning("%s", message)

    def setting(self, *path: str, default: Any = None) -> Any:
        node: Any = self.settings
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                return default
            node = node[key]
        return node


class ConfWriter:
    """Lines of one Asterisk config file. `section` takes a checked name; `option` an escaped value."""

    def __init__(self, header: str = "", *, compact: bool = False) -> None:
        self.lines: list[str] = []
        self.equals = "=" if compact else " = "  # the dialplan's style: `static=yes`
        if header:
            self.lines.append(f"; {escape.text(header)}")

    def section(self, name: str, *templates: str, template: bool = False) -> None:
        if name in RESERVED or (name.startswith("pbx-") and not template):
            raise escape.Unsafe(f"section name {name!r} is reserved")
        self.raw_section(name, *templates, template=template)

    def raw_section(self, name: str, *templates: str, template: bool = False) -> None:
        """A section whose name we chose (general, templates...)."""
        opts = ["!"] if template else []
        opts.extend(templates)
        suffix = f"({','.join(opts)})" if opts else ""
        if self.lines:
            self.lines.append("")
        self.lines.append(f"[{name}]{suffix}")

    def option(self, name: str, value: object, *, arrow: bool = False) -> None:
        self.lines.append(f"{name} => {value}" if arrow else f"{name}{self.equals}{value}")

    def options(self, pairs: Iterable[tuple[str, object]]) -> None:
        for name, value in pairs:
            self.option(name, value)

    def extend(self, lines: Iterable[str]) -> None:
        self.lines.extend(lines)

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def yes(flag: bool) -> str:
    return "yes" if flag else "no"
