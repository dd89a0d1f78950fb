"""A small model of Asterisk 20's config parser (main/config.c, config_text_file_load and
process_text_line), strict where Asterisk is lenient: what it would skip or warn about is an error here.

- the file is cut into lines at LF only (fgets); a line of 8191 bytes or more is an error (Asterisk skips
  it, and older versions split it);
- NUL is an error (it would cut the line short);
- `;--` ... `--;` are block comments, an unescaped `;` starts a comment, `\\;` is a literal `;`;
- the rest is stripped of blanks; `[name](opts)` opens a section, `#` starts a directive, anything else
  must be `name = value` or `name => value`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_LINE = 8191


class ParseError(ValueError):
    pass


@dataclass
class Section:
    name: str
    options: tuple[str, ...]  # what is inside `(...)` after the name, e.g. ("!",) or ("template",)
    items: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Parsed:
    sections: list[Section]
    directives: list[str]

    def shape(self) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
        """What must not change with the values: sections, their options and the names of their settings."""
        return [(s.name, s.options, tuple(k for k, _ in s.items)) for s in self.sections]


def _strip_comments(line: str, in_block: int) -> tuple[str, int]:
    out = []
    i = 0
    while i < len(line):
        if in_block:
            if line.startswith("--;", i):
                in_block -= 1
                i += 3
            elif line.startswith(";--", i):
                in_block += 1
                i += 3
            else:
                i += 1
            continue
        ch = line[i]
        if ch == ";":
            if out and out[-1] == "\\":
                out[-1] = ";"
                i += 1
                continue
            if line.startswith(";--", i):
                in_block += 1
                i += 3
                continue
            break  # a comment to the end of the line
        out.append(ch)
        i += 1
    return "".join(out), in_block


def parse(text: str) -> Parsed:
    sections: list[Section] = []
    directives: list[str] = []
    in_block = 0
    for number, raw in enumerate(text.split("\n"), 1):
        if len(raw.encode("utf-8")) >= MAX_LINE:
            raise ParseError(f"line {number}: {len(raw.encode())} bytes, Asterisk skips it")
        if "\0" in raw:
            raise ParseError(f"line {number}: NUL")
        line, in_block = _strip_comments(raw, in_block)
        line = line.strip(" \t\n\v\f\r")
        if not line:
            continue
        if line[0] == "[":
            end = line.find("]")
            if end < 0:
                raise ParseError(f"line {number}: no closing ] in {line[:40]!r}")
            name, rest = line[1:end], line[end + 1 :]
            opts: tuple[str, ...] = ()
            if rest.startswith("("):
                if not rest.endswith(")"):
                    raise ParseError(f"line {number}: unclosed ( in {line[:40]!r}")
                opts = tuple(rest[1:-1].split(","))
            elif rest.strip():
                raise ParseError(f"line {number}: text after ] in {line[:40]!r}")
            sections.append(Section(name, opts))
        elif line[0] == "#":
            directives.append(line)
        else:
            if "=" not in line:
                raise ParseError(f"line {number}: no = in {line[:40]!r}")
            if not sections:
                raise ParseError(f"line {number}: a setting before any section")
            name, value = line.split("=", 1)
            if value.startswith(">"):
                value = value[1:]
            sections[-1].items.append((name.strip(), value.strip()))
    if in_block:
        raise ParseError("unterminated block comment")
    return Parsed(sections, directives)
