"""An argparse parser whose ``--help`` reads like a man page.

The help text is laid out in the usual sections: NAME, SYNOPSIS, DESCRIPTION, ARGUMENTS, OPTIONS, then
the free sections given by the tool (EXAMPLES, EXIT STATUS, SEE ALSO...). Prose paragraphs are wrapped
to the terminal width; paragraphs whose lines start with a space are kept as they are (examples, tables).
"""

from __future__ import annotations

import argparse
import shutil
import textwrap
from collections.abc import Sequence

INDENT = "    "


def _width() -> int:
    return max(60, min(shutil.get_terminal_size().columns, 100) - 2)


def format_prose(text: str, width: int, indent: str = INDENT) -> str:
    """Wrap the paragraphs of ``text`` (separated by blank lines) and indent them.

    A paragraph whose first line starts with whitespace is preformatted: kept line by line. Prose is
    written from the first column.
    """
    out: list[str] = []
    for paragraph in text.strip("\n").split("\n\n"):
        if not paragraph.strip():
            continue
        if paragraph[:1].isspace():
            out.append("\n".join((indent + line).rstrip() for line in paragraph.split("\n")))
        else:
            out.append(
                textwrap.fill(
                    " ".join(paragraph.split()),
                    width=width,
                    initial_indent=indent,
                    subsequent_indent=indent,
                    break_on_hyphens=False,
                )
            )
    return "\n\n".join(out)


class _OptionFormatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, indent_increment=4, max_help_position=30, width=_width())


class ManPageParser(argparse.ArgumentParser):
    """ArgumentParser with a man-page shaped ``--help``.

    ``summary`` is the one-line NAME text; ``sections`` are (TITLE, prose) pairs printed after the
    options, in order.
    """

    def __init__(
        self,
        prog: str,
        summary: str,
        description: str,
        sections: Sequence[tuple[str, str]] = (),
        **kwargs: object,
    ) -> None:
        super().__init__(
            prog=prog,
            description=description,
            formatter_class=_OptionFormatter,
            **kwargs,  # type: ignore[arg-type]
        )
        self.summary = summary
        self.sections = list(sections)
        self._positionals.title = "arguments"
        self._optionals.title = "options"

    def format_usage(self) -> str:
        formatter = self._get_formatter()
        formatter.add_usage(self.usage, self._actions, self._mutually_exclusive_groups, prefix="usage: ")
        return formatter.format_help()

    def format_help(self) -> str:
        width = _width()
        parts = [f"NAME\n{INDENT}{self.prog} - {self.summary}"]

        formatter = self._get_formatter()
        formatter.add_usage(self.usage, self._actions, self._mutually_exclusive_groups, prefix="")
        synopsis = formatter.format_help().strip("\n")
        parts.append("SYNOPSIS\n" + textwrap.indent(synopsis, INDENT))

        if self.description:
            parts.append("DESCRIPTION\n" + format_prose(self.description, width))

        for group in self._action_groups:
            formatter = self._get_formatter()
            formatter.start_section(None)
            formatter.add_arguments(group._group_actions)
            formatter.end_section()
            body = formatter.format_help().rstrip()
            if body.strip():
                parts.append(f"{(group.title or '').upper()}\n{body.strip(chr(10))}")

        for title, text in self.sections:
            parts.append(f"{title.upper()}\n{format_prose(text, width)}")
        return "\n\n".join(parts) + "\n"
