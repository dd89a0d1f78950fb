"""lockgraph: draw which Asterisk thread waits for which, from ``core show locks``, and find deadlocks."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from . import dot, locks, waitgraph
from .manpage import ManPageParser

PROG = "lockgraph"

EXIT_OK = 0
EXIT_DEADLOCK = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_OUTPUT = 4

SUMMARY = "graph of the threads waiting for each other in Asterisk's 'core show locks' output"

DESCRIPTION = """
lockgraph reads the output of the Asterisk CLI command "core show locks" (available when Asterisk is built
with DEBUG_THREADS) and writes a directed graph in the DOT language: each node is a thread, labelled with
its thread ID (and its LWP and start routine when known), and an edge from thread A to thread B means "A is
waiting for a lock that B holds", labelled with the lock's name and address. In a frozen Asterisk, the
picture shows at a glance which threads are stuck behind which.

The holder of a lock is the thread that lists the same lock address as held. When no thread in the output
holds a waited-for lock (the output is partial, or the holder is not a tracked thread), a dashed node stands
for the unknown holder, with the places it took the lock (the "Locked Here" lines).

A cycle in the graph is a deadlock. The threads and waits of each cycle are drawn in red, and each deadlock
is listed on standard error with its threads and locks.

The output of Asterisk 1.8 and later is accepted, including text before and after it (such as the CLI
prompt). Malformed or truncated output is rejected with an error that names the offending line.

With graphviz installed, lockgraph also renders the graph itself, as SVG or PNG (--format, or the extension
of --output). Only threads that wait or are waited for are drawn, unless --all-threads is given.
"""

EXAMPLES = """
Capture the locks of a running Asterisk, and draw them:

    asterisk -rx "core show locks" > core-show-locks.txt
    lockgraph core-show-locks.txt -o locks.svg

Write DOT, and lay it out with graphviz's circo yourself:

    lockgraph core-show-locks.txt | circo -Tsvg -o locks.svg

Render a PNG with the circo layout, from standard input:

    asterisk -rx "core show locks" | lockgraph -K circo -o locks.png

In a script: is Asterisk deadlocked?

    asterisk -rx "core show locks" | lockgraph > /dev/null 2>&1
    [ $? -eq 1 ] && echo "Asterisk is deadlocked"
"""

EXIT_STATUS = f"""
 {EXIT_OK}   the graph was written and has no deadlock.
 {EXIT_DEADLOCK}   the graph was written and has at least one deadlock (listed on standard
     error).
 {EXIT_USAGE}   invalid command line.
 {EXIT_INPUT}   the input could not be read, or is not valid "core show locks" output.
 {EXIT_OUTPUT}   the graph could not be rendered (graphviz missing or failing) or written.
"""

SEE_ALSO = "dot(1), circo(1); Asterisk's DEBUG_THREADS build option; docs/tools.md in the PBX source tree."

_EXTENSIONS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png"}


def build_parser() -> ManPageParser:
    parser = ManPageParser(
        prog=PROG,
        summary=SUMMARY,
        description=DESCRIPTION,
        sections=[("examples", EXAMPLES), ("exit status", EXIT_STATUS), ("see also", SEE_ALSO)],
    )
    parser.add_argument(
        "input",
        metavar="FILE",
        nargs="?",
        default="-",
        help="the 'core show locks' output to read (default: standard input, also given as -)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default="-",
        help="where to write the graph (default: standard output); an existing file is replaced whole",
    )
    parser.add_argument(
        "-T",
        "--format",
        metavar="FORMAT",
        choices=dot.FORMATS,
        help="dot, svg or png (default: from the extension of --output: .dot or .gv, .svg, .png; "
        "otherwise dot); svg and png need graphviz",
    )
    parser.add_argument(
        "-K",
        "--layout",
        metavar="ENGINE",
        choices=dot.ENGINES,
        default="dot",
        help=f"graphviz layout program used to render: {', '.join(dot.ENGINES)} (default: dot)",
    )
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="also draw the threads that neither wait nor are waited for",
    )
    parser.add_argument("--title", metavar="TEXT", help="title written above the graph")
    return parser


def output_format(fmt: str | None, output: str) -> str:
    """The format asked for, else the one the output file's extension names, else DOT."""
    if fmt:
        return fmt
    if output == "-":
        return "dot"
    return _EXTENSIONS.get(os.path.splitext(output)[1].lower(), "dot")


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as stream:
        return stream.read()


def _note(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def report_deadlocks(graph: waitgraph.WaitGraph) -> None:
    for number, deadlock in enumerate(graph.deadlocks, start=1):
        _note(f"deadlock {number}: {len(deadlock.threads)} thread(s): {', '.join(deadlock.threads)}")
        for line in waitgraph.describe_deadlock(graph, deadlock):
            print(f"    {line}", file=sys.stderr)
    if graph.unknown:
        _note(
            f"{len(graph.unknown)} waited-for lock(s) have no holder in the output "
            "(drawn as dashed nodes): the output may be partial"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name = "<stdin>" if args.input == "-" else args.input
    try:
        data = _read(args.input)
    except OSError as exc:
        _note(f"cannot read {name}: {exc.strerror or exc}")
        return EXIT_INPUT
    try:
        dump = locks.parse(data.decode("utf-8", "replace"))
    except locks.ParseError as exc:
        shown = f"\n    {exc.text!r}" if exc.text is not None else ""
        _note(f"{name}:{exc.line}: {exc.message}{shown}")
        return EXIT_INPUT

    graph = waitgraph.build(dump)
    text = dot.to_dot(graph, all_threads=args.all_threads, title=args.title)
    fmt = output_format(args.format, args.output)
    try:
        payload = text.encode("utf-8") if fmt == "dot" else dot.render(text, fmt, args.layout)
    except dot.RenderError as exc:
        _note(f"cannot render {fmt}: {exc}")
        return EXIT_OUTPUT
    try:
        if args.output == "-":
            sys.stdout.buffer.write(payload)
            sys.stdout.buffer.flush()
        else:
            dot.write_atomically(args.output, payload)
    except OSError as exc:
        _note(
            f"cannot write {'standard output' if args.output == '-' else args.output}: {exc.strerror or exc}"
        )
        return EXIT_OUTPUT

    report_deadlocks(graph)
    return EXIT_DEADLOCK if graph.deadlocks else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
